"""The audit trail's hash chain: every row stores the hash of the row before it.

``row_hash = sha256(canonical JSON of the row's fields, including prev_hash)``. Rows are linked in id
order; new rows are linked under a lock (PostgreSQL: a transaction-level advisory lock held until the
writing transaction commits, so ids and links are assigned in the same order; SQLite: the database
already serialises writers). ``chain_verify`` walks the table and reports the first broken link.

Lock order: a transaction that writes audit rows takes the chain lock at its first row and keeps it
until commit, so flows lock the rows they change (users, sessions) *before* their first audit row;
otherwise two transactions could wait on each other.

Retention deletes a prefix of the chain and appends an ``audit.retention.pruned`` row that names the
hash of the last deleted row: the oldest remaining row must point at it, so the pruned chain still
verifies and a row removed from its start is detected too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import connection

# Any constant: the key of the one advisory lock that orders audit writes.
ADVISORY_LOCK_KEY = 0x6D63615F61756474  # "mca_audt"
GENESIS = ""


def chain_lock() -> None:
    """Serialise chain appends until the current transaction ends (call inside atomic)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def chain_lock_and_head() -> str:
    """chain_lock() and chain_head() in one round trip. On PostgreSQL a VOLATILE function (created by
    migration audit 0005): its second statement takes a new snapshot after the lock is granted, so it
    sees the row the previous lock holder committed (one SELECT with both would not)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT audit_chain_lock_head(%s)", [ADVISORY_LOCK_KEY])
            return cursor.fetchone()[0] or GENESIS
    return chain_head()  # SQLite: the write transaction already excludes other writers


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def _str_or_none(value):
    return str(value) if value is not None else None


def row_digest(row, prev_hash: str) -> str:
    """The hash of one row (an AuditEvent or anything with the same attributes)."""
    payload = {
        "created_at": _iso(row.created_at),
        "event": str(row.event),
        "actor_id": str(row.actor_id) if row.actor_id is not None else None,
        "subject_id": str(row.subject_id) if row.subject_id is not None else None,
        "session_id": str(row.session_id) if row.session_id is not None else None,
        "organization_id": _str_or_none(getattr(row, "organization_id", None)),
        "ip_address": row.ip_address or None,
        "user_agent": row.user_agent or "",
        "success": bool(row.success),
        "context": row.context,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_head() -> str:
    """The row_hash of the newest row (call after chain_lock)."""
    from audit.models import AuditEvent

    return AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first() or GENESIS


def chain_anchor(before_id: int) -> str:
    """What the oldest remaining row must point at: the last-deleted hash recorded by the newest
    retention checkpoint (genesis when nothing was ever pruned)."""
    from audit.models import AuditEvent, EventType

    checkpoint = (AuditEvent.objects.filter(event=EventType.AUDIT_PRUNED).order_by("-id")
                  .values_list("context", flat=True).first())
    if not checkpoint:
        return GENESIS
    return checkpoint.get("last_deleted_hash", GENESIS)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    head: str = ""


def chain_verify(*, batch_size: int = 2000) -> VerifyResult:
    """Walk every row in id order; the first row whose prev_hash or row_hash does not match."""
    from audit.models import AuditEvent

    first = AuditEvent.objects.order_by("id").first()
    if first is None:
        return VerifyResult(ok=True, checked=0)
    expected_prev = chain_anchor(first.pk)
    checked, last_id = 0, 0
    while True:
        rows = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not rows:
            return VerifyResult(ok=True, checked=checked, head=expected_prev)
        for row in rows:
            if row.prev_hash != expected_prev:
                reason = ("the oldest row does not follow the last retention checkpoint (rows were removed "
                          "from the start)" if checked == 0 else
                          "prev_hash does not match the previous row (a row before it was removed or changed)")
                return VerifyResult(ok=False, checked=checked, broken_id=row.pk, reason=reason)
            if row_digest(row, row.prev_hash) != row.row_hash:
                return VerifyResult(ok=False, checked=checked, broken_id=row.pk,
                                    reason="row_hash does not match the row's contents (the row was changed)")
            expected_prev = row.row_hash
            checked += 1
            last_id = row.pk

"""The audit trail's hash chain: rows are appended without a lock and sealed into the chain in batches.

Appending (the request path, ``audit_record``): a row gets its id from a sequence and its own
``row_hash = sha256(canonical JSON of the row's fields)`` at insert. No lock, no read of a chain head:
audited transactions commit side by side.

Sealing (one sealer: the Celery beat task every second, ``manage.py audit_seal --loop``, or after each
commit in the embedded default, ``AUDIT["SEAL_ON_COMMIT"]``): ``chain_seal`` appends ``AuditSeal`` rows.
A seal covers every row with ``after_id < id <= last_id`` and stores
``seal_hash = sha256(prev seal's hash, after_id, last_id, row_count, sha256 of the rows' "id:row_hash"
lines, sealed_at)``, so the seals form a chain and each seal pins the exact set of rows under it. A
changed row no longer matches its ``row_hash``; a row changed and re-hashed, removed or slipped in no
longer matches its seal; a removed seal breaks the next seal's ``prev_hash``.

Which rows may be sealed: ids come from a sequence, and transactions commit in any order, so a row
with a smaller id can become visible after a larger one. A seal may only cover ids that are *final*.
On PostgreSQL the id default (``audit_event_next_id()``, migration audit 0012) gives the writing
transaction its transaction id *before* it takes the sequence value. The sealer reads the sequence's
last value S, then lists the transactions of this database that have a transaction id, and waits
until none of those is running: every id <= S was then taken by a transaction that has ended, so each
is committed (visible) or never will be (rolled back: a gap). Transactions that start later can only
take ids above S. On SQLite writers are serialised and the sealer's own
write transaction excludes them. Two sealers: ``pg_try_advisory_xact_lock`` held by the sealer's
transaction only (never by a request; fine behind PgBouncer in transaction mode), the loser returns at
once; a unique ``after_id`` refuses a fork even so.

Retention deletes whole sealed batches from the start (never the newest seal) and appends an
``audit.retention.pruned`` row naming the last deleted seal (``last_deleted_id``, ``last_deleted_hash``):
the oldest remaining seal must follow it, so removing rows or seals from the start is detected too.
docs/audit.md explains the design, the guarantees and their limits.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

# Any constant: the key of the sealer's advisory lock (transaction-level; only sealers and retention take it).
SEAL_LOCK_KEY = 0x6D63615F7365616C  # "mca_seal"
GENESIS = ""
SEQUENCE = "audit_auditevent_seq"  # PostgreSQL: the ids of audit rows (migration audit 0012)


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def _str_or_none(value):
    return str(value) if value is not None else None


def row_digest(row, prev_hash: str = GENESIS) -> str:
    """The hash of one row's contents (an AuditEvent or anything with the same attributes). Rows written
    since the seal (audit 0012) have ``prev_hash`` empty; older rows keep the link they were written with."""
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


def seal_digest(*, prev_hash: str, after_id: int, last_id: int, row_count: int, rows_digest: str,
                sealed_at: datetime) -> str:
    """The hash of one seal: the previous seal's hash, the id range, how many rows, their hashes, when."""
    canonical = json.dumps({"prev_hash": prev_hash, "after_id": after_id, "last_id": last_id, "row_count": row_count,
                            "rows": rows_digest, "sealed_at": _iso(sealed_at)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _RowsDigest:
    """sha256 over ``"<id>:<row_hash>\\n"`` of the rows of one seal, in id order."""

    def __init__(self):
        self._h, self.count = hashlib.sha256(), 0

    def add(self, pk: int, row_hash: str) -> None:
        self._h.update(f"{pk}:{row_hash}\n".encode())
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def chain_anchor() -> tuple[int, str]:
    """Where the first seal starts: (last deleted id, its seal hash) of the newest retention checkpoint,
    or (0, genesis) when nothing was ever pruned."""
    from audit.models import AuditEvent, EventType

    checkpoint = (AuditEvent.objects.filter(event=EventType.AUDIT_PRUNED).order_by("-id")
                  .values_list("context", flat=True).first())
    if not checkpoint:
        return 0, GENESIS
    return int(checkpoint.get("last_deleted_id") or 0), checkpoint.get("last_deleted_hash", GENESIS)


def chain_head() -> tuple[int, str]:
    """(last sealed id, head hash): the newest seal, or the anchor when there is none."""
    from audit.models import AuditSeal

    last = AuditSeal.objects.order_by("-last_id").values_list("last_id", "seal_hash").first()
    return last if last else chain_anchor()


# --- sealing ---------------------------------------------------------------------------------------

def seal_lock(*, wait: bool) -> bool:
    """The sealer's lock, until the current transaction ends (call inside atomic). PostgreSQL: an
    advisory lock of the transaction; SQLite: the write transaction already excludes the others."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
        return bool(cursor.fetchone()[0])


# The writing transactions that may hold an audit id: every other transaction of this database that has
# a transaction id (pg_stat_activity reads them live from the server's process array; clear its
# per-transaction snapshot first), and the prepared ones. A backend with no database (a background
# worker) counts too; only transactions of other databases of the cluster are left out.
_WRITERS = """
SELECT a.pid, a.backend_xid::text FROM pg_stat_activity AS a
WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
  AND (a.datname IS NULL OR a.datname = current_database())
UNION ALL
SELECT NULL, p.transaction::text FROM pg_prepared_xacts AS p WHERE p.database = current_database()
"""


def _writers(cursor) -> set:
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute(_WRITERS)
    return set(cursor.fetchall())


# Per database alias, in this process: an earlier round's (S, writers it waited for) that is not proven
# yet. Valid for ever once those writers have ended, so a round that cannot prove its own S (a writer
# is always open under steady traffic, and a seal after a commit never waits) still moves the seal on.
_earlier: dict[str, tuple[int, frozenset]] = {}


def _pg_horizon(wait: float) -> tuple[int, bool]:
    """(the largest id below which every id is final, whether that is the sequence's current value).

    A writer takes its transaction id before its audit id (``audit_event_next_id()``), so every audit
    id up to the sequence's value S read first belongs to a transaction that had its id when the
    writers were listed next: once none of those is running any more, every id <= S is final. If one
    is still running after ``wait`` seconds, an earlier round's S whose writers have all ended since
    is final instead (or 0)."""
    alias = connection.alias
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sequence_last_value(%s::regclass)", [SEQUENCE])
        horizon = cursor.fetchone()[0] or 0
        deadline = time.monotonic() + wait
        running = _writers(cursor)
        waiting_on = set(running)
        while waiting_on and time.monotonic() < deadline:
            time.sleep(0.002)
            running = _writers(cursor)
            waiting_on &= running
    if not waiting_on:
        _earlier.pop(alias, None)
        return horizon, True
    earlier = _earlier.get(alias)
    if earlier is None or not (earlier[1] & running):
        _earlier[alias] = (horizon, frozenset(waiting_on))
    if earlier is not None and not (earlier[1] & running):
        return earlier[0], False
    return 0, False


@dataclass
class SealResult:
    rows: int = 0  # rows sealed by this call
    seals: int = 0  # seals appended
    last_id: int = 0  # the chain now reaches this row id
    busy: bool = False  # another sealer held the lock: it does the work
    waiting: bool = False  # a writer that may hold an id was still running: sealed only what was final before


def chain_seal(*, wait: float = 0.0, max_rows: int = 50_000, batch_size: int = 5_000) -> SealResult:
    """Seal the final rows after the chain's head: seals of at most ``batch_size`` rows, at most
    ``max_rows`` rows per call (call again while it returns ``rows == max_rows``). Never blocks on a lock:
    another sealer at work means ``busy`` and nothing done. ``wait``: how long to wait for transactions
    that may still commit a row inside the range (PostgreSQL)."""
    from audit.models import AuditEvent, AuditSeal

    result = SealResult()
    with transaction.atomic():
        if not seal_lock(wait=False):
            result.busy = True
            return result
        if connection.vendor == "postgresql":
            horizon, complete = _pg_horizon(wait)
            result.waiting = not complete  # a writer is open: sealed only what is provably final
        else:
            horizon = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        after_id, prev_hash = chain_head()
        result.last_id = after_id
        while result.rows < max_rows:
            limit = min(batch_size, max_rows - result.rows)
            rows = list(AuditEvent.objects.filter(id__gt=after_id, id__lte=horizon).order_by("id")
                        .values_list("id", "row_hash")[:limit])
            if not rows:
                break
            digest = _RowsDigest()
            for pk, row_hash in rows:
                digest.add(pk, row_hash)
            last_id, sealed_at = rows[-1][0], timezone.now()
            seal_hash = seal_digest(prev_hash=prev_hash, after_id=after_id, last_id=last_id, row_count=digest.count,
                                    rows_digest=digest.hexdigest(), sealed_at=sealed_at)
            AuditSeal(after_id=after_id, last_id=last_id, row_count=digest.count, prev_hash=prev_hash,
                      seal_hash=seal_hash, sealed_at=sealed_at).save()
            after_id, prev_hash = last_id, seal_hash
            result.rows += digest.count
            result.seals += 1
            result.last_id = last_id
    return result


# --- verifying -------------------------------------------------------------------------------------

@dataclass
class VerifyResult:
    ok: bool
    checked: int  # sealed rows verified
    broken_id: int | None = None  # the first row that does not match its own hash
    broken_seal: int | None = None  # the first seal that does not match its rows or its predecessor
    broken_range: tuple[int, int] | None = None  # (after_id, last_id] of that seal
    reason: str = ""
    head: str = ""  # the newest seal's hash (anchor it elsewhere: see docs/audit.md)
    seals: int = 0
    sealed_to: int = 0  # the chain reaches this row id
    unsealed: int = 0  # rows after it, not sealed yet
    unsealed_since: datetime | None = None  # created_at of the oldest of them


def chain_verify(*, batch_size: int = 2000) -> VerifyResult:
    """Walk the seals in order and every row under each; report the first mismatch, how far the seal
    reaches and what is not sealed yet."""
    from audit.models import AuditEvent, AuditSeal

    anchor_id, expected_prev = chain_anchor()
    expected_after = anchor_id
    checked = seals = 0
    first = AuditSeal.objects.order_by("after_id").values_list("after_id", flat=True).first()
    start = first if first is not None else anchor_id
    stray = AuditEvent.objects.filter(id__lte=start).order_by("id").values_list("id", flat=True).first()
    if stray is not None:
        return VerifyResult(ok=False, checked=0, broken_id=stray, reason="a row lies before the start of the "
                            "chain (it was added behind the sealer's back)")
    for seal in AuditSeal.objects.order_by("after_id").iterator(chunk_size=500):
        rng = (seal.after_id, seal.last_id)
        if seal.prev_hash != expected_prev or seal.after_id != expected_after:
            reason = ("the oldest seal does not follow the last retention checkpoint (rows were removed from "
                      "the start)" if seals == 0 else
                      "the seal does not follow the seal before it (a seal was removed or changed)")
            return VerifyResult(ok=False, checked=checked, broken_seal=seal.pk, broken_range=rng, reason=reason,
                                seals=seals, sealed_to=expected_after)
        digest, last_pk = _RowsDigest(), seal.after_id
        while True:
            rows = list(AuditEvent.objects.filter(id__gt=last_pk, id__lte=seal.last_id).order_by("id")[:batch_size])
            if not rows:
                break
            for row in rows:
                if row_digest(row, row.prev_hash) != row.row_hash:
                    return VerifyResult(ok=False, checked=checked, broken_id=row.pk, broken_seal=seal.pk,
                                        broken_range=rng, seals=seals, sealed_to=expected_after,
                                        reason="row_hash does not match the row's contents (the row was changed)")
                digest.add(row.pk, row.row_hash)
            last_pk = rows[-1].pk
        recomputed = seal_digest(prev_hash=seal.prev_hash, after_id=seal.after_id, last_id=seal.last_id,
                                 row_count=seal.row_count, rows_digest=digest.hexdigest(), sealed_at=seal.sealed_at)
        if digest.count != seal.row_count or recomputed != seal.seal_hash:
            if digest.count < seal.row_count:
                reason = f"{seal.row_count - digest.count} row(s) it sealed were removed"
            elif digest.count > seal.row_count:
                reason = f"{digest.count - seal.row_count} row(s) were added inside it"
            else:
                reason = "a row it sealed was changed and re-hashed, or the seal itself was changed"
            return VerifyResult(ok=False, checked=checked, broken_seal=seal.pk, broken_range=rng, seals=seals,
                                sealed_to=expected_after, reason=f"the rows no longer match their seal: {reason}")
        checked += digest.count
        seals += 1
        expected_prev, expected_after = seal.seal_hash, seal.last_id
    pending = AuditEvent.objects.filter(id__gt=expected_after).aggregate(count=Count("id"), oldest=Min("created_at"))
    return VerifyResult(ok=True, checked=checked, head=expected_prev, seals=seals, sealed_to=expected_after,
                        unsealed=pending["count"], unsealed_since=pending["oldest"])

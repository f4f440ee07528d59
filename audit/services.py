"""The one way to write the audit trail: ``audit_record``, called inside the service's transaction.

Flood control: a refusal that concerns nobody known (no actor, subject, session or organization:
unknown refresh tokens, link tokens and client ids, logins and resets for unknown addresses, rate
limits of anonymous clients) is written in full only the first time per refused event, client network
and window (``AUDIT["FLOOD_WINDOW_SECONDS"]``, at most ``FLOOD_ROWS_PER_WINDOW`` networks per window);
the rest are counted in the cache, and ``audit_refusals_flush`` (every minute, and during a flood)
writes one ``audit.refusals.counted`` row per event and ended window with the count. Every refusal
that concerns a known user, session or organization is written in full, each time. So garbage cannot
flood the hash-chained trail, and no refusal goes uncounted (docs/security.md, "Flood control").
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, UTC
from typing import Any

from django.core.cache import caches
from django.db import models, transaction
from django.utils import timezone

from audit.app_settings import app_settings
from audit.chain import SealResult, chain_seal, row_digest, seal_lock
from audit.models import AuditEvent, AuditSeal, EventType
from core import metrics
from core.outage import cause
from core.prepared import PreparedInsert
from core.request_meta import client_ip, client_network, user_agent

logger = logging.getLogger(__name__)

SECRET_KEY_PARTS = ("password", "token", "secret", "code", "key", "authorization", "cookie")
MASK = "********"


def _clean(value: Any, key: str = "") -> Any:
    """Make a context value JSON-safe and mask anything that looks like a secret."""
    if key and any(part in key.lower() for part in SECRET_KEY_PARTS) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_clean(v) for v in value]
    if isinstance(value, models.Model):
        return {"app": value._meta.app_label, "model": value._meta.model_name, "pk": str(value.pk)}
    if isinstance(value, uuid.UUID):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def email_mask(address: str) -> str:
    """``nia@example.com`` -> ``n***@example.com``: enough for the owner to recognise the address,
    not enough to read it (audit context of email changes, notices to the old address)."""
    local, _, domain = (address or "").rpartition("@")
    return f"{local[:1]}***@{domain}" if local and domain else MASK


def audit_record(
    *,
    event: EventType,
    request=None,
    actor=None,
    subject=None,
    session=None,
    organization=None,
    success: bool = True,
    **context: Any,
) -> AuditEvent | None:
    """Append one event. ``actor`` did it, ``subject`` is whom it concerns (defaults to the actor);
    ``session`` is a DeviceSession or its id, ``organization`` an Organization or its id. Context keys
    that name secrets are masked. A refusal that concerns nobody known may only be counted (flood
    control, above): then nothing is written and None is returned."""
    if subject is None:
        subject = actor
    # Login, refresh and lockout counters (core/metrics.py), once the event's transaction committed.
    transaction.on_commit(lambda: metrics.audit_counted(event, success, context), robust=True)
    session_id = getattr(session, "pk", session)
    organization_id = getattr(organization, "pk", organization)
    anonymous = not getattr(actor, "pk", None) and not getattr(subject, "pk", None)
    if not success and anonymous and session_id is None and organization_id is None \
            and _refusal_counted_only(kind=_kind(event, context), request=request, now=timezone.now()):
        return None
    row = AuditEvent(
        event=event,
        actor=actor if getattr(actor, "pk", None) else None,
        subject=subject if getattr(subject, "pk", None) else None,
        session_id=session_id,
        organization_id=organization_id,
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        success=success,
        context=_clean(context),
    )
    return _append(row)


_INSERT = PreparedInsert(AuditEvent)


def _append(row: AuditEvent) -> AuditEvent:
    """Insert the row with its own hash: no lock, no chain head (the sealer links it, audit/chain.py)."""
    # JSON round trip: the hash covers exactly what the database will give back.
    row.context = json.loads(json.dumps(row.context))
    row.created_at = timezone.now()
    row.prev_hash = ""
    row.row_hash = row_digest(row)
    _INSERT.execute(row)  # AuditEvent.save(force_insert=True), compiled once (core/prepared.py)
    if app_settings.SEAL_ON_COMMIT:
        transaction.on_commit(_seal_after_commit, robust=True)
    return row


def _seal_after_commit() -> None:
    chain_seal(wait=0)  # never waits: a row it cannot seal yet goes with the next commit's seal


def audit_seal(*, wait: float | None = None, max_rows: int = 50_000) -> SealResult:
    """Seal what is final after the chain's head (the beat task every second, ``manage.py audit_seal``).
    Safe with several sealers: one works, the others return ``busy``."""
    return chain_seal(wait=app_settings.SEAL_WAIT_SECONDS if wait is None else wait, max_rows=max_rows)


# --- flood control ----------------------------------------------------------------------------------

KIND_KEYS = ("scope", "reason")  # context keys whose (code) values tell refusals of one event apart
_CODE = re.compile(r"[a-z][a-z0-9_.]{0,63}")


def _kind(event: str, context: dict) -> str:
    """What a refusal is counted as: its event, plus its ``scope`` / ``reason`` when they are codes
    (``security.rate_limited|scope=login``, ``auth.token.refresh_failed|reason=unknown``)."""
    parts = [str(event)]
    for key in KIND_KEYS:
        value = context.get(key)
        if isinstance(value, str) and _CODE.fullmatch(value):
            parts.append(f"{key}={value}")
    return "|".join(parts)


def _window(now: datetime) -> int:
    return int(now.timestamp()) // app_settings.FLOOD_WINDOW_SECONDS


def _incr(cache, key: str) -> int:
    cache.add(key, 0, app_settings.FLOOD_KEEP_SECONDS)
    return cache.incr(key)


def _refusal_counted_only(*, kind: str, request, now: datetime) -> bool:
    """True: count this refusal instead of writing it (it is not the first of its kind from its client
    network in this window, or FLOOD_ROWS_PER_WINDOW networks already have a row of that kind). The
    cache failing means False: the row is written (nothing is ever lost, never a 500)."""
    if not app_settings.FLOOD_CONTROL:
        return False
    window, prefix, keep = _window(now), app_settings.FLOOD_PREFIX, app_settings.FLOOD_KEEP_SECONDS
    base = f"{prefix}:{window}:{kind}"
    network = client_network(request) or "unknown"
    try:
        cache = caches["default"]
        counted = True
        if cache.add(f"{base}:seen:{network}", 1, keep):
            counted = _incr(cache, f"{base}:networks") > app_settings.FLOOD_ROWS_PER_WINDOW
        if counted:
            _incr(cache, f"{base}:counted")
            if cache.add(f"{base}:listed", 1, keep):  # the window's list of kinds to summarise
                cache.set(f"{prefix}:{window}:kind:{_incr(cache, f'{prefix}:{window}:kinds')}", kind, keep)
        if cache.add(f"{prefix}:flushed:{window}", 1, app_settings.FLOOD_WINDOW_SECONDS * 2):
            # Once per window while refusals come in: summarise the windows that have ended
            # (after the caller's transaction, so a rollback there cannot take a summary with it).
            transaction.on_commit(lambda: _flush_quietly(now))
    except Exception as exc:
        logger.warning("audit flood control unavailable (cache): the refusal is written in full (%s)", cause(exc))
        return False
    return counted


def _flush_quietly(now: datetime) -> None:
    try:
        audit_refusals_flush(now=now)
    except Exception:  # the periodic task tries again; the counts wait in the cache
        logger.warning("audit refusals flush failed", exc_info=True)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _summary_context(kind: str, count: int, networks: int, window: int) -> dict:
    event, *details = kind.split("|")
    seconds = app_settings.FLOOD_WINDOW_SECONDS
    return {"event": event, **dict(d.split("=", 1) for d in details), "count": count, "networks": networks,
            "window_start": _iso(window * seconds), "window_end": _iso((window + 1) * seconds)}


def audit_refusals_flush(*, now: datetime | None = None) -> int:
    """Write one ``audit.refusals.counted`` row per kind of refusal (event, and its scope or reason)
    and ended window whose refusals were counted instead of written: ``event``, ``scope``/``reason``,
    ``count``, ``networks`` (distinct client networks in the window), ``window_start``, ``window_end``.
    Returns how many rows it wrote. What a row summarises is subtracted from the counters only after
    its transaction committed, so a count is never lost (a crash in between may summarise it twice);
    one flush at a time (a lock in the cache)."""
    now = now or timezone.now()
    prefix = app_settings.FLOOD_PREFIX
    current = _window(now)
    windows = range(current - app_settings.FLOOD_KEEP_SECONDS // app_settings.FLOOD_WINDOW_SECONDS, current)
    cache = caches["default"]
    lock = f"{prefix}:flush-lock"
    if not cache.add(lock, 1, 60):
        return 0
    written = 0
    try:
        listed = cache.get_many([f"{prefix}:{w}:kinds" for w in windows])
        for window in windows:
            slots = listed.get(f"{prefix}:{window}:kinds") or 0
            if slots <= 0:
                continue
            kinds = set(cache.get_many([f"{prefix}:{window}:kind:{i}" for i in range(1, slots + 1)]).values())
            counted_keys = {f"{prefix}:{window}:{kind}:counted": kind for kind in kinds}
            counts = {k: v for k, v in cache.get_many(list(counted_keys)).items() if v and v > 0}
            if not counts:
                continue
            networks = cache.get_many([f"{prefix}:{window}:{counted_keys[k]}:networks" for k in counts])
            with transaction.atomic():
                for key in sorted(counts):
                    kind = counted_keys[key]
                    _append(AuditEvent(event=EventType.AUDIT_REFUSALS_COUNTED, success=False, context=_summary_context(
                        kind, counts[key], networks.get(f"{prefix}:{window}:{kind}:networks") or 0, window)))
            written += len(counts)
            for key, count in counts.items():
                try:
                    cache.decr(key, count)
                except ValueError:  # expired meanwhile: nothing left to subtract from
                    pass
    finally:
        cache.delete(lock)
    return written


def audit_retention_enforce(*, now: datetime | None = None) -> int:
    """Delete audit rows older than RETENTION in whole sealed batches, oldest first, with their seals,
    and append a checkpoint row that names the last deleted seal, so ``audit_verify`` still proves the
    rest of the chain. Rows not sealed yet and the newest seal always stay."""
    cutoff = (now or timezone.now()) - app_settings.RETENTION
    with transaction.atomic():
        seal_lock(wait=True)  # the sealer's lock (a worker waits for the sealer; no request takes it)
        newest = AuditSeal.objects.order_by("-last_id").values_list("last_id", flat=True).first()
        if newest is None:
            return 0
        candidates = AuditSeal.objects.filter(last_id__lt=newest)
        first_recent = AuditEvent.objects.filter(created_at__gte=cutoff).order_by("id").values_list("id", flat=True)
        first_recent = first_recent.first()
        if first_recent is not None:
            candidates = candidates.filter(last_id__lt=first_recent)
        last = candidates.order_by("-last_id").values("last_id", "seal_hash").first()
        if last is None:
            return 0
        # A prefix by id: the chain stays contiguous even if a clock ever went backwards.
        deleted = AuditEvent.objects.filter(id__lte=last["last_id"]).delete()[0]
        AuditSeal.objects.filter(last_id__lte=last["last_id"]).delete()
        audit_record(event=EventType.AUDIT_PRUNED, deleted=deleted, last_deleted_id=last["last_id"],
                     last_deleted_hash=last["seal_hash"], cutoff=cutoff.isoformat())
    return deleted

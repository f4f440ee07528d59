"""The cookie cache: an encrypted, signed snapshot of the browser's session and user in a second cookie.

While the snapshot is fresh (``SESSIONS["COOKIE_CACHE_SECONDS"]``, default 5 minutes) the pages that
only need the user and ``GET /api/v1/auth/session`` answer from it without a database query. The
snapshot is a JWE (``dir`` + ``A256GCM``, joserfc) under a key derived from the key-encryption root,
and it names the hash of the session cookie it belongs to, so it never outlives or outswitches its
session cookie. A stale or undecryptable snapshot only means one trip to the database and a new
snapshot, never a sign-out.

Revocation: revoking a session writes ``mca:revoked:sid:<sid>`` and revoking all of a user's sessions
``mca:revoked:user-before:<uid>`` (a timestamp); a change to what a snapshot says about a user (email,
role, an organization membership, the active organization of one of their sessions) writes
``mca:stale:user:<uid>`` (a timestamp), and a change to an organization's session policy
``mca:stale:org:<id>``. The marks of one transaction go out together after its commit, in one Redis
pipeline with a short timeout (``REVOCATION_MARK_TIMEOUT``); marks that do not get through (Redis down
or hung) are kept in the database (``PendingRevocationMark``) and sent again by the next write that gets
through, by the process that saw the outage before it trusts Redis again, and by the
``revocation_marks_resend`` task. A cache hit looks the marks up in one ``MGET``; a snapshot issued
before a mark goes to the database, which answers and issues a new one. Without Redis the marks live in
this process's memory: the embedded single-process default sees every revocation at once; another
process would not, so there a snapshot answers until it goes stale (docs/browser.md gives the window).
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from core.crypto import derive_key, key_encryption_root
from core.outage import cause
from sessions_app.app_settings import app_settings
from sessions_app.models import PendingRevocationMark

logger = logging.getLogger(__name__)

PURPOSE = "sessions.cookie-cache"
PROTECTED = {"alg": "dir", "enc": "A256GCM"}
ALGORITHMS = ["dir", "A256GCM"]
VERSION = 2  # 2: with the active organization ("org") for GET token


@functools.lru_cache(maxsize=4)
def _key_for(root: bytes) -> OctKey:
    return OctKey.import_key(derive_key(root, purpose=PURPOSE))


def _key() -> OctKey:
    return _key_for(key_encryption_root())


def snapshot_encode(*, key_hash: str, session: dict, user: dict, user_private: dict, org: dict | None = None,
                    not_after: float | None = None, now: float | None = None) -> str:
    """``session`` and ``user`` are the API representations (Session without ``current``, User);
    ``user_private`` the fields pages need besides them (is_active, is_staff, is_superuser); ``org`` the
    active organization's ``{"id", "role"}`` for ``GET token`` (None: no active organization).
    ``not_after`` caps the freshness (an organization's session policy must be judged by then)."""
    now = time.time() if now is None else now
    exp = now + app_settings.COOKIE_CACHE_TTL.total_seconds()
    if not_after is not None:
        exp = min(exp, not_after)
    payload = {"v": VERSION, "kh": key_hash, "iat": now, "exp": exp,
               "session": session, "user": user, "up": user_private, "org": org}
    data = json.dumps(payload, separators=(",", ":")).encode()
    return jwe.encrypt_compact(PROTECTED, data, _key(), algorithms=ALGORITHMS)


class _PlaintextMemo:
    """Decrypted snapshots by (token, key root), each kept for at most ``COOKIE_CACHE_TTL`` after this
    process first decrypted it, and at most ``maxsize`` of them (the oldest go first).

    A browser sends the same snapshot with each request until it is re-issued (every few minutes), so
    each process decrypts it once. A snapshot is fresh for at most the TTL after it was issued, which
    was before this process first saw it: past that the entry can never answer again (the browser has a
    new snapshot), so it goes, and the memo holds only the snapshots of the last TTL (one or two per
    active browser) instead of filling up with re-issued ones until its bound (an unbounded-looking
    climb in a soak, issue 16). Entries are inserted in order of expiry, so the oldest one is both the
    first to expire and the one evicted at the bound. An entry is about 1.8 KiB (the token, 1 KiB, and
    its plaintext, 0.8 KiB, measured with tracemalloc in bench/soak): 4096 entries, 7 MiB a worker at
    most, cover 4096 browsers active within one TTL in one worker; beyond that a request decrypts
    (tens of microseconds), it does not fail. Every use still checks the binding to the session cookie,
    freshness and revocation; a token that does not decrypt raises and is not kept."""

    def __init__(self, maxsize: int, clock=time.monotonic):
        self.maxsize = maxsize
        self.clock = clock
        self._entries: OrderedDict[tuple[str, bytes], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries and (len(entries) > self.maxsize or next(iter(entries.values()))[0] <= now):
            entries.popitem(last=False)

    def __call__(self, token: str, root: bytes) -> bytes:
        now = self.clock()
        key = (token, root)
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > now:
                return found[1]
        plaintext = jwe.decrypt_compact(token, _key_for(root), algorithms=ALGORITHMS).plaintext
        ttl = app_settings.COOKIE_CACHE_TTL.total_seconds()
        with self._lock:
            if ttl > 0:
                self._entries.pop(key, None)
                self._entries[key] = (now + ttl, plaintext)
            self._expire(now)
        return plaintext


_plaintext = _PlaintextMemo(maxsize=4096)


def snapshot_decode(token: str, *, key_hash: str, now: float | None = None) -> dict | None:
    """The snapshot if it decrypts, belongs to this session cookie and is fresh; else None."""
    if not token or len(token) > 8192:
        return None
    try:
        # a new dict each time: callers may not share one
        payload = json.loads(_plaintext(token, key_encryption_root()))
    except (JoseError, ValueError, TypeError, UnicodeError):
        return None
    if not isinstance(payload, dict) or payload.get("v") != VERSION or payload.get("kh") != key_hash:
        return None
    now = time.time() if now is None else now
    exp = payload.get("exp")
    if not isinstance(exp, (int, float)) or exp <= now:
        return None
    session_expires = payload["session"].get("expiresAtTs")
    if isinstance(session_expires, (int, float)) and session_expires <= now:
        return None
    return payload


def _sid_key(sid) -> str:
    return f"mca:revoked:sid:{sid}"


def _user_key(uid) -> str:
    return f"mca:revoked:user-before:{uid}"


def _stale_key(uid) -> str:
    return f"mca:stale:user:{uid}"


def _org_key(org_id) -> str:
    return f"mca:stale:org:{org_id}"


_redis_client: tuple[str, object] | None = None


def _redis():
    """One client (and connection pool) per process for the revocation marks. Django's cache API
    builds a new client object on every call, which costs more than the lookup itself on the hot path.
    Short timeouts and no retries: a Redis that does not answer must not hold a request up."""
    global _redis_client
    url = settings.REDIS_URL
    if _redis_client is None or _redis_client[0] != url:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        timeout = app_settings.REVOCATION_MARK_TIMEOUT
        _redis_client = (url, redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                                   retry=Retry(NoBackoff(), 0)))
    return _redis_client[1]


_local = threading.local()


def _marks_connection():
    """A Redis connection of this thread's own for the hot path's MGET: the client's pool and retry
    layers cost as much again as the round trip (34 against 62 us here)."""
    url = settings.REDIS_URL
    conn = getattr(_local, "conn", None)
    if conn is None or _local.url != url:
        conn = _redis().connection_pool.make_connection()
        _local.conn, _local.url = conn, url
    return conn


# --- after an outage ----------------------------------------------------------------------------------
# A process that saw a Redis call fail pauses Redis for REVOCATION_OUTAGE_PAUSE (hits ask the database,
# new marks go straight to the pending table), and sends the pending marks before it trusts a lookup
# again: a mark that never reached Redis would otherwise let a revoked session's snapshot answer.

_failed_at: dict[str, float] = {}  # Redis URL -> monotonic time of this process's last failed call
_resend_needed: set[str] = set()  # Redis URLs this process saw fail since its last successful resend


def _redis_failed() -> None:
    _failed_at[settings.REDIS_URL] = time.monotonic()
    _resend_needed.add(settings.REDIS_URL)


def _redis_paused() -> bool:
    failed = _failed_at.get(settings.REDIS_URL)
    return failed is not None and time.monotonic() - failed < app_settings.REVOCATION_OUTAGE_PAUSE


def _marks_get(keys: list[str]) -> list:
    if settings.REDIS_URL:
        conn = _marks_connection()
        try:
            conn.send_command("MGET", *keys)
            return conn.read_response()
        except BaseException:
            conn.disconnect()  # the next lookup reconnects; this one counts as "ask the database"
            raise
    found = cache.get_many(keys)  # the embedded default: this process only
    return [found.get(key) for key in keys]


def revoked_since(payload: dict) -> bool:
    """One shared-cache round trip (MGET): was the snapshot's session, or every session of its user,
    revoked after the snapshot was issued, or has what it says about the user changed since? Off
    (False) without REVOCATION_CHECK; a cache error, a pause after one, or marks of an outage not yet
    re-sent count as revoked, so the caller checks the database instead."""
    if not app_settings.REVOCATION_CHECK:
        return False
    uid, org = payload["user"]["id"], payload.get("org")
    keys = [_sid_key(payload["session"]["id"]), _user_key(uid), _stale_key(uid)]
    if org:
        keys.append(_org_key(org["id"]))
    if settings.REDIS_URL and (_redis_paused()
                               or (settings.REDIS_URL in _resend_needed and not revocation_marks_resend())):
        return True
    try:
        by_sid, *since = _marks_get(keys)
    except Exception as exc:  # noqa: BLE001 - Redis down: the database decides
        _redis_failed()
        logger.warning("revocation lookup failed; falling back to the database (%s)", cause(exc))
        return True
    if by_sid is not None:
        return True
    iat = payload["iat"]
    return any(mark is not None and iat <= float(mark) for mark in since)


# --- writing marks --------------------------------------------------------------------------------------

def _ttl() -> int:
    # A mark only has to outlive every snapshot issued before it.
    return int(app_settings.COOKIE_CACHE_TTL.total_seconds()) + 60


# A timestamp mark only ever moves forward: a late or re-sent older value must not hide a newer one.
_SET_IF_NEWER = """
local current = tonumber(redis.call('GET', KEYS[1]))
if (not current) or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def _is_flag(key: str) -> bool:
    return key.startswith("mca:revoked:sid:")


def _pipeline_send(marks: list[tuple[str, str, int]]) -> None:
    pipe = _redis().pipeline(transaction=False)
    for key, value, ttl in marks:
        if _is_flag(key):
            pipe.set(key, value, ex=ttl)
        else:
            pipe.eval(_SET_IF_NEWER, 1, key, value, ttl)
    pipe.execute()


def _local_set(key: str, value: str, ttl: int) -> None:
    """The embedded default: this process's cache, with the same only-forward rule."""
    if not _is_flag(key):
        current = cache.get(key)
        if current is not None and float(current) >= float(value):
            return
    cache.set(key, value, timeout=ttl)


def _pending_keep(marks: list[tuple[str, str, int]]) -> None:
    now = timezone.now()
    try:
        PendingRevocationMark.objects.bulk_create([
            PendingRevocationMark(key=key, value=value, expires_at=now + timedelta(seconds=ttl), created_at=now)
            for key, value, ttl in marks])
    except Exception as exc:  # noqa: BLE001 - the revocation itself is committed; only the fast path may lag (TTL)
        logger.error("could not keep %d revocation marks for later (%s)", len(marks), cause(exc))


def marks_publish(marks: list[tuple[str, str | None, int]]) -> bool:
    """Write cookie-cache marks ``(key, value, ttl)`` (value None: the time now, a timestamp mark) and
    every mark still pending from an outage, in one Redis pipeline with a short timeout. True when they
    reached Redis (or, without Redis, this process's cache); otherwise they are kept in the database
    and sent again later (``revocation_marks_resend``)."""
    now = repr(time.time())
    resolved = [(key, now if value is None else str(value), ttl) for key, value, ttl in marks]
    if not settings.REDIS_URL:
        for mark in resolved:
            _local_set(*mark)
        return True
    if _redis_paused():
        _pending_keep(resolved)
        return False
    pending, ids = _pending_marks()
    try:
        _pipeline_send(resolved + pending)
    except Exception as exc:  # noqa: BLE001 - kept in the database, sent again after the outage
        _redis_failed()
        logger.warning("could not publish %d cookie-cache marks; kept for later (%s)", len(resolved), cause(exc))
        _pending_keep(resolved)
        return False
    _pending_forget(ids)
    return True


def _pending_marks() -> tuple[list[tuple[str, str, int]], list[int] | None]:
    """One batch of pending marks: those still worth sending, with their remaining TTL, and the ids to
    delete once they are sent (with the expired ones, which need no sending). One query. The ids are
    None when the table could not be read (the database is down too): what is pending is unknown."""
    now = timezone.now()
    try:
        rows = list(PendingRevocationMark.objects.order_by("id")[:app_settings.PENDING_MARKS_BATCH])
    except Exception as exc:  # noqa: BLE001 - the database is down too: nothing to add now
        logger.warning("could not read the pending revocation marks (%s)", cause(exc))
        return [], None
    marks = [(row.key, row.value, int((row.expires_at - now).total_seconds()) + 1) for row in rows
             if row.expires_at > now]
    return marks, [row.pk for row in rows]


def _pending_forget(ids: list[int]) -> None:
    if ids:
        PendingRevocationMark.objects.filter(pk__in=ids).delete()


def revocation_marks_resend() -> bool:
    """Send the marks kept during an outage (one pipeline per batch). True when nothing is left pending
    (also without Redis: marks were never kept then)."""
    if not settings.REDIS_URL:
        return True
    while True:
        pending, ids = _pending_marks()
        if ids is None:
            return False  # unknown while the database does not answer: not trusted yet
        if pending:
            try:
                _pipeline_send(pending)
            except Exception:  # noqa: BLE001 - still down: try again later
                _redis_failed()
                logger.warning("Redis still unavailable; %d revocation marks stay pending", len(pending))
                return False
        _pending_forget(ids)  # sent, or expired: no snapshot they could refuse is left
        if len(ids) < app_settings.PENDING_MARKS_BATCH:
            _resend_needed.discard(settings.REDIS_URL)
            return True


class _MarkBatch:
    """The marks of one transaction, sent together after its commit (one pipeline however many sessions
    it revoked)."""

    def __init__(self):
        self.marks: list[tuple[str, str | None, int]] = []

    def __call__(self):
        if getattr(_local, "batch", None) is self:
            _local.batch = None
        marks_publish(self.marks)


def marks_publish_on_commit(marks: list[tuple[str, str | None, int]]) -> None:
    """Publish ``marks`` once the current transaction commits (at once outside one), batched with the
    other marks of the transaction. A timestamp mark (value None) takes the time of publishing: after
    the commit, so a snapshot issued from the old row before the commit still counts as older."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        marks_publish(marks)
        return
    batch = getattr(_local, "batch", None)
    # A batch whose commit callback was discarded (rolled back) is not reused. (Marks added inside a
    # savepoint that is rolled back while the outer transaction commits are still sent: a needless mark
    # only sends a snapshot to the database once more.)
    if batch is None or not any(callback is batch for _, callback, _ in connection.run_on_commit):
        batch = _local.batch = _MarkBatch()
        batch.marks.extend(marks)  # before registering: a callback may run as soon as it is registered
        transaction.on_commit(batch)
        return
    batch.marks.extend(marks)


def revocation_mark_session(sid) -> None:
    """After the commit: this session's snapshots stop answering."""
    marks_publish_on_commit([(_sid_key(sid), "1", _ttl())])


def revocation_mark_user(uid) -> None:
    """After the commit: every snapshot of ``uid``'s sessions issued before it goes to the database once."""
    marks_publish_on_commit([(_user_key(uid), None, _ttl())])


# The users whose snapshots this request outdated (BrowserSessionMiddleware starts a set per request):
# the response must not issue a snapshot from what it loaded before the change.
changed_in_request: contextvars.ContextVar[set | None] = contextvars.ContextVar("changed_in_request", default=None)


def snapshot_invalidate_user(uid) -> None:
    """Snapshots of ``uid``'s sessions issued until the commit go to the database once (and are
    re-issued): their email, role, organization or active organization changed."""
    changed = changed_in_request.get()
    if changed is not None:
        changed.add(str(uid))
    marks_publish_on_commit([(_stale_key(uid), None, _ttl())])


def snapshot_invalidate_organization(org_id) -> None:
    """Snapshots with ``org_id`` active go to the database once (after the commit): its session policy
    changed."""
    marks_publish_on_commit([(_org_key(org_id), None, _ttl())])

"""The cookie cache: an encrypted, signed snapshot of the browser's session and user in a second cookie.

While the snapshot is fresh (``SESSIONS["COOKIE_CACHE_SECONDS"]``, default 5 minutes) the pages that
only need the user and ``GET /api/v1/auth/session`` answer from it without a database query. The
snapshot is a JWE (``dir`` + ``A256GCM``, joserfc) under a key derived from the key-encryption root,
and it names the hash of the session cookie it belongs to, so it never outlives or outswitches its
session cookie. A stale or undecryptable snapshot only means one trip to the database and a new
snapshot, never a sign-out.

Revocation: with Redis (``REDIS_URL``), revoking a session writes ``mca:revoked:sid:<sid>`` and
revoking all of a user's sessions writes ``mca:revoked:user-before:<uid>`` (a timestamp) after commit;
a change to what a snapshot says about a user (email, role, an organization membership, the active
organization of one of their sessions) writes ``mca:stale:user:<uid>`` (a timestamp), and a change to
an organization's session policy ``mca:stale:org:<id>``. A cache hit looks them up in one ``MGET``; a snapshot issued before a mark goes to the database, which answers and
issues a new one. Without Redis a snapshot keeps answering until it goes stale: at most the cache TTL.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from core.crypto import derive_key, key_encryption_root
from sessions_app.app_settings import app_settings

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


@functools.lru_cache(maxsize=4096)
def _plaintext(token: str, root: bytes) -> bytes:
    """The decrypted snapshot. A browser sends the same snapshot with each request until it is
    re-issued (every few minutes), so each process decrypts it once: the memo holds plaintexts of
    tokens that decrypted (a failure raises and is not kept), keyed by the token and the key, and
    every use still checks the binding to the session cookie, freshness and revocation."""
    return jwe.decrypt_compact(token, _key_for(root), algorithms=ALGORITHMS).plaintext


def snapshot_decode(token: str, *, key_hash: str, now: float | None = None) -> dict | None:
    """The snapshot if it decrypts, belongs to this session cookie and is fresh; else None."""
    if not token or len(token) > 8192:
        return None
    try:
        payload = json.loads(_plaintext(token, key_encryption_root()))  # a new dict each time: callers may not share one
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
    builds a new client object on every call, which costs more than the lookup itself on the hot path."""
    global _redis_client
    url = settings.REDIS_URL
    if _redis_client is None or _redis_client[0] != url:
        import redis

        _redis_client = (url, redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1))
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


def _mark_set(key: str, value, ttl: int) -> None:
    if settings.REDIS_URL:
        _redis().set(key, str(value), ex=ttl)
    else:
        cache.set(key, str(value), timeout=ttl)


def revoked_since(payload: dict) -> bool:
    """One shared-cache round trip (MGET): was the snapshot's session, or every session of its user,
    revoked after the snapshot was issued, or has what it says about the user changed since? Off
    (False) without REVOCATION_CHECK; a cache error counts as revoked so the caller checks the
    database instead."""
    if not app_settings.REVOCATION_CHECK:
        return False
    uid, org = payload["user"]["id"], payload.get("org")
    keys = [_sid_key(payload["session"]["id"]), _user_key(uid), _stale_key(uid)]
    if org:
        keys.append(_org_key(org["id"]))
    try:
        by_sid, *since = _marks_get(keys)
    except Exception:  # noqa: BLE001 - Redis down: the database decides
        logger.warning("revocation lookup failed; falling back to the database", exc_info=True)
        return True
    if by_sid is not None:
        return True
    iat = payload["iat"]
    return any(mark is not None and iat <= float(mark) for mark in since)


def _ttl() -> int:
    # A mark only has to outlive every snapshot issued before it.
    return int(app_settings.COOKIE_CACHE_TTL.total_seconds()) + 60


def revocation_mark_session(sid) -> None:
    try:
        _mark_set(_sid_key(sid), 1, _ttl())
    except Exception:  # noqa: BLE001 - the row is revoked; only the fast path may lag (by the TTL)
        logger.warning("could not publish the revocation of session %s", sid, exc_info=True)


def revocation_mark_user(uid, *, at: float | None = None) -> None:
    try:
        _mark_set(_user_key(uid), repr(time.time() if at is None else at), _ttl())
    except Exception:  # noqa: BLE001
        logger.warning("could not publish the revocation of the sessions of %s", uid, exc_info=True)


# The users whose snapshots this request outdated (BrowserSessionMiddleware starts a set per request):
# the response must not issue a snapshot from what it loaded before the change.
changed_in_request: contextvars.ContextVar[set | None] = contextvars.ContextVar("changed_in_request", default=None)


def snapshot_invalidate_user(uid) -> None:
    """Snapshots of ``uid``'s sessions issued until now go to the database once (and are re-issued):
    their email, role, organization or active organization changed."""
    changed = changed_in_request.get()
    if changed is not None:
        changed.add(str(uid))
    try:
        _mark_set(_stale_key(uid), repr(time.time()), _ttl())
    except Exception:  # noqa: BLE001 - only the fast path may lag, by at most the TTL
        logger.warning("could not publish a change to the sessions of %s", uid, exc_info=True)


def snapshot_invalidate_organization(org_id) -> None:
    """Snapshots with ``org_id`` active go to the database once: its session policy changed."""
    try:
        _mark_set(_org_key(org_id), repr(time.time()), _ttl())
    except Exception:  # noqa: BLE001
        logger.warning("could not publish a change to organization %s", org_id, exc_info=True)

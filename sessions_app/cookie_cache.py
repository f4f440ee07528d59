"""The cookie cache: an encrypted, signed snapshot of the browser's session and user in a second cookie.

While the snapshot is fresh (``SESSIONS["COOKIE_CACHE_SECONDS"]``, default 5 minutes) the pages that
only need the user and ``GET /api/v1/auth/session`` answer from it without a database query. The
snapshot is a JWE (``dir`` + ``A256GCM``, joserfc) under a key derived from the key-encryption root,
and it names the hash of the session cookie it belongs to, so it never outlives or outswitches its
session cookie. A stale or undecryptable snapshot only means one trip to the database and a new
snapshot, never a sign-out.

Revocation: with Redis (``REDIS_URL``), revoking a session writes ``mca:revoked:sid:<sid>`` and
revoking all of a user's sessions writes ``mca:revoked:user-before:<uid>`` (a timestamp) after commit;
a cache hit looks both up in one ``MGET``. Without Redis a revoked session's snapshot keeps
answering until it goes stale: at most the cache TTL.
"""

from __future__ import annotations

import functools
import json
import logging
import time

from django.conf import settings
from django.core.cache import cache
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from identity.crypto import derive_key, key_encryption_root
from sessions_app.app_settings import app_settings

logger = logging.getLogger(__name__)

PURPOSE = "sessions.cookie-cache"
PROTECTED = {"alg": "dir", "enc": "A256GCM"}
ALGORITHMS = ["dir", "A256GCM"]
VERSION = 1


@functools.lru_cache(maxsize=4)
def _key_for(root: bytes) -> OctKey:
    return OctKey.import_key(derive_key(root, purpose=PURPOSE))


def _key() -> OctKey:
    return _key_for(key_encryption_root())


def snapshot_encode(*, key_hash: str, session: dict, user: dict, user_private: dict, now: float | None = None) -> str:
    """``session`` and ``user`` are the API representations (Session without ``current``, User);
    ``user_private`` the fields pages need besides them (is_active, is_staff, is_superuser)."""
    now = time.time() if now is None else now
    payload = {"v": VERSION, "kh": key_hash, "iat": now, "exp": now + app_settings.COOKIE_CACHE_TTL.total_seconds(),
               "session": session, "user": user, "up": user_private}
    data = json.dumps(payload, separators=(",", ":")).encode()
    return jwe.encrypt_compact(PROTECTED, data, _key(), algorithms=ALGORITHMS)


def snapshot_decode(token: str, *, key_hash: str, now: float | None = None) -> dict | None:
    """The snapshot if it decrypts, belongs to this session cookie and is fresh; else None."""
    if not token or len(token) > 8192:
        return None
    try:
        payload = json.loads(jwe.decrypt_compact(token, _key(), algorithms=ALGORITHMS).plaintext)
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


def _marks_get(keys: list[str]) -> list:
    if settings.REDIS_URL:
        return _redis().mget(keys)
    found = cache.get_many(keys)  # the embedded default: this process only
    return [found.get(key) for key in keys]


def _mark_set(key: str, value, ttl: int) -> None:
    if settings.REDIS_URL:
        _redis().set(key, str(value), ex=ttl)
    else:
        cache.set(key, str(value), timeout=ttl)


def revoked_since(payload: dict) -> bool:
    """One shared-cache round trip (MGET): was the snapshot's session, or every session of its user,
    revoked after the snapshot was issued? Off (False) without REVOCATION_CHECK; a cache error counts
    as revoked so the caller checks the database instead."""
    if not app_settings.REVOCATION_CHECK:
        return False
    try:
        by_sid, before = _marks_get([_sid_key(payload["session"]["id"]), _user_key(payload["user"]["id"])])
    except Exception:  # noqa: BLE001 - Redis down: the database decides
        logger.warning("revocation lookup failed; falling back to the database", exc_info=True)
        return True
    if by_sid is not None:
        return True
    return before is not None and payload["iat"] <= float(before)


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

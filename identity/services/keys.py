"""Signing keys: created on demand, encrypted at rest, rotated at once or on a schedule, revoked.

Processes keep the decrypted signer and the public keys in memory (for at most KEY_CACHE_SECONDS).
Every server process drops them within a second of a rotation or revocation made anywhere, e.g. by
``manage.py rotate_signing_key`` in another process: each process compares the key set's *generation*
at most every KEY_GENERATION_CHECK_SECONDS (0.5 s) with the one its caches were filled under, on its
next use of a key. With Redis the generation is one Redis key, bumped after every change is committed
(one ``GET`` per interval and process, no database query on the JWKS and ``GET token`` fast paths);
without Redis it is read from the key table itself (one small aggregate query per interval and process,
only while keys are in use). Every fill from the database reads the generation first, so a fill counts
as a check.

The JWKS keeps a retired key for the access-token lifetime plus KEY_CACHE_SECONDS plus the leeway, so
every token any process could still have signed verifies until it expires, even if a process missed
the generation mark (Redis unreachable when it was written). A revoked key leaves at once.

While the database is unavailable (issue 17) nothing here raises for what a process already has: the
JWKS is served from the last copy this process built (or, in a process started during the outage, the
copy every process leaves in Redis), the signer and the public keys from their caches as long as they
have not retired; each retries the database at most every few seconds, one thread at a time. Stale
rather than not at all: resource servers keep verifying tokens and ``GET token`` keeps signing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from joserfc.jwk import OKPKey

from audit.models import EventType
from audit.services import audit_record
from core.database import deadline
from core.crypto import b64url, decrypt_at_rest, encrypt_at_rest
from core.outage import cause, is_outage
from identity.app_settings import app_settings
from identity.models import SigningKey
from identity.services.rsa_keys import rsa_keys_lock, rsa_keys_rotate, rsa_public_jwks

logger = logging.getLogger(__name__)

PURPOSE = "identity.signing-key"
GENERATION_KEY = "mca:identity:signing-keys:generation"
JWKS_COPY_KEY = "mca:identity:jwks"  # the last JWKS any process built, for processes started in an outage
JWKS_COPY_TTL = 7 * 24 * 3600
OUTAGE_RETRY_SECONDS = 5.0  # while the database is unavailable, a cache is retried at most this often


@dataclass(frozen=True)
class Signer:
    kid: str
    key: OKPKey
    retires_at: datetime | None


class SigningKeyNotFound(Exception):
    """No signing key has this kid."""


@dataclass(frozen=True)
class Revocation:
    revoked: list[str]  # the kids revoked now
    already_revoked: list[str]
    signer: SigningKey  # the key that signs from now on


_lock = threading.Lock()
_check_lock = threading.Lock()
_signer: tuple[float, Signer] | None = None
_public: tuple[float, dict[str, OKPKey]] | None = None
_last_public_reload = 0.0
_jwks_json: tuple[float, bytes] | None = None
_jwks_last: bytes | None = None  # the last JWKS built here: served while the database is unavailable
_jwks_build_lock = threading.Lock()
_UNKNOWN = object()
_generation: object = _UNKNOWN  # the generation the caches above were filled under
_checked_at: float | None = None  # monotonic: when the generation was last read
JWKS_JSON_CACHE_SECONDS = 5.0
JWKS_REBUILD_DEADLINE = 1.0


def _cache_clear() -> None:
    global _signer, _public, _last_public_reload, _jwks_json, _jwks_last, _generation, _checked_at
    with _lock:
        _jwks_last = None
        _signer = None
        _public = None
        _last_public_reload = 0.0
        _jwks_json = None
        _generation = _UNKNOWN
        _checked_at = None


# --- the generation: how every process learns of a change within a second ------------------------------

_redis_client: tuple[str, object] | None = None


def _redis():
    """A client of its own with short timeouts and no retries: the check runs on request paths."""
    global _redis_client
    url = settings.REDIS_URL
    if _redis_client is None or _redis_client[0] != url:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        timeout = app_settings.GENERATION_REDIS_TIMEOUT
        _redis_client = (url, redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                                   retry=Retry(NoBackoff(), 0)))
    return _redis_client[1]


_redis_failed_at: dict[str, float] = {}  # Redis URL -> monotonic time of this module's last failed call
REDIS_PAUSE_SECONDS = 1.0


def _generation_read() -> object:
    """The key set's generation now. With Redis: the mark (None until the first change). While Redis
    does not answer (and for a second after each failure, so a hung Redis costs one short timeout a
    second), and without Redis: count, revoked count and newest creation time of the key table. A
    change of source counts as a change: the caches are refilled once."""
    url = settings.REDIS_URL
    failed = _redis_failed_at.get(url)
    if url and (failed is None or time.monotonic() - failed >= REDIS_PAUSE_SECONDS):
        try:
            return ("redis", _redis().get(GENERATION_KEY))
        except Exception:  # noqa: BLE001 - the key table decides while Redis does not answer
            _redis_failed_at[url] = time.monotonic()
            logger.warning("signing-key generation unavailable from Redis; reading it from the database")
    counts = SigningKey.objects.aggregate(keys=Count("kid"), revoked=Count("revoked_at"), newest=Max("created_at"))
    return ("db", counts["keys"], counts["revoked"], counts["newest"])


def _generation_observed(seen: object, at: float) -> None:
    """Record a generation read at monotonic time ``at`` (call with ``_lock`` held): a new one drops every
    cache filled under the previous one."""
    global _signer, _public, _last_public_reload, _jwks_json, _generation, _checked_at
    if seen != _generation:
        _signer = None
        _public = None
        _last_public_reload = 0.0
        _jwks_json = None
        _generation = seen
    if _checked_at is None or at > _checked_at:
        _checked_at = at


def _check_due(now: float) -> bool:
    checked = _checked_at
    return checked is None or now - checked >= app_settings.KEY_GENERATION_CHECK_SECONDS


def _keys_check() -> None:
    """Drop this process's key caches if the key set changed anywhere; asks at most once per
    KEY_GENERATION_CHECK_SECONDS (a thread that finds another one asking goes on with the caches)."""
    global _checked_at
    if not _check_due(time.monotonic()):
        return
    if not _check_lock.acquire(blocking=False):
        return
    try:
        at = time.monotonic()
        if not _check_due(at):
            return
        try:
            seen = _generation_read()
        except Exception as exc:
            if not is_outage(exc):
                raise
            # Neither Redis nor the database answers: keep the caches, ask again after a pause.
            logger.warning("signing-key generation unavailable (%s); keeping the cached keys", cause(exc))
            with _lock:
                _checked_at = at + OUTAGE_RETRY_SECONDS - app_settings.KEY_GENERATION_CHECK_SECONDS
            return
        with _lock:
            _generation_observed(seen, at)
    finally:
        _check_lock.release()


def _generation_publish() -> None:
    """After a committed change: bump the Redis mark, so every process reloads within a second. If Redis
    cannot be written, processes still reload within KEY_CACHE_SECONDS (and the JWKS keeps retired
    keys that long); a revocation is then slower to take effect, which is logged."""
    if not settings.REDIS_URL:
        return  # every process reads the generation from the key table itself
    try:
        _redis().incr(GENERATION_KEY)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not publish the signing-key change to Redis: other processes pick it up within "
                       "KEY_CACHE_SECONDS (%s s) instead of a second (%s)", app_settings.KEY_CACHE_SECONDS, cause(exc))


def _changed_on_commit() -> None:
    """A rotation or revocation in the current transaction: this process forgets its keys now and again
    at the commit (another thread may refill from the not yet committed state), and every other process
    learns of it through the generation."""
    _cache_clear()
    transaction.on_commit(_cache_clear)
    transaction.on_commit(_generation_publish)


def keep_after_retire() -> timedelta:
    return app_settings.ACCESS_TOKEN_TTL + timedelta(seconds=app_settings.KEY_CACHE_SECONDS) + app_settings.LEEWAY


def signing_key_create(*, activates_at: datetime | None = None) -> SigningKey:
    """Generate a key and store it (private part encrypted, kid bound as associated data)."""
    private = Ed25519PrivateKey.generate()
    kid = SigningKey.new_kid()
    raw_private = private.private_bytes_raw()
    return SigningKey.objects.create(
        kid=kid,
        public_x=b64url(private.public_key().public_bytes_raw()),
        private_encrypted=encrypt_at_rest(raw_private, purpose=PURPOSE, aad=kid.encode()),
        activates_at=activates_at or timezone.now(),
    )


def _load_private(row: SigningKey) -> OKPKey:
    raw = decrypt_at_rest(row.private_encrypted, purpose=PURPOSE, aad=row.kid.encode())
    return OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(raw), parameters={"kid": row.kid})


@transaction.atomic
def signing_key_rotate(*, publish_ahead: timedelta | None = None, actor=None, request=None, reason: str = "manual",
                       now: datetime | None = None) -> SigningKey:
    """Make a new key the signer: now (default), or after ``publish_ahead`` so JWKS caches learn it
    first. Every key that would still sign then (the signer, and a successor published ahead that has
    not started yet) retires at that moment; retired keys stay published until their tokens expire."""
    now = now or timezone.now()
    starts = now + (publish_ahead or timedelta(0))
    # Lock the keys a rotation would retire, so concurrent rotations run one after the other; the
    # UPDATE below is a new statement and so also retires a key that a concurrent rotation just added.
    list(SigningKey.objects.select_for_update().not_retired_by(starts).values_list("kid", flat=True))
    key = signing_key_create(activates_at=starts)
    retiring = list(SigningKey.objects.not_retired_by(starts).exclude(kid=key.kid).values_list("kid", flat=True))
    SigningKey.objects.filter(kid__in=retiring).update(retires_at=starts)
    audit_record(
        event=EventType.SIGNING_KEY_ROTATED, actor=actor, request=request,
        kid=key.kid, activates_at=starts.isoformat(), retired=retiring, reason=reason,
    )
    rsa_keys_rotate(starts=starts, actor=actor, request=request, reason=reason)  # OpenID Connect's RS256 keys
    _changed_on_commit()
    return key


def signing_key_revoke(*, kids: list[str], actor=None, request=None, reason: str = "manual",
                       now: datetime | None = None) -> Revocation:
    """Revoke compromised keys: they leave the JWKS and every token they signed stops verifying, in this
    process at once and in every other within KEY_GENERATION_CHECK_SECONDS. A new key signs from now on
    (a rotation in the same transaction): whatever exposed one key may have exposed its neighbours.
    An unknown kid changes nothing and is refused (SigningKeyNotFound), audited."""
    now = now or timezone.now()
    kids = list(dict.fromkeys(kids))
    with transaction.atomic():
        rows = {row.kid: row for row in SigningKey.objects.select_for_update().filter(kid__in=kids)}
        rsa = rsa_keys_lock(kids=[kid for kid in kids if kid not in rows])  # OpenID Connect's RS256 keys
        rows.update(rsa)
        unknown = [kid for kid in kids if kid not in rows]
        if not unknown:
            revoked = [kid for kid in kids if rows[kid].revoked_at is None]
            already = [kid for kid in kids if rows[kid].revoked_at is not None]
            for kid in revoked:
                row = rows[kid]
                retires = now if row.retires_at is None else min(row.retires_at, now)
                type(row).objects.filter(kid=kid).update(revoked_at=now, retires_at=retires)
            # The rotation also tells every process (_changed_on_commit).
            signer = signing_key_rotate(actor=actor, request=request, reason=f"revocation: {reason}", now=now)
            for kid in revoked:
                audit_record(event=EventType.SIGNING_KEY_REVOKED, actor=actor, request=request, kid=kid,
                             reason=reason, successor=signer.kid)
            return Revocation(revoked=revoked, already_revoked=already, signer=signer)
    audit_record(event=EventType.SIGNING_KEY_REVOKED, actor=actor, request=request, success=False,
                 kid=", ".join(kid[:64] for kid in unknown[:5]), reason="unknown_kid")
    raise SigningKeyNotFound(f"no signing key with kid {', '.join(unknown)}")


def signing_keys_rotate_if_due(*, now: datetime | None = None) -> SigningKey | None:
    """The periodic rotation: once the signer is KEY_ROTATION_INTERVAL old (minus the publish-ahead
    time) and no successor is waiting, publish one that starts signing KEY_PUBLISH_AHEAD later."""
    now = now or timezone.now()
    ahead = app_settings.KEY_PUBLISH_AHEAD
    signer = SigningKey.objects.signing_at(now).first()
    if signer is None:
        return None  # the first key is created on demand by the first token
    if SigningKey.objects.pending_at(now).exists():
        return None
    if signer.activates_at + app_settings.KEY_ROTATION_INTERVAL - ahead > now:
        return None
    return signing_key_rotate(publish_ahead=ahead, reason="scheduled", now=now)


@transaction.atomic
def _signer_from_db() -> tuple[object, float, Signer]:
    seen, at = _generation_read(), time.monotonic()  # before the rows: a fill counts as a check
    now = timezone.now()
    row = SigningKey.objects.signing_at(now).first()
    if row is None:
        row = signing_key_create(activates_at=now)
        audit_record(event=EventType.SIGNING_KEY_CREATED, kid=row.kid, reason="first key")
    # A key published ahead retires the signer at its start: cache no further than that.
    successor = SigningKey.objects.pending_at(now).first()
    ends = [when for when in (row.retires_at, successor.activates_at if successor else None) if when is not None]
    retires_at = min(ends) if ends else None
    return seen, at, Signer(kid=row.kid, key=_load_private(row), retires_at=retires_at)


def signing_key_current() -> Signer:
    """The key that signs now, cached in this process for KEY_CACHE_SECONDS (or until it retires, or
    the key set changes anywhere)."""
    global _signer
    _keys_check()
    cached = _signer
    if cached is not None and cached[0] > time.monotonic():
        signer = cached[1]
        if signer.retires_at is None or signer.retires_at > timezone.now():
            return signer
    try:
        seen, at, signer = _signer_from_db()
    except Exception as exc:
        stale = cached[1] if cached is not None else None
        if not is_outage(exc) or stale is None or (stale.retires_at is not None
                                                   and stale.retires_at <= timezone.now()):
            raise
        logger.warning("signing with the cached key %s: the database is unavailable (%s)", stale.kid, cause(exc))
        with _lock:
            _signer = (time.monotonic() + OUTAGE_RETRY_SECONDS, stale)
        return stale
    with _lock:
        _generation_observed(seen, at)
        _signer = (at + app_settings.KEY_CACHE_SECONDS, signer)
    return signer


def published_keys() -> list[SigningKey]:
    return list(SigningKey.objects.published_at(timezone.now(), keep_after_retire=keep_after_retire()))


def jwks() -> dict:
    """The public JWKS: every key that can still have live tokens, and the next one. Never empty: a
    consumer asking before the first token was issued creates the first key, rather than caching an
    empty set and refusing the first tokens."""
    signing_key_current()
    return {"keys": [row.public_jwk() for row in published_keys()]
            + rsa_public_jwks(keep_after_retire=keep_after_retire())}  # RS256 keys once OpenID Connect is used


def signing_keys_changed() -> None:
    """Another key type was added (the first RSA key, identity/services/rsa_keys.py): the JWKS caches of
    this process are dropped now and at the commit, and every other process's through the generation."""
    _changed_on_commit()


def jwks_json() -> bytes:
    """The JWKS as JSON bytes for the HTTP fast path (identity.middleware), rebuilt from the database
    at most every JWKS_JSON_CACHE_SECONDS per process (and at once after a rotation in this process)."""
    global _jwks_json, _jwks_last
    _keys_check()
    cached = _jwks_json
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    # Expired, but of the current key generation: while another thread rebuilds it (maybe waiting for a
    # database that does not answer), this one answers with it. After a key change there is no such copy
    # (a revoked key must leave at once): wait for the rebuild.
    expired = cached[1] if cached is not None else None
    if not _jwks_build_lock.acquire(blocking=expired is None):
        return expired
    try:
        cached = _jwks_json
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]  # rebuilt (or refreshed from the last copy) by the thread we waited for
        stale = expired or _jwks_last
        try:
            with deadline(JWKS_REBUILD_DEADLINE):  # small queries: a database that hangs is given up on soon
                seen = _generation_read()
                body = json.dumps(jwks(), separators=(",", ":")).encode()
        except Exception as exc:
            if not is_outage(exc):
                raise
            body = stale or _jwks_copy_read()
            if body is None:
                raise
            logger.warning("JWKS served from the last copy: the database is unavailable (%s)", cause(exc))
            with _lock:
                _jwks_json = (time.monotonic() + OUTAGE_RETRY_SECONDS, body)
            return body
        with _lock:
            _generation_observed(seen, now)
            _jwks_json = (now + JWKS_JSON_CACHE_SECONDS, body)
            changed, _jwks_last = body != _jwks_last, body
        if changed:
            _jwks_copy_write(body)
        return body
    finally:
        _jwks_build_lock.release()


def _jwks_copy_write(body: bytes) -> None:
    """Leave the JWKS in Redis (when configured) for processes that start while the database is down."""
    url = settings.REDIS_URL
    failed = _redis_failed_at.get(url)
    if not url or (failed is not None and time.monotonic() - failed < REDIS_PAUSE_SECONDS):
        return
    try:
        _redis().set(JWKS_COPY_KEY, body, ex=JWKS_COPY_TTL)
    except Exception:  # noqa: BLE001 - only a fallback: the next change writes it again
        _redis_failed_at[url] = time.monotonic()
        logger.warning("could not leave a copy of the JWKS in Redis")


def _jwks_copy_read() -> bytes | None:
    if not settings.REDIS_URL:
        return None
    try:
        return _redis().get(JWKS_COPY_KEY)
    except Exception:  # noqa: BLE001
        _redis_failed_at[settings.REDIS_URL] = time.monotonic()
        return None


def verification_key(kid: str) -> OKPKey | None:
    """Public key for ``kid`` from the in-process cache; an unknown kid reloads from the database at
    most once a second, so a flood of forged kids cannot turn into a flood of queries."""
    global _public, _last_public_reload
    _keys_check()
    cached = _public
    now = time.monotonic()
    if cached is not None and cached[0] > now and kid in cached[1]:
        return cached[1][kid]
    if cached is not None and cached[0] > now and now - _last_public_reload < 1.0:
        return None
    try:
        seen = _generation_read()
        keys = {row.kid: OKPKey.import_key(row.public_jwk()) for row in published_keys()}
    except Exception as exc:
        if not is_outage(exc) or cached is None:
            raise
        logger.warning("verifying with the cached public keys: the database is unavailable (%s)", cause(exc))
        with _lock:
            _public = (now + OUTAGE_RETRY_SECONDS, cached[1])
            _last_public_reload = now
        return cached[1].get(kid)
    with _lock:
        _generation_observed(seen, now)
        _public = (now + app_settings.KEY_CACHE_SECONDS, keys)
        _last_public_reload = now
    return keys.get(kid)

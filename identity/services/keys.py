"""Signing keys: created on demand, encrypted at rest, rotated at once or on a schedule.

Processes keep the decrypted signer and the public keys in memory for KEY_CACHE_SECONDS; the JWKS
keeps a retired key for the access-token lifetime plus that cache time plus the leeway, so every
token any process could still have signed verifies until it expires.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils import timezone
from joserfc.jwk import OKPKey

from audit.models import EventType
from audit.services import audit_record
from core.crypto import b64url, decrypt_at_rest, encrypt_at_rest
from identity.app_settings import app_settings
from identity.models import SigningKey

PURPOSE = "identity.signing-key"


@dataclass(frozen=True)
class Signer:
    kid: str
    key: OKPKey
    retires_at: datetime | None


_lock = threading.Lock()
_signer: tuple[float, Signer] | None = None
_public: tuple[float, dict[str, OKPKey]] | None = None
_last_public_reload = 0.0
_jwks_json: tuple[float, bytes] | None = None
JWKS_JSON_CACHE_SECONDS = 5.0


def _cache_clear() -> None:
    global _signer, _public, _last_public_reload, _jwks_json
    with _lock:
        _signer = None
        _public = None
        _last_public_reload = 0.0
        _jwks_json = None


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
    _cache_clear()
    # Another thread of this process may refill the cache from the not yet committed state (the old
    # signer, not yet retired) before the commit: clear it again once the rotation is visible.
    transaction.on_commit(_cache_clear)
    return key


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
def _signer_from_db() -> Signer:
    now = timezone.now()
    row = SigningKey.objects.signing_at(now).first()
    if row is None:
        row = signing_key_create(activates_at=now)
        audit_record(event=EventType.SIGNING_KEY_CREATED, kid=row.kid, reason="first key")
    # A key published ahead retires the signer at its start: cache no further than that.
    successor = SigningKey.objects.pending_at(now).first()
    ends = [when for when in (row.retires_at, successor.activates_at if successor else None) if when is not None]
    retires_at = min(ends) if ends else None
    return Signer(kid=row.kid, key=_load_private(row), retires_at=retires_at)


def signing_key_current() -> Signer:
    """The key that signs now, cached in this process for KEY_CACHE_SECONDS (or until it retires)."""
    global _signer
    cached = _signer
    if cached is not None and cached[0] > time.monotonic():
        signer = cached[1]
        if signer.retires_at is None or signer.retires_at > timezone.now():
            return signer
    signer = _signer_from_db()
    with _lock:
        _signer = (time.monotonic() + app_settings.KEY_CACHE_SECONDS, signer)
    return signer


def published_keys() -> list[SigningKey]:
    return list(SigningKey.objects.published_at(timezone.now(), keep_after_retire=keep_after_retire()))


def jwks() -> dict:
    """The public JWKS: every key that can still have live tokens, and the next one. Never empty: a
    consumer asking before the first token was issued creates the first key, rather than caching an
    empty set and refusing the first tokens."""
    signing_key_current()
    return {"keys": [row.public_jwk() for row in published_keys()]}


def jwks_json() -> bytes:
    """The JWKS as JSON bytes for the HTTP fast path (identity.middleware), rebuilt from the database
    at most every JWKS_JSON_CACHE_SECONDS per process (and at once after a rotation in this process)."""
    global _jwks_json
    cached = _jwks_json
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    body = json.dumps(jwks(), separators=(",", ":")).encode()
    with _lock:
        _jwks_json = (now + JWKS_JSON_CACHE_SECONDS, body)
    return body


def verification_key(kid: str) -> OKPKey | None:
    """Public key for ``kid`` from the in-process cache; an unknown kid reloads from the database at
    most once a second, so a flood of forged kids cannot turn into a flood of queries."""
    global _public, _last_public_reload
    cached = _public
    now = time.monotonic()
    if cached is not None and cached[0] > now and kid in cached[1]:
        return cached[1][kid]
    if cached is not None and cached[0] > now and now - _last_public_reload < 1.0:
        return None
    keys = {row.kid: OKPKey.import_key(row.public_jwk()) for row in published_keys()}
    with _lock:
        _public = (now + app_settings.KEY_CACHE_SECONDS, keys)
        _last_public_reload = now
    return keys.get(kid)

"""RS256 keys for OpenID Connect id_tokens (OIDC requires RS256): the life of the Ed25519 keys
(identity/services/keys.py), for a second key type.

* Created on demand by the first id_token or the first discovery request (a provider that never serves
  OpenID Connect has none, and its JWKS stays Ed25519 only).
* Rotated with the Ed25519 keys: ``signing_key_rotate`` (``manage.py rotate_signing_key`` and the scheduled
  rotation) calls ``rsa_keys_rotate`` in its transaction, so the generation mark it publishes covers both.
* Published in the same JWKS (``keys.jwks``) for as long as an Ed25519 key is: until every token it
  signed has expired (id_tokens live as long as access tokens).

No in-process cache of the signer: an id_token is signed once per sign-in, so the key row is read each
time (one indexed query); only the decrypted private key is kept, by kid (kids never change meaning).
This module imports nothing of keys.py (keys.py imports it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import transaction
from django.utils import timezone
from joserfc.jwk import RSAKey

from audit.models import EventType
from audit.services import audit_record
from core.crypto import b64url, decrypt_at_rest, encrypt_at_rest
from identity.models import RsaSigningKey

PURPOSE = "identity.rsa-signing-key"
ALGORITHM = "RS256"
KEY_SIZE = 2048

_private: dict[str, RSAKey] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class RsaSigner:
    kid: str
    key: RSAKey
    created: bool  # this call created the first key: the caller tells the JWKS caches (keys.signing_keys_changed)


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rsa_key_create(*, activates_at: datetime | None = None) -> RsaSigningKey:
    """Generate an RSA key pair and store it (private part encrypted, kid bound as associated data)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    numbers = private.public_key().public_numbers()
    kid = RsaSigningKey.new_kid()
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return RsaSigningKey.objects.create(
        kid=kid, public_n=_int_b64(numbers.n), public_e=_int_b64(numbers.e),
        private_encrypted=encrypt_at_rest(der, purpose=PURPOSE, aad=kid.encode()),
        activates_at=activates_at or timezone.now(),
    )


def _load_private(row: RsaSigningKey) -> RSAKey:
    key = _private.get(row.kid)
    if key is None:
        der = decrypt_at_rest(row.private_encrypted, purpose=PURPOSE, aad=row.kid.encode())
        key = RSAKey.import_key(serialization.load_der_private_key(der, password=None), parameters={"kid": row.kid})
        with _lock:
            _private[row.kid] = key
    return key


def rsa_keys_in_use() -> bool:
    """OpenID Connect was used here: an RSA key was ever created (a revoked last one gets a successor)."""
    return RsaSigningKey.objects.exists()


def rsa_keys_lock(*, kids: list[str]) -> dict[str, RsaSigningKey]:
    """The RSA keys among ``kids``, locked (``signing_key_revoke`` revokes them with the Ed25519 ones)."""
    if not kids:
        return {}
    return {row.kid: row for row in RsaSigningKey.objects.select_for_update().filter(kid__in=kids)}


def rsa_keys_rotate(*, starts: datetime, actor=None, request=None, reason: str = "manual") -> RsaSigningKey | None:
    """Part of ``signing_key_rotate`` (same transaction, same start): when RSA keys are in use, a new one
    signs from ``starts`` and every RSA key that would still sign then retires at that moment. Nothing
    while OpenID Connect was never used."""
    list(RsaSigningKey.objects.select_for_update().not_retired_by(starts).values_list("kid", flat=True))
    if not rsa_keys_in_use():
        return None
    key = rsa_key_create(activates_at=starts)
    retiring = list(RsaSigningKey.objects.not_retired_by(starts).exclude(kid=key.kid).values_list("kid", flat=True))
    RsaSigningKey.objects.filter(kid__in=retiring).update(retires_at=starts)
    audit_record(event=EventType.SIGNING_KEY_ROTATED, actor=actor, request=request, kid=key.kid,
                 activates_at=starts.isoformat(), retired=retiring, reason=reason, alg=ALGORITHM)
    return key


@transaction.atomic
def rsa_signing_key_current() -> RsaSigner:
    """The RSA key that signs id_tokens now; the first one is created here."""
    now = timezone.now()
    row = RsaSigningKey.objects.signing_at(now).first()
    created = False
    if row is None:
        row, created = rsa_key_create(activates_at=now), True
        audit_record(event=EventType.SIGNING_KEY_CREATED, kid=row.kid, reason="first RSA key", alg=ALGORITHM)
    return RsaSigner(kid=row.kid, key=_load_private(row), created=created)


def rsa_public_jwks(*, keep_after_retire: timedelta) -> list[dict]:
    """The public RSA keys the JWKS lists now (the rule of the Ed25519 keys)."""
    rows = RsaSigningKey.objects.published_at(timezone.now(), keep_after_retire=keep_after_retire)
    return [row.public_jwk() for row in rows]


def rsa_verification_key(kid: str) -> RSAKey | None:
    """The public key of a published RSA kid (id_token_hint, RP-initiated logout), or None."""
    if not isinstance(kid, str) or len(kid) > 64 or "\x00" in kid:
        return None  # a forged header: never a query PostgreSQL refuses
    row = RsaSigningKey.objects.usable().filter(kid=kid).first()
    return RSAKey.import_key(row.public_jwk()) if row is not None else None

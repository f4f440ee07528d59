"""Symmetric encryption at rest: AES-256-GCM under keys derived (HKDF-SHA256) from a root secret.

Used for signing-key private parts (root: the key-encryption key), the refresh grace pair (root:
the spent refresh token itself) and outbox mail bodies (root: the key-encryption key).
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = b"v1"


class DecryptionError(Exception):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(root: bytes, *, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(root)


def key_encryption_root() -> bytes:
    """The root of at-rest encryption: AUTH_KEY_ENCRYPTION_KEY, or (development) SECRET_KEY."""
    configured = settings.AUTH_KEY_ENCRYPTION_KEY
    if configured:
        raw = b64url_decode(configured)
        if len(raw) < 32:
            raise ValueError("AUTH_KEY_ENCRYPTION_KEY must decode to at least 32 bytes")
        return raw
    return settings.SECRET_KEY.encode()


def encrypt(key: bytes, plaintext: bytes, *, aad: bytes = b"") -> str:
    nonce = os.urandom(12)
    return b64url(VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad))


def decrypt(key: bytes, token: str, *, aad: bytes = b"") -> bytes:
    try:
        blob = b64url_decode(token)
        if blob[:2] != VERSION:
            raise DecryptionError("unknown ciphertext version")
        return AESGCM(key).decrypt(blob[2:14], blob[14:], aad)
    except DecryptionError:
        raise
    except Exception as exc:  # InvalidTag, bad base64, short blob
        raise DecryptionError(str(exc)) from exc


def encrypt_at_rest(plaintext: bytes, *, purpose: str, aad: bytes = b"") -> str:
    return encrypt(derive_key(key_encryption_root(), purpose=purpose), plaintext, aad=aad)


def decrypt_at_rest(token: str, *, purpose: str, aad: bytes = b"") -> bytes:
    return decrypt(derive_key(key_encryption_root(), purpose=purpose), token, aad=aad)

"""The refresh token's format: what a token says about itself, without a row.

A refresh token is ``mrt_`` + the session id (22 base64url characters) + its generation (11: 8 bytes) + a
256-bit secret (43) + a 128-bit tag (22): 102 characters. The generation counts the session's token
issuances (the session's ``refresh_count`` when the token became live: 0 at the sign-in, one more per
refresh; a switch of organization keeps it). The tag is an HMAC of the session id, the generation and the
secret under a key derived from the key-encryption key, so the server can tell, with no row to look up, that
a token was issued by it for that session and when in its chain:

- the **live** token is the one whose hash is the session's ``refresh_secret_hash``;
- any **other token of ours** naming the session with an earlier generation than the session's count has
  been spent (a token is issued only as a session's live token): presenting it is reuse, or within the
  grace window the replay of the pair that replaced it;
- one of ours with the session's generation or a later one that is not live was never made live (its
  rotation was lost in a crash of the database server): it is unknown, like anything whose tag does not
  verify (a guess, a forgery naming someone's session), and ends nothing.

A refresh's successor is derived from the token it spends (an HMAC under another derived key), and so is
the ``jti`` of the access token issued with it. The pair a refresh hands out is therefore a function of
the spent token, the time of the rotation (kept on the session row) and the session, and the grace window
recomputes it instead of keeping it sealed in a row: a routine refresh writes the session row and nothing
else (docs/security.md "Spent refresh tokens without rows"). Nobody without the key can compute a
successor, so holding a spent token gives nothing the server does not hand out.

Formats before this one carry no tag (``mrt_`` + 43 characters, found by ``refresh_token_hash``; and
``mrt_`` + session id + 43 characters): their refresh records the spent token in SpentRefreshToken, as
then, so presenting them again is still recognised.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from functools import lru_cache

from core.crypto import b64url, b64url_decode, derive_key, key_encryption_root

PREFIX = "mrt_"
_SID_END = len(PREFIX) + 22  # a UUID's 16 bytes in base64url
UNTAGGED_NAMED_LENGTH = _SID_END + 43  # the format of migration 0013: the id and 32 random bytes, no tag
_GENERATION_END = _SID_END + 11  # 8 bytes
_SECRET_END = _GENERATION_END + 43  # 32 bytes
TAGGED_LENGTH = _SECRET_END + 22  # a 16-byte tag
_TAG_BYTES = 16

TAG_PURPOSE = "sessions.refresh-token-tag"
SUCCESSOR_PURPOSE = "sessions.refresh-token-successor"
JTI_PURPOSE = "sessions.refresh-access-jti"


@lru_cache(maxsize=4)
def _keys(root: bytes) -> tuple[bytes, bytes, bytes]:
    return (derive_key(root, purpose=TAG_PURPOSE), derive_key(root, purpose=SUCCESSOR_PURPOSE),
            derive_key(root, purpose=JTI_PURPOSE))


def _tag(tag_key: bytes, sid: bytes, generation: bytes, secret: bytes) -> bytes:
    return hmac.digest(tag_key, sid + generation + secret, "sha256")[:_TAG_BYTES]


def _token(session_id: uuid.UUID, generation: int, secret: bytes, tag_key: bytes) -> str:
    sid, counted = session_id.bytes, generation.to_bytes(8, "big")
    return PREFIX + b64url(sid) + b64url(counted) + b64url(secret) + b64url(_tag(tag_key, sid, counted, secret))


def new(session_id: uuid.UUID, generation: int) -> str:
    """A token with a random secret: a sign-in's (``generation`` 0), a switch of organization's (the session's
    count, unchanged)."""
    return _token(session_id, generation, secrets.token_bytes(32), _keys(key_encryption_root())[0])


def successor(session_id: uuid.UUID, spent: str, generation: int) -> str:
    """The token a refresh of ``spent`` issues, of ``generation`` (the session's count after the rotation):
    the same for every refresh of it, computable only with the key."""
    tag_key, successor_key, _ = _keys(key_encryption_root())
    return _token(session_id, generation, hmac.digest(successor_key, spent.encode(), "sha256"), tag_key)


def access_jti(refresh_token: str) -> str:
    """The ``jti`` of the access token issued with ``refresh_token`` (so the grace window's replay of a pair
    signs the very same access token: Ed25519 signatures are deterministic)."""
    return hmac.digest(_keys(key_encryption_root())[2], refresh_token.encode(), "sha256")[:16].hex()


def session_id(raw: str) -> uuid.UUID | None:
    """The session a token of either named format names (tagged or not: check ``is_ours`` before trusting
    that it was issued), or None (the first format, found by hash; anything that is not a token)."""
    if len(raw) not in (TAGGED_LENGTH, UNTAGGED_NAMED_LENGTH) or not raw.startswith(PREFIX):
        return None
    try:
        return uuid.UUID(bytes=b64url_decode(raw[len(PREFIX):_SID_END]))
    except ValueError:  # not base64url, or not 16 bytes
        return None


def generation(raw: str) -> int:
    """The generation of a token for which ``is_ours`` holds."""
    return int.from_bytes(b64url_decode(raw[_SID_END:_GENERATION_END]), "big")


def is_ours(raw: str) -> bool:
    """True for a tagged token whose tag verifies: issued by this deployment for the session it names."""
    if len(raw) != TAGGED_LENGTH or not raw.startswith(PREFIX):
        return False
    try:
        sid, counted = b64url_decode(raw[len(PREFIX):_SID_END]), b64url_decode(raw[_SID_END:_GENERATION_END])
        secret, tag = b64url_decode(raw[_GENERATION_END:_SECRET_END]), b64url_decode(raw[_SECRET_END:])
    except ValueError:
        return False
    if (len(sid), len(counted), len(secret), len(tag)) != (16, 8, 32, _TAG_BYTES):
        return False
    # One spelling per token: base64url's last character may carry unused bits, so a variant of the live
    # token would decode alike and pass as a spent one of ours.
    if b64url(sid) + b64url(counted) + b64url(secret) + b64url(tag) != raw[len(PREFIX):]:
        return False
    return hmac.compare_digest(tag, _tag(_keys(key_encryption_root())[0], sid, counted, secret))

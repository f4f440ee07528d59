"""Access tokens: one signing path (joserfc, EdDSA over Ed25519), one verification path."""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from joserfc.util import urlsafe_b64encode

from identity.app_settings import app_settings
from identity.services.keys import signing_key_current, verification_key

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
SERVICE_ROLE = "service"
# joserfc's EdDSA algorithm object signs every token (_sign). Its generic jwt.encode would first check
# the header against the registry and convert the claims, for a header and claims we build ourselves
# here; on GET token that was a third of the work (docs/benchmarks.md).
_EDDSA = JWSRegistry.algorithms[ALGORITHM]


_header_segments: dict[str, bytes] = {}  # kid -> the encoded protected header (a handful of kids at most)


def _header_segment(kid: str) -> bytes:
    """The first segment of every token ``kid`` signs: the same bytes each time, so encoded once per kid."""
    segment = _header_segments.get(kid)
    if segment is None:
        if len(_header_segments) >= 64:  # kids come and go with rotations: keep the memo small
            _header_segments.clear()
        header = {"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}
        segment = _header_segments[kid] = urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode())
    return segment


def _sign(signer, claims: dict) -> str:
    """The compact JWS of ``claims`` under the current signing key: the one signing path."""
    signing_input = (_header_segment(signer.kid) + b"."
                     + urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()))
    return (signing_input + b"." + urlsafe_b64encode(_EDDSA.sign(signing_input, signer.key))).decode()


class TokenError(Exception):
    """The token must be refused; ``reason`` says why (logged and audited, not sent to clients)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    claims: dict


def access_token_issue(*, user, session_id, org_id=None, org_role=None, amr=None, now: int | None = None,
                       not_after: int | None = None, extra_claims: dict | None = None,
                       jti: str | None = None) -> IssuedToken:
    """A user's access token. ``not_after`` caps ``exp`` below the usual lifetime (GET token from a
    cookie-cache snapshot: no later than a token minted when the snapshot was issued). ``amr`` (RFC 8176):
    how the user signed in to the session. ``extra_claims``: claims added to the standard ones (an
    OpenID Connect client's token: ``client_id`` and ``scope``); they never replace one. ``jti`` with ``now``:
    the same claims sign to the same token (Ed25519 is deterministic), which is how a refresh's grace window
    hands out the very same pair again (sessions_app.refresh_tokens)."""
    import time

    signer = signing_key_current()
    issued_at = int(now if now is not None else time.time())
    expires_at = issued_at + int(app_settings.ACCESS_TOKEN_TTL.total_seconds())
    if not_after is not None:
        expires_at = min(expires_at, int(not_after))
    ttl = expires_at - issued_at
    claims = {
        "iss": app_settings.ISSUER,
        "aud": app_settings.AUDIENCE,
        "sub": str(user.pk),
        "email": user.email,
        "role": user.role,
        "sid": str(session_id),
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti or uuid.uuid4().hex,
    }
    if amr:
        claims["amr"] = list(amr)
    if org_id is not None:
        claims["org"] = str(org_id)
        claims["orgRole"] = org_role
    for name, value in (extra_claims or {}).items():
        claims.setdefault(name, value)
    return IssuedToken(token=_sign(signer, claims), expires_in=ttl, claims=claims)


def service_access_token_issue(*, user, client_id: str, secret_version: int, now: int | None = None) -> IssuedToken:
    """A service account's access token (client credentials): ``role: "service"``, ``clientId`` and
    ``secretVersion`` instead of ``sid`` and ``email`` (a service has no device session and no mailbox).
    Whether its client is still active, and its secret not rotated since, is checked on every use."""
    import time

    signer = signing_key_current()
    issued_at = int(now if now is not None else time.time())
    ttl = int(app_settings.ACCESS_TOKEN_TTL.total_seconds())
    claims = {
        "iss": app_settings.ISSUER,
        "aud": app_settings.AUDIENCE,
        "sub": str(user.pk),
        "role": SERVICE_ROLE,
        "clientId": client_id,
        "secretVersion": secret_version,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": uuid.uuid4().hex,
    }
    return IssuedToken(token=_sign(signer, claims), expires_in=ttl, claims=claims)


# Verification parses the token once (extract_compact), checks the header, then the signature against that
# parse (validate_compact, with a registry built once), where jwt.decode would parse it again and build a
# registry per call; together that was half of the verification (docs/benchmarks.md).
_VERIFY = JWSRegistry(algorithms=[ALGORITHM])
_claims_registries: dict[tuple, JWTClaimsRegistry] = {}


def _claims_registry() -> JWTClaimsRegistry:
    leeway, issuer, audience = int(app_settings.LEEWAY.total_seconds()), app_settings.ISSUER, app_settings.AUDIENCE
    registry = _claims_registries.get((leeway, issuer, audience))
    if registry is None:  # one per settings value (tests change them)
        registry = _claims_registries[(leeway, issuer, audience)] = JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
    return registry


# A token whose signature this process has verified is not verified again while it is cached (Envoy's
# jwt_authn keeps such a cache too): the key is the whole token string, so only the very bytes that were
# verified hit it; each hit still checks that the key that signed it is published (a revoked key's tokens
# stop at once) and validates the time claims again. Bounded (least recently used goes), and an expired
# entry goes when it is next presented. The Ed25519 verification was the largest single cost of a bearer
# call (docs/benchmarks.md, issue 15).
VERIFIED_CACHE_SIZE = 1024
_verified: OrderedDict[str, tuple[dict, str, object]] = OrderedDict()  # token -> (claims, kid, key)
_verified_lock = threading.Lock()


def _verified_hit(token: str) -> dict | None:
    with _verified_lock:
        hit = _verified.get(token)
        if hit is None:
            return None
        _verified.move_to_end(token)
    claims, kid, key = hit
    try:
        if verification_key(kid) is not key:  # revoked or rotated out of the published set
            raise TokenError("unknown_kid")
        _claims_registry().validate(claims)
    except (TokenError, JoseError):
        with _verified_lock:
            _verified.pop(token, None)
        return None  # verified in full below, which refuses it with the reason
    return dict(claims)


def _verified_keep(token: str, claims: dict, kid: str, key) -> None:
    with _verified_lock:
        _verified[token] = (dict(claims), kid, key)
        while len(_verified) > VERIFIED_CACHE_SIZE:
            _verified.popitem(last=False)


def verified_cache_clear() -> None:
    with _verified_lock:
        _verified.clear()


def access_token_verify(token: str) -> dict:
    """Verify signature, ``alg``, ``typ``, ``iss``, ``aud``, ``exp``/``iat`` (with leeway); return claims.
    Whether the session in ``sid`` is still alive is the caller's check (it needs the database).
    A token without ``sid`` passes only as a service token (``role: "service"`` with ``clientId`` and
    ``secretVersion``); whether its client is still active is likewise the caller's check."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 4096:
        raise TokenError("malformed")
    cached = _verified_hit(token)
    if cached is not None:
        return cached
    try:
        compact = jws.extract_compact(token.encode())
    except (JoseError, ValueError, UnicodeError):
        raise TokenError("malformed") from None
    header = compact.headers()
    if header.get("alg") != ALGORITHM:
        raise TokenError("wrong_alg")
    if header.get("typ") != TOKEN_TYPE:
        raise TokenError("wrong_typ")
    kid = header.get("kid")
    key = verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenError("unknown_kid")
    try:
        if not jws.validate_compact(compact, key, registry=_VERIFY):
            raise TokenError("bad_signature")
    except (JoseError, ValueError):
        raise TokenError("bad_signature") from None
    try:
        claims = json.loads(compact.payload)
    except (TypeError, ValueError):
        raise TokenError("malformed") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed")
    try:
        _claims_registry().validate(claims)
    except JoseError as exc:
        raise TokenError(f"claims:{getattr(exc, 'error', 'invalid')}") from None
    if not isinstance(claims.get("iat"), int):
        raise TokenError("claims:invalid")
    if "sid" in claims:
        if not isinstance(claims["sid"], str):
            raise TokenError("claims:invalid")
    elif not (claims.get("role") == SERVICE_ROLE and isinstance(claims.get("clientId"), str)
              and isinstance(claims.get("secretVersion"), int)):
        raise TokenError("claims:invalid")  # only a service token may come without a session
    _verified_keep(token, claims, kid, key)
    return claims

"""id_tokens: RS256 by default (identity/services/rsa_keys.py), EdDSA for clients that ask for it (the
Ed25519 key that signs access tokens); claims from the signed-in browser session and the granted scopes.
They live as long as access tokens, so the JWKS keeps every key that signed a live one."""

from __future__ import annotations

import base64
import hashlib
import time

from joserfc import jws, jwt
from joserfc.errors import JoseError

from identity.app_settings import app_settings as identity_settings
from identity.services.keys import signing_key_current, signing_keys_changed, verification_key
from identity.services.rsa_keys import rsa_signing_key_current, rsa_verification_key
from oidc_provider.app_settings import app_settings
from oidc_provider.models import IdTokenAlg


def rsa_key_ensure() -> None:
    """The RS256 key exists (discovery names RS256): created on first use, published at once."""
    if rsa_signing_key_current().created:
        signing_keys_changed()


def user_claims(user, scopes) -> dict:
    """The claims the granted scopes allow (id_token and userinfo alike)."""
    claims = {"sub": str(user.pk)}
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified_at is not None
    if "profile" in scopes:
        claims["name"] = user.name
    return claims


def _half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def id_token_issue(*, client, user, scopes, auth_time: int, amr, sid: str | None, nonce: str | None = None,
                   access_token: str | None = None, now: int | None = None) -> str:
    issued_at = int(now if now is not None else time.time())
    claims = {
        "iss": app_settings.ISSUER,
        "aud": client.client_id,
        "iat": issued_at,
        "exp": issued_at + int(identity_settings.ACCESS_TOKEN_TTL.total_seconds()),
        "auth_time": int(auth_time),
        "amr": list(amr or []),
        **user_claims(user, scopes),
    }
    if sid:
        claims["sid"] = str(sid)
    if nonce:
        claims["nonce"] = nonce
    if client.id_token_alg == IdTokenAlg.EDDSA:
        signer = signing_key_current()
        header = {"alg": "EdDSA", "kid": signer.kid, "typ": "JWT"}
        return jwt.encode(header, claims, signer.key, algorithms=["EdDSA"])
    signer = rsa_signing_key_current()
    if signer.created:
        signing_keys_changed()
    if access_token:
        claims["at_hash"] = _half_hash(access_token)
    return jwt.encode({"alg": "RS256", "kid": signer.kid, "typ": "JWT"}, claims, signer.key, algorithms=["RS256"])


def id_token_hint_claims(token) -> dict | None:
    """The claims of an id_token this provider signed (signature and ``iss`` checked; an expired one is
    fine: OpenID Connect allows an old id_token as a hint), or None."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, UnicodeError):
        return None
    kid, alg = header.get("kid"), header.get("alg")
    if not isinstance(kid, str):
        return None
    if alg == "RS256":
        key = rsa_verification_key(kid)
    elif alg == "EdDSA":
        key = verification_key(kid)
    else:
        return None
    if key is None:
        return None
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError):
        return None
    if claims.get("iss") != app_settings.ISSUER or not isinstance(claims.get("sub"), str) \
            or not isinstance(claims.get("aud"), str | list):
        return None
    return claims

"""TokenVerifier: local verification of the provider's access tokens (EdDSA over Ed25519, JWKS-cached)."""

from __future__ import annotations

import json
import math

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry, extract_compact
from joserfc.util import urlsafe_b64decode

from mana_auth import _clock
from mana_auth.errors import InvalidToken
from mana_auth.jwks import JwksCache
from mana_auth.principal import Principal

ALGORITHM = "EdDSA"
TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 8192
# Headers the provider never sends and whose meaning would change how a token is read.
_REFUSED_HEADERS = ("crit", "b64", "zip", "enc")
# joserfc parses the compact form (strict base64url, size limits) ...
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])
# ... and its EdDSA algorithm checks the signature. It is the only algorithm this module ever calls:
# there is no negotiation from the token's header, so "none", HMAC, RSA and EC cannot be reached.
_EDDSA = JWSRegistry.algorithms[ALGORITHM]


class TokenVerifier:
    """Verifies access tokens locally against the provider's JWKS.

    ``TokenVerifier(jwks_url, issuer, audience)``; ``audience`` may be a string or several acceptable
    values. ``verify(token)`` returns a ``Principal`` or raises ``InvalidToken``. The ``jku``, ``x5u``,
    ``jwk`` and ``x5c`` headers of a token are ignored: keys come from ``jwks_url`` only.

    Optional revocation check: pass ``introspection=Introspector(...)``; every ``verify`` then also asks
    the provider (cached briefly) whether the token's session is alive, unless ``check_revocation=False``
    is given here (then only calls with ``verify(token, check_revocation=True)`` ask).
    """

    def __init__(self, jwks_url: str, issuer: str, audience, leeway: float = 30, *, introspection=None,
                 check_revocation: bool | None = None, jwks_cache: JwksCache | None = None,
                 refetch_interval: float = 5.0, max_stale: float = 3600.0, timeout: float = 5.0,
                 clock=None):
        if not issuer:
            raise ValueError("issuer is required")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience or ())
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must be a non-empty string or a list of them")
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.leeway = leeway
        self.jwks = jwks_cache or JwksCache(jwks_url, refetch_interval=refetch_interval, max_stale=max_stale,
                                            timeout=timeout)
        self.introspection = introspection
        self.check_revocation = (introspection is not None) if check_revocation is None else check_revocation
        if self.check_revocation and introspection is None:
            raise ValueError("check_revocation=True needs introspection=Introspector(...)")
        self._clock = clock if clock is not None else _clock.wall  # read at call time (test clocks)

    def verify(self, token, *, check_revocation: bool | None = None) -> Principal:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken("malformed")
        try:
            obj = extract_compact(token.encode("ascii"), registry=_REGISTRY)
        except (JoseError, ValueError, TypeError):  # UnicodeError is a ValueError
            raise InvalidToken("malformed") from None
        header = obj.protected
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("alg_not_allowed")
        if header.get("typ") not in TOKEN_TYPES:
            raise InvalidToken("wrong_typ")
        if any(name in header for name in _REFUSED_HEADERS):
            raise InvalidToken("bad_header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing_kid")
        key = self.jwks.get(kid)  # an Ed25519 OKPKey: the JWKS cache imports no other kind
        segments = obj.segments
        try:
            signature = urlsafe_b64decode(segments["signature"])
        except (ValueError, TypeError):
            raise InvalidToken("bad_signature") from None
        if not _EDDSA.verify(segments["header"] + b"." + segments["payload"], signature, key):
            raise InvalidToken("bad_signature")
        try:
            claims = json.loads(obj.payload)
        except ValueError:
            raise InvalidToken("bad_claims") from None
        if not isinstance(claims, dict):
            raise InvalidToken("bad_claims")
        principal = self._principal(claims, token)
        if self.check_revocation if check_revocation is None else check_revocation:
            self.ensure_active(principal)
        return principal

    def ensure_active(self, principal: Principal) -> None:
        """Ask the provider (through the introspector's short cache) whether the token is still active;
        raises InvalidToken("revoked") if not, ProviderUnavailable if it cannot tell."""
        if self.introspection is None:
            raise ValueError("no introspection configured: TokenVerifier(..., introspection=Introspector(...))")
        self.introspection.ensure_active(principal)

    def _principal(self, claims: dict, token: str) -> Principal:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong_issuer")
        aud = claims.get("aud")
        if isinstance(aud, str):
            if aud not in self.audiences:
                raise InvalidToken("wrong_audience")
        elif not isinstance(aud, list) or self.audiences.isdisjoint(a for a in aud if isinstance(a, str)):
            raise InvalidToken("wrong_audience")
        now = self._clock()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
        if not _is_number(exp) or not _is_number(iat) or not _is_number(nbf):
            raise InvalidToken("bad_claims")
        if exp + self.leeway <= now:
            raise InvalidToken("expired")
        if iat - self.leeway > now:
            raise InvalidToken("issued_in_future")
        if nbf - self.leeway > now:
            raise InvalidToken("not_yet_valid")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("bad_claims")
        values = [claims.get(name) for name in ("email", "role", "sid", "org", "orgRole", "jti")]
        if not all(value is None or isinstance(value, str) for value in values):
            raise InvalidToken("bad_claims")
        email, role, sid, org, org_role, _ = values
        return Principal(user_id=sub, email=email, role=role, session_id=sid, org=org, org_role=org_role,
                         claims=claims, token=token)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

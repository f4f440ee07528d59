"""Settings of the Django/DRF parts, from the ``MANA_AUTH`` dict, read on access (so tests that change
settings take effect); the verifier built from them is kept per distinct configuration, so its JWKS
cache lives as long as the process. Django is imported only inside functions."""

from __future__ import annotations

import json
import logging
import os
import threading

from mana_auth.errors import InvalidToken
from mana_auth.principal import Principal
from mana_auth.verifier import TokenVerifier

logger = logging.getLogger("mana_auth")

DEV_BYPASS_ENV = "MANA_AUTH_DEV_BYPASS"

DEFAULTS = {
    "JWKS_URL": None,               # required: https://auth.example/api/v1/auth/jwks
    "ISSUER": None,                 # required: the provider's AUTH_ISSUER
    "AUDIENCE": None,               # required: the provider's AUTH_AUDIENCE (a string or a list)
    "LEEWAY": 30,                   # seconds of clock skew tolerated on exp/iat/nbf
    "JWKS_REFETCH_INTERVAL": 5,     # at most one JWKS fetch per this many seconds for unknown kids
    "JWKS_MAX_STALE": 3600,         # serve the last JWKS this long past its max-age while the provider is down
    "TIMEOUT": 5,                   # seconds, for JWKS and introspection requests
    "INTROSPECT_URL": None,         # https://auth.example/api/v1/auth/introspect: enables the revocation check
    "SERVICE_TOKEN": None,          # a fixed service bearer token for introspection, or:
    "CLIENT_ID": None,              # service account credentials, exchanged at .../service-token
    "CLIENT_SECRET": None,
    "CHECK_REVOCATION": False,      # introspect on every request (else only where a view asks)
    "INTROSPECTION_CACHE_SECONDS": 10,
    "DEV_BYPASS": None,             # claims of the development principal (see dev_principal)
}
REQUIRED = ("JWKS_URL", "ISSUER", "AUDIENCE")
DEV_DEFAULT_CLAIMS = {"sub": "dev-user", "email": "dev@localhost", "role": "user"}


def _improperly_configured(message: str):
    from django.core.exceptions import ImproperlyConfigured

    return ImproperlyConfigured(f"MANA_AUTH: {message}")


def options() -> dict:
    """The effective ``MANA_AUTH`` settings: defaults overlaid with the project's dict; unknown names and
    missing required ones are refused loudly."""
    from django.conf import settings

    configured = getattr(settings, "MANA_AUTH", None)
    if not isinstance(configured, dict):
        raise _improperly_configured("define settings.MANA_AUTH = {'JWKS_URL': ..., 'ISSUER': ..., 'AUDIENCE': ...}")
    unknown = sorted(set(configured) - set(DEFAULTS))
    if unknown:
        raise _improperly_configured(f"unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **configured}
    missing = [name for name in REQUIRED if not merged[name]]
    if missing:
        raise _improperly_configured(f"missing required setting(s) {missing}")
    return merged


_lock = threading.Lock()
_verifiers: dict[str, TokenVerifier] = {}


def get_verifier() -> TokenVerifier:
    """The process-wide TokenVerifier for the current settings."""
    opts = options()
    key = json.dumps(opts, sort_keys=True, default=str)
    verifier = _verifiers.get(key)
    if verifier is not None:
        return verifier
    with _lock:
        verifier = _verifiers.get(key)
        if verifier is None:
            verifier = _verifiers[key] = _build(opts)
    return verifier


def _build(opts: dict) -> TokenVerifier:
    from mana_auth.introspection import Introspector

    introspection = None
    if opts["INTROSPECT_URL"]:
        if opts["SERVICE_TOKEN"]:
            introspection = Introspector(opts["INTROSPECT_URL"], token_provider=opts["SERVICE_TOKEN"],
                                         cache_seconds=opts["INTROSPECTION_CACHE_SECONDS"], timeout=opts["TIMEOUT"])
        elif opts["CLIENT_ID"] and opts["CLIENT_SECRET"]:
            introspection = Introspector(opts["INTROSPECT_URL"], opts["CLIENT_ID"], opts["CLIENT_SECRET"],
                                         cache_seconds=opts["INTROSPECTION_CACHE_SECONDS"], timeout=opts["TIMEOUT"])
        else:
            raise _improperly_configured("INTROSPECT_URL needs SERVICE_TOKEN or CLIENT_ID + CLIENT_SECRET")
    elif opts["CHECK_REVOCATION"]:
        raise _improperly_configured("CHECK_REVOCATION needs INTROSPECT_URL")
    try:
        return TokenVerifier(
            opts["JWKS_URL"], opts["ISSUER"], opts["AUDIENCE"], leeway=opts["LEEWAY"],
            introspection=introspection, check_revocation=bool(opts["CHECK_REVOCATION"]),
            refetch_interval=opts["JWKS_REFETCH_INTERVAL"], max_stale=opts["JWKS_MAX_STALE"], timeout=opts["TIMEOUT"],
        )
    except ValueError as exc:
        raise _improperly_configured(str(exc)) from exc


_bypass_announced = False


def dev_bypass_requested() -> bool:
    return os.environ.get(DEV_BYPASS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def dev_principal() -> Principal | None:
    """The development principal when the bypass is on, else None.

    On only when ``MANA_AUTH_DEV_BYPASS=1`` is in the environment AND Django's ``DEBUG`` is on; asked for
    with ``DEBUG`` off, it raises ImproperlyConfigured, so the middleware / authentication refuses to
    start. While on, requests *without* a bearer token act as this principal (claims from
    ``MANA_AUTH["DEV_BYPASS"]``, default ``{"sub": "dev-user", "email": "dev@localhost", "role": "user"}``);
    requests with a token are still verified normally."""
    if not dev_bypass_requested():
        return None
    from django.conf import settings

    if not settings.DEBUG:
        raise _improperly_configured(
            f"{DEV_BYPASS_ENV} is set but DEBUG is off: the development bypass never runs in production. "
            f"Unset {DEV_BYPASS_ENV}.")
    claims = {**DEV_DEFAULT_CLAIMS, **(options()["DEV_BYPASS"] or {})}
    global _bypass_announced
    if not _bypass_announced:
        _bypass_announced = True
        logger.warning("mana_auth: DEVELOPMENT BYPASS ON: requests without a token act as %s", claims)
    return Principal(user_id=str(claims["sub"]), email=claims.get("email"), role=claims.get("role"),
                     session_id=claims.get("sid"), org=claims.get("org"), org_role=claims.get("orgRole"),
                     claims=claims)


def bearer_token(header) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (str or bytes); None for no header or
    another scheme; InvalidToken("malformed") for a broken Bearer header."""
    if not header:
        return None
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("malformed") from None
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise InvalidToken("malformed")
    return parts[1]


ORG_ROLE_RANK = {"member": 1, "admin": 2, "owner": 3}


def org_role_satisfies(actual: str | None, wanted: tuple[str, ...]) -> bool:
    """``owner`` > ``admin`` > ``member``: asking for admin admits owners too. Unknown role names
    (none today) match only themselves."""
    if actual is None:
        return False
    if actual in wanted:
        return True
    rank = ORG_ROLE_RANK.get(actual)
    needed = [ORG_ROLE_RANK[role] for role in wanted if role in ORG_ROLE_RANK]
    return rank is not None and bool(needed) and rank >= min(needed)

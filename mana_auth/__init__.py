"""mana_auth: trust mana-core-auth access tokens in any Python service, and call its API.

Resource servers: ``TokenVerifier(jwks_url, issuer, audience).verify(token) -> Principal`` (raises
``InvalidToken``); Django/DRF glue in ``mana_auth.drf`` and ``mana_auth.django`` (imported on demand,
so this package itself needs neither Django nor the provider's apps). Apps and scripts: ``Client``.
Dependencies: joserfc (and cryptography through it); HTTP is the standard library's urllib.
"""

from mana_auth.client import AsyncClient, Client
from mana_auth.errors import ApiError, InvalidToken, ManaAuthError, NotLoggedIn, ProviderUnavailable, TransportError
from mana_auth.introspection import Introspector, ServiceTokenSource
from mana_auth.jwks import JwksCache
from mana_auth.principal import Principal
from mana_auth.storage import FileStorage, KeyringStorage, MemoryStorage
from mana_auth.verifier import TokenVerifier

__version__ = "0.1.0"

__all__ = [
    "ApiError", "AsyncClient", "Client", "FileStorage", "InvalidToken", "Introspector", "JwksCache",
    "KeyringStorage", "ManaAuthError", "MemoryStorage", "NotLoggedIn", "Principal", "ProviderUnavailable",
    "ServiceTokenSource", "TokenVerifier", "TransportError",
]


def __getattr__(name):
    # ``import mana_auth`` then ``mana_auth.drf`` / ``mana_auth.django``: load the glue on first use.
    if name in ("drf", "django", "conf"):
        import importlib

        return importlib.import_module(f"mana_auth.{name}")
    raise AttributeError(f"module 'mana_auth' has no attribute {name!r}")

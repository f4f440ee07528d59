"""Fixtures for the mana_auth library: local Ed25519 keys, a fake clock and tiny HTTP servers standing in
for the provider (their classes and the token signer are in tests/support/mana_auth.py).

The unit tests here need no database: the suite-wide autouse fixture (which pulls in ``db``) runs only
for tests that use the real provider through ``live_server`` (and so get ``transactional_db``).
"""

from __future__ import annotations

import pytest

from tests.support.mana_auth import AUDIENCE, ISSUER, FakeClock, FakeServer, JwksServer, Key

# Old names, importable from here for tests written before the helpers moved to tests/support/
# (other branches may still add such imports); new tests import from tests/support.
from tests.support.mana_auth import b64url, claims_for, encode, hmac_token, make_token  # noqa: F401


@pytest.fixture(autouse=True)
def _fast_hashing_and_eager_tasks(request):
    """Overrides tests/conftest.py's fixture of this name: the unit tests here need no database; a test
    that uses the real provider (``live_server``) gets the suite-wide setup as everywhere else."""
    if "live_server" in request.fixturenames:
        request.getfixturevalue("_fast_hashing_and_eager_tasks")  # the parent definition
    yield


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.stop()


@pytest.fixture
def key():
    return Key(kid="key-1")


@pytest.fixture
def jwks_server(server, key):
    return JwksServer(server, [key])


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def verifier(jwks_server):
    import mana_auth

    return mana_auth.TokenVerifier(jwks_server.url, ISSUER, AUDIENCE)


@pytest.fixture
def mana_settings(settings, jwks_server, monkeypatch):
    """MANA_AUTH pointing at the local JWKS server; no development bypass unless a test asks."""
    monkeypatch.delenv("MANA_AUTH_DEV_BYPASS", raising=False)
    settings.MANA_AUTH = {"JWKS_URL": jwks_server.url, "ISSUER": ISSUER, "AUDIENCE": AUDIENCE}
    return settings

"""mana_auth reads its clocks at call time: a test clock that replaces ``time.time`` / ``time.monotonic``
after import (freezegun does exactly this) moves TokenVerifier, the JWKS cache, the Client and the
introspection caches. A default argument ``clock=time.time`` would have kept the real clock."""

from __future__ import annotations

import time

import pytest

import mana_auth
from mana_auth import Client, InvalidToken, Introspector, ServiceTokenSource
from tests.mana_auth.conftest import AUDIENCE, ISSUER, make_token
from tests.mana_auth.test_client import FakeAuthProvider


def test_token_verifier_uses_the_wall_clock_of_the_moment(jwks_server, key, monkeypatch):
    verifier = mana_auth.TokenVerifier(jwks_server.url, ISSUER, AUDIENCE)  # no clock given: the default
    token = make_token(key)  # exp = now + 900
    assert verifier.verify(token).user_id
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    assert refused.value.reason == "expired"
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    assert refused.value.reason == "issued_in_future"


def test_jwks_cache_uses_the_monotonic_clock_of_the_moment(jwks_server, key, monkeypatch):
    cache = mana_auth.JwksCache(jwks_server.url)
    cache.get(key.kid)
    cache.get(key.kid)
    assert jwks_server.fetches == 1
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 301)  # past max-age=300
    cache.get(key.kid)
    assert jwks_server.fetches == 2


def test_client_uses_the_wall_clock_of_the_moment(server, monkeypatch):
    provider = FakeAuthProvider(server)
    client = Client(server.url)
    client.login("a@example.com", "pw-123456789012")
    first = client.access_token()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 900)  # the access token has expired
    assert client.access_token() != first
    assert provider.refreshes == 1


def test_service_token_source_and_introspector_use_the_clocks_of_the_moment(server, monkeypatch):
    issued = []
    server.route("POST", "/api/v1/auth/service-token")(
        lambda h, b: issued.append(1) or (200, {}, {"accessToken": f"svc-{len(issued)}", "expiresIn": 900}))
    server.route("POST", "/api/v1/auth/introspect")(lambda h, b: (200, {}, {"active": True, "sid": "s1"}))
    source = ServiceTokenSource(server.url + "/api/v1/auth/service-token", "id", "secret")
    assert source() == source() == "svc-1"
    real_time, real_monotonic = time.time, time.monotonic
    monkeypatch.setattr(time, "time", lambda: real_time() + 900)
    assert source() == "svc-2"

    introspector = Introspector(server.url + "/api/v1/auth/introspect", token_provider="svc")
    principal = mana_auth.Principal(user_id="u1", email=None, role="user", session_id="s1", org=None,
                                    org_role=None, claims={"jti": "j1", "sid": "s1", "exp": real_time() + 900},
                                    token="t")
    introspector.ensure_active(principal)
    introspector.ensure_active(principal)
    assert server.hits["/api/v1/auth/introspect"] == 1  # cached for cache_seconds
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 11)
    introspector.ensure_active(principal)
    assert server.hits["/api/v1/auth/introspect"] == 2

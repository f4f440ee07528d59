"""Optional revocation check against the contract's POST /api/v1/auth/introspect (service Bearer)."""

from __future__ import annotations

import pytest

from mana_auth import Introspector, InvalidToken, ProviderUnavailable, TokenVerifier
from tests.support.mana_auth import AUDIENCE, ISSUER, make_token

INTROSPECT = "/api/v1/auth/introspect"
SERVICE_TOKEN = "/api/v1/auth/service-token"


class FakeProvider:
    """Introspection with a set of revoked session ids and service tokens handed out by client credentials."""

    def __init__(self, server):
        self.server = server
        self.revoked_sids: set[str] = set()
        self.valid_service_tokens: set[str] = set()
        self.issued = 0
        self.fail_status: int | None = None
        server.route("POST", SERVICE_TOKEN)(self._service_token)
        server.route("POST", INTROSPECT)(self._introspect)

    def _service_token(self, handler, body):
        if body != {"clientId": "svc-1", "clientSecret": "s3cret"}:
            return 401, {}, {"error": {"code": "invalid_client", "message": "Bad client."}}
        self.issued += 1
        token = f"service-token-{self.issued}"
        self.valid_service_tokens.add(token)
        return 200, {"Cache-Control": "no-store"}, {"accessToken": token, "tokenType": "Bearer", "expiresIn": 900}

    def _introspect(self, handler, body):
        if self.fail_status:
            return self.fail_status, {}, {"error": {"code": "server_error", "message": "x"}}
        bearer = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid_service_tokens:
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        import base64
        import json

        claims = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))
        if claims["sid"] in self.revoked_sids:
            return 200, {}, {"active": False}
        return 200, {}, {"active": True, **claims}

    @property
    def calls(self) -> int:
        return self.server.hits.get(INTROSPECT, 0)


@pytest.fixture
def provider(server, jwks_server):
    return FakeProvider(server)


@pytest.fixture
def introspector(server, provider, clock):
    return Introspector(server.url + INTROSPECT, "svc-1", "s3cret", clock=clock)


def test_active_token_passes_and_revoked_session_is_refused(jwks_server, introspector, provider, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    assert verifier.check_revocation is True  # an introspector given means: check every verify
    alive, dead = make_token(key), make_token(key)
    provider.revoked_sids.add(verifier.verify(dead, check_revocation=False).session_id)
    assert verifier.verify(alive).user_id
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(dead)
    assert caught.value.reason == "revoked"


def test_introspection_request_carries_the_token_and_service_bearer(server, jwks_server, introspector, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    token = make_token(key)
    verifier.verify(token)
    method, path, headers, body = [r for r in server.requests if r[1] == INTROSPECT][0]
    assert body == {"token": token}
    assert headers["Authorization"] == "Bearer service-token-1"


def test_answers_are_cached_briefly_per_jti(jwks_server, introspector, provider, key, clock):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    token = make_token(key)
    for _ in range(5):
        verifier.verify(token)
    assert provider.calls == 1
    principal = verifier.verify(token, check_revocation=False)
    provider.revoked_sids.add(principal.session_id)
    clock.advance(9)
    assert verifier.verify(token)  # still cached as active
    clock.advance(2)
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(token)
    assert provider.calls == 2


def test_a_revoked_session_refuses_its_other_tokens_without_asking_again(jwks_server, introspector, provider, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    first = make_token(key, sid="session-x")
    provider.revoked_sids.add("session-x")
    with pytest.raises(InvalidToken):
        verifier.verify(first)
    with pytest.raises(InvalidToken):
        verifier.verify(make_token(key, sid="session-x"))
    assert provider.calls == 1


def test_per_call_check_when_off_by_default(jwks_server, introspector, provider, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector, check_revocation=False)
    token = make_token(key, sid="gone")
    provider.revoked_sids.add("gone")
    assert verifier.verify(token)  # local check only
    assert provider.calls == 0
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(token, check_revocation=True)
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.ensure_active(verifier.verify(token))


def test_per_call_check_without_introspector_is_a_programming_error(verifier, key):
    with pytest.raises(ValueError):
        verifier.verify(make_token(key), check_revocation=True)


def test_service_token_is_fetched_once_and_renewed_after_a_401(jwks_server, introspector, provider, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    for _ in range(3):
        verifier.verify(make_token(key))
    assert provider.issued == 1
    provider.valid_service_tokens.clear()  # e.g. the service account's token was revoked
    assert verifier.verify(make_token(key))
    assert provider.issued == 2


def test_static_service_token(server, jwks_server, provider, key):
    provider.valid_service_tokens.add("static-token")
    introspector = Introspector(server.url + INTROSPECT, token_provider="static-token")
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    assert verifier.verify(make_token(key))
    assert provider.issued == 0


@pytest.mark.parametrize("status", [500, 404, 429])
def test_introspection_errors_fail_closed_as_provider_unavailable(jwks_server, introspector, provider, key, status):
    provider.fail_status = status
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    with pytest.raises(ProviderUnavailable) as caught:
        verifier.verify(make_token(key))
    assert caught.value.reason == "introspection_unavailable"


def test_unreachable_provider_fails_closed(server, jwks_server, key, clock):
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE)
    token = make_token(key)
    verifier.verify(token)  # JWKS now cached
    introspector = Introspector(server.url + INTROSPECT, token_provider="t", timeout=1)
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector, jwks_cache=verifier.jwks)
    server.stop()
    with pytest.raises(ProviderUnavailable):
        verifier.verify(token)


def test_bad_client_credentials_fail_closed(server, jwks_server, provider, key):
    introspector = Introspector(server.url + INTROSPECT, "svc-1", "wrong")
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    with pytest.raises(ProviderUnavailable, match="invalid_client"):
        verifier.verify(make_token(key))


def test_constructor_needs_credentials(server):
    with pytest.raises(ValueError):
        Introspector(server.url + INTROSPECT)
    with pytest.raises(ValueError):
        Introspector(server.url + "/check", "id", "secret")  # no way to derive the token URL
    assert Introspector(server.url + "/check", "id", "secret", token_url=server.url + "/tok")


def test_cache_stays_bounded(jwks_server, introspector, provider, key, monkeypatch, clock):
    from mana_auth import introspection

    monkeypatch.setattr(introspection, "MAX_CACHE_ENTRIES", 3)
    verifier = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, introspection=introspector)
    for _ in range(10):
        verifier.verify(make_token(key))
    assert len(introspector._by_jti) <= 3

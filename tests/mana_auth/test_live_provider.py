"""The library and SDK against the REAL provider of this repository (pytest-django's live_server):
log in through the SDK, verify the access token locally through the JWKS, refresh, log out."""

from __future__ import annotations

import pytest

from identity.app_settings import app_settings
from mana_auth import ApiError, Client, InvalidToken, NotLoggedIn, TokenVerifier, _http
from identity.services import keys
from tests.factories import PASSWORD, UserFactory


@pytest.fixture(autouse=True)
def _behind_tls_proxy(settings, monkeypatch, live_server):
    """The session-wide live server built its middleware with the production posture (HTTPS redirect)
    before any test's settings applied; requests arrive as through a TLS-terminating proxy, as in
    tests/sessions_app/test_concurrency.py."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    real_send = _http.send

    def send(method, url, *, headers=None, **kwargs):
        if url.startswith(live_server.url):
            headers = {**(headers or {}), "X-Forwarded-Proto": "https"}
        return real_send(method, url, headers=headers, **kwargs)

    monkeypatch.setattr(_http, "send", send)


@pytest.fixture
def account():
    return UserFactory()


@pytest.fixture
def client(live_server):
    return Client(live_server.url)


@pytest.fixture
def verifier(live_server):
    return TokenVerifier(live_server.url + "/api/v1/auth/jwks", app_settings.ISSUER, app_settings.AUDIENCE)


def test_login_through_sdk_and_verify_locally(client, verifier, account):
    pair = client.login(account.email, PASSWORD, device_name="pytest")
    principal = verifier.verify(client.access_token())
    assert principal.user_id == str(account.pk) == pair["user"]["id"]
    assert principal.email == account.email
    assert principal.role == "user"
    assert principal.session_id == pair["session"]["id"]
    assert principal.org is None
    assert client.me()["email"] == account.email
    sessions = client.sessions()
    assert [s["id"] for s in sessions if s["current"]] == [principal.session_id]


def test_refresh_gives_a_new_token_that_verifies(client, verifier, account):
    client.login(account.email, PASSWORD)
    first = client.access_token()
    old_refresh = client.tokens["refreshToken"]
    client.refresh()
    second = client.access_token()
    assert second != first and client.tokens["refreshToken"] != old_refresh
    assert verifier.verify(second).session_id == verifier.verify(first).session_id
    assert verifier.jwks.fetch_count == 1


def test_logout_revokes_the_session_but_the_token_verifies_locally_until_exp(client, verifier, account, live_server):
    client.login(account.email, PASSWORD)
    token = client.access_token()
    client.logout()
    with pytest.raises(NotLoggedIn):
        client.me()
    # The provider itself refuses the token now (it checks the session on every request)...
    response = _http.send("GET", live_server.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401 and response.error()[0] == "session_revoked"
    # ...but local verification is signature + claims only: by design the token stays valid until exp.
    # Resource servers that must see revocations at once use the introspection check.
    assert verifier.verify(token).user_id == str(account.pk)


def test_wrong_password_is_an_api_error(client, account):
    with pytest.raises(ApiError) as caught:
        client.login(account.email, "not-the-password-123")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")


def test_rotated_signing_key_is_picked_up_through_one_refetch(client, verifier, account):
    client.login(account.email, PASSWORD)
    verifier.verify(client.access_token())
    keys.signing_key_rotate()
    verifier.jwks._last_attempt -= 60  # past the refetch rate limit (5 s) without sleeping
    client.refresh()
    principal = verifier.verify(client.access_token())
    assert principal.user_id == str(account.pk)
    assert verifier.jwks.fetch_count == 2


def test_tokens_for_another_audience_are_refused(client, live_server, account):
    client.login(account.email, PASSWORD)
    other = TokenVerifier(live_server.url + "/api/v1/auth/jwks", app_settings.ISSUER, "billing-service")
    with pytest.raises(InvalidToken) as caught:
        other.verify(client.access_token())
    assert caught.value.reason == "wrong_audience"


def test_drf_resource_view_trusts_the_real_providers_token(client, account, live_server, settings, monkeypatch):
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from mana_auth.drf import HasRole, IsAuthenticated, JwtAuthentication, principal

    monkeypatch.delenv("MANA_AUTH_DEV_BYPASS", raising=False)
    settings.MANA_AUTH = {"JWKS_URL": live_server.url + "/api/v1/auth/jwks", "ISSUER": app_settings.ISSUER,
                          "AUDIENCE": app_settings.AUDIENCE}

    class Report(APIView):
        authentication_classes = [JwtAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request):
            return Response({"email": principal(request).email})

    class AdminReport(Report):
        permission_classes = [HasRole("admin")]

    client.login(account.email, PASSWORD)
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {client.access_token()}")
    response = Report.as_view()(request)
    assert response.status_code == 200 and response.data == {"email": account.email}
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {client.access_token()}")
    assert AdminReport.as_view()(request).status_code == 403


def test_async_client_against_the_real_provider(live_server, account):
    import asyncio

    from mana_auth import AsyncClient

    async def scenario():
        client = AsyncClient(live_server.url)
        await client.login(account.email, PASSWORD)
        me = await client.me()
        await client.refresh()
        sessions = await client.sessions()
        await client.logout()
        return me, sessions, client

    me, sessions, client = asyncio.run(scenario())
    assert me["email"] == account.email and len(sessions) == 1 and client.tokens is None

"""The token, revocation, userinfo and logout endpoints beyond the conformance modules: refresh-token
reuse, revocation (RFC 7009), introspection of these tokens, RP-initiated logout, bad input (never a 5xx),
and the code redeemed concurrently (PostgreSQL)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.test import Client

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from oidc_provider.models import OidcGrant
from sessions_app.models import DeviceSession
from tests.support.auth import page_login
from tests.support.oidc import (
    AUTHORIZE, BASE, LOGOUT, POST_LOGOUT, REDIRECT, REVOKE, TOKEN, USERINFO, begin, finish, query_of, relying_party,
)
from tests.support.races import race


def code_flow(browser, rp, **params):
    started = begin(rp, **params)
    location = browser.get(started["path"])["Location"]
    return finish(rp, location, started["verifier"]), started


def userinfo_status(token) -> int:
    return Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code


# --- refresh ---------------------------------------------------------------------------------------------------
def test_a_spent_refresh_token_ends_the_grant(browser, confidential, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    client, secret = confidential
    rp = relying_party(client.client_id, secret, scope="openid offline_access")
    token, _ = code_flow(browser, rp)
    spent = token["refresh_token"]
    fresh = rp.refresh_token(BASE + TOKEN, refresh_token=spent)
    again = Client().post(TOKEN, {"grant_type": "refresh_token", "refresh_token": spent,
                                  "client_id": client.client_id, "client_secret": secret})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    still = Client().post(TOKEN, {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"],
                                  "client_id": client.client_id, "client_secret": secret})
    assert still.status_code == 400  # reuse ended the whole grant
    assert userinfo_status(fresh) == 401


def test_refresh_token_of_another_client_is_refused_and_changes_nothing(browser, make_client):
    first, first_secret = make_client("One")
    second, second_secret = make_client("Two")
    token, _ = code_flow(browser, relying_party(first.client_id, first_secret, scope="openid offline_access"))
    response = Client().post(TOKEN, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                     "client_id": second.client_id, "client_secret": second_secret})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert userinfo_status(token) == 200


def test_offline_grant_is_a_session_listed_with_the_client_name(browser, confidential, user):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret, scope="openid offline_access"))
    sid = access_token_verify(token["access_token"])["sid"]
    session = DeviceSession.objects.get(pk=sid)
    assert session.device_name == "Grafana (app sign-in)" and session.reauthenticated_at is None
    assert OidcGrant.objects.get(session=session).offline
    page = browser.get("/account/sessions").content.decode()
    assert "Grafana (app sign-in)" in page


# --- revocation (RFC 7009) ------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
def test_revocation_ends_the_grant(browser, confidential, which):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret, scope="openid offline_access"))
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = Client().post(REVOKE, {"token": token[which], "token_type_hint": which},
                             HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200
    assert userinfo_status(token) == 401
    assert AuditEvent.objects.filter(event=EventType.OIDC_TOKEN_REVOKED).count() == 1


def test_revocation_needs_the_client_and_ignores_other_clients_tokens(browser, make_client):
    first, first_secret = make_client("One")
    second, second_secret = make_client("Two")
    token, _ = code_flow(browser, relying_party(first.client_id, first_secret, scope="openid offline_access"))
    wrong = Client().post(REVOKE, {"token": token["refresh_token"], "client_id": first.client_id,
                                   "client_secret": "wrong"})
    assert wrong.status_code in (400, 401) and wrong.json()["error"] == "invalid_client"
    other = Client().post(REVOKE, {"token": token["refresh_token"], "client_id": second.client_id,
                                   "client_secret": second_secret})
    assert other.status_code == 200
    unknown = Client().post(REVOKE, {"token": "mrt_nothing", "client_id": second.client_id,
                                     "client_secret": second_secret})
    assert unknown.status_code == 200
    assert userinfo_status(token) == 200


# --- introspection (the service-account endpoint) -----------------------------------------------------------------
def test_introspection_accepts_these_tokens(browser, confidential):
    from service_accounts.services import service_account_create, service_token_obtain

    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    account = service_account_create(name="api")
    service = service_token_obtain(client_id=account.client.client_id, client_secret=account.client_secret).token
    response = Client().post("/api/v1/auth/introspect", {"token": token["access_token"]},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {service}")
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True and body["client_id"] == client.client_id and body["scope"] == "openid profile email"


# --- RP-initiated logout -------------------------------------------------------------------------------------------
def test_logout_with_id_token_hint_signs_the_browser_out_and_returns_with_state(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    response = browser.get(LOGOUT, {"id_token_hint": token["id_token"], "post_logout_redirect_uri": POST_LOGOUT,
                                    "state": "bye"})
    assert response.status_code == 302 and response["Location"] == POST_LOGOUT + "?state=bye"
    assert browser.get("/account").status_code == 302  # signed out: to the login page
    assert AuditEvent.objects.filter(event=EventType.OIDC_LOGOUT).count() == 1


def test_logout_refuses_an_unregistered_post_logout_uri(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    response = browser.get(LOGOUT, {"id_token_hint": token["id_token"],
                                    "post_logout_redirect_uri": "https://evil.example.com/"})
    assert response.status_code == 400 and "Location" not in response
    assert browser.get("/account").status_code == 200  # still signed in


def test_logout_without_hint_asks_first(browser):
    asked = browser.get(LOGOUT)
    assert asked.status_code == 200 and b"Sign out?" in asked.content
    assert browser.get("/account").status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', asked.content.decode()).group(1)
    done = browser.post(LOGOUT, {"confirm": "yes", "csrfmiddlewaretoken": token})
    assert done.status_code == 200
    assert browser.get("/account").status_code == 302


def test_logout_confirmation_needs_the_csrf_token(browser):
    browser.get(LOGOUT)
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = browser.cookies
    response = forged.post(LOGOUT, {"confirm": "yes"})
    assert response.status_code == 403
    assert browser.get("/account").status_code == 200


# --- bad input: 4xx, never 5xx ------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, headers", [
    ({}, {}),
    ({"grant_type": "authorization_code"}, {}),
    ({"grant_type": "password", "username": "a", "password": "b"}, {}),
    ({"grant_type": "authorization_code", "code": "x", "client_id": "oidc_nobody"}, {}),
    ({"grant_type": "authorization_code", "code": "x" * 5000, "client_id": "x" * 5000}, {}),
    ({"grant_type": "authorization_code", "code": "x"}, {"HTTP_AUTHORIZATION": "Basic !!!notbase64"}),
    ({"grant_type": "authorization_code", "code": "x"},
     {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}),
    ({"grant_type": "refresh_token", "refresh_token": "mrt_x", "client_id": "oidc_nobody"}, {}),
    ({"grant_type": "authorization_code", "code": "x", "client_id": "a\"b\\c"}, {}),
])
def test_token_endpoint_bad_input_is_oauth_json(data, headers):
    response = Client().post(TOKEN, data, **headers)
    assert 400 <= response.status_code < 500, response.content
    assert "error" in response.json() and response["Cache-Control"] == "no-store"


def test_token_endpoint_json_body_and_get_are_refused():
    assert Client().post(TOKEN, {"grant_type": "x"}, content_type="application/json").status_code == 400
    assert Client().get(TOKEN).status_code == 405


def test_token_endpoint_bad_client_secret_is_invalid_client(browser, confidential):
    client, secret = confidential
    response = Client().post(TOKEN, {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
                                     "client_id": client.client_id, "client_secret": "wrong"})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    assert AuditEvent.objects.filter(event=EventType.OIDC_TOKEN_REFUSED, success=False).exists()


@pytest.mark.parametrize("params", [
    {},
    {"client_id": "x" * 3000},
    {"response_type": "code", "client_id": "oidc_x", "redirect_uri": "\x00"},
    {"response_type": "code", "client_id": "oidc_x", "redirect_uri": 'https://a/"\\'},
    {"response_type": ["code", "code"], "client_id": "oidc_x"},
])
def test_authorization_endpoint_bad_input_is_an_error_page(browser, params):
    response = browser.get(AUTHORIZE, params)
    assert response.status_code == 400 and "Location" not in response


def test_authorization_endpoint_bad_input_with_a_known_client(browser, confidential):
    client, _ = confidential
    for extra in ({"redirect_uri": 'https://rp.example.com/callback"\\'}, {"state": "\x00\""},
                  {"nonce": "é" * 10, "state": "ü"}, {"max_age": "-1"}, {"login_hint": "x" * 5000},
                  {"id_token_hint": "x" * 10000}, {"code_challenge": "short", "code_challenge_method": "S256"}):
        params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
                  "scope": "openid", **extra}
        response = browser.get(AUTHORIZE, params)
        assert response.status_code in (302, 400), (extra, response.status_code)


def test_userinfo_and_revoke_bad_input():
    assert Client().get(USERINFO, HTTP_AUTHORIZATION="Bearer " + "x" * 10000).status_code == 401
    assert Client().get(USERINFO, HTTP_AUTHORIZATION="Basic abc").status_code == 401
    assert Client().post(REVOKE, {}).status_code in (400, 401)
    assert Client().get(LOGOUT, {"id_token_hint": "garbage"}).status_code == 400


# --- the code redeemed concurrently -----------------------------------------------------------------------------
@pytest.mark.postgres
def test_same_code_redeemed_concurrently_gives_one_success(confidential, user):
    client, secret = confidential
    browser = Client()
    assert page_login(browser, user.email).status_code == 302
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    code = query_of(browser.get(started["path"])["Location"])["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client.client_id, "client_secret": secret, "code_verifier": started["verifier"]}
    results = race(*[lambda: Client().post(TOKEN, body) for _ in range(4)])
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400, 400, 400], [r.content for r in results]
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)
    assert OidcGrant.objects.count() == 1


def test_plain_http_is_not_a_server_error(monkeypatch, browser, confidential):
    """Authlib's own https check is not applied (transport security is Django's): the development server
    speaks http and must not answer 500."""
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    client, secret = confidential
    assert Client().post(TOKEN, {"grant_type": "authorization_code", "code": "x"}).status_code == 401
    assert Client().post(REVOKE, {"token": "x"}).status_code == 401
    response = browser.get(AUTHORIZE, {"response_type": "code", "client_id": client.client_id,
                                       "redirect_uri": REDIRECT, "scope": "openid", "state": "s",
                                       "code_challenge": "a" * 43, "code_challenge_method": "S256"})
    assert response.status_code == 302 and "code=" in response["Location"]


def _forged(header: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode() + ".e30.c2ln"


NASTY = ["", " ", "\x00", "a\x00b", "é", "a" * 5000, '"\\', "%00", "../../", "<script>", "-1", "1e9", "null", "[]",
         "javascript:alert(1)", "https://evil.example.com/", _forged({"alg": "RS256", "kid": "\x00"}),
         _forged({"alg": "EdDSA", "kid": "x" * 500}), _forged({"alg": "none"})]


def test_every_endpoint_and_parameter_with_nasty_values_answers_below_500(browser, confidential):
    """A sweep of bad values through every parameter of every endpoint, signed in and not: never a 5xx."""
    client, secret = confidential
    base = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT, "scope": "openid",
            "state": "s", "nonce": "n", "code_challenge": "a" * 43, "code_challenge_method": "S256"}
    names = [*base, "prompt", "max_age", "login_hint", "id_token_hint", "request", "request_uri"]
    for value in NASTY:
        for name in names:  # signed in: the longest path through the endpoint
            for method in ("get", "post"):
                response = getattr(browser, method)(AUTHORIZE, {**base, name: value})
                assert response.status_code < 500, (name, value, method, response.status_code)
        for path, params in ((TOKEN, {"grant_type": "authorization_code", "code": value, "redirect_uri": value,
                                      "client_id": client.client_id, "client_secret": secret,
                                      "code_verifier": value}),
                             (TOKEN, {"grant_type": "refresh_token", "refresh_token": value, "scope": value,
                                      "client_id": client.client_id, "client_secret": secret}),
                             (TOKEN, {"grant_type": value, "client_id": value, "client_secret": value}),
                             (REVOKE, {"token": value, "token_type_hint": value, "client_id": client.client_id,
                                       "client_secret": secret}),
                             (LOGOUT, {"id_token_hint": value, "post_logout_redirect_uri": value, "state": value,
                                       "client_id": value})):
            assert Client().post(path, params).status_code < 500, (path, value)
        assert Client().get(LOGOUT, {"post_logout_redirect_uri": value, "client_id": value}).status_code < 500
        assert Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {value}").status_code < 500
        assert browser.get(f"/account/apps/{value[:100] or 'x'}/revoke").status_code < 500
        assert Client().get(f"/{value[:50] or 'x'}/.well-known/openid-configuration").status_code < 500


def test_a_clients_access_token_is_never_fresh_for_step_up(browser, confidential):
    """The browser just signed in (fresh), but the token the client got cannot change the email address."""
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    response = Client().post("/api/v1/auth/change-email", {"newEmail": "new@example.com"},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "reauthentication_required"

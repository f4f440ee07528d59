"""A pytest port of the OpenID Foundation's Basic OP conformance modules that apply to this provider
(oidcc-basic-certification-test-plan: the code flow with a confidential client; public clients with PKCE),
driven through the real HTTP endpoints, with Authlib's OAuth2Session as the relying party and every
id_token verified against the published JWKS (tests/support/oidc.py).

Module names follow the plan (``oidcc-server``, ``oidcc-ensure-redirect-uri-in-authorization-request``, ...).
"""

from __future__ import annotations

import time

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.oidc.discovery import OpenIDProviderMetadata
from django.test import Client
from django.utils import timezone

from sessions_app.models import DeviceSession
from tests.support.oidc import (
    AUTHORIZE, BASE, DISCOVERY, REDIRECT, TOKEN, USERINFO, begin, finish, published_keys, query_of,
    relying_party, verify_id_token,
)


def sign_in(browser, rp, **params):
    """The authorization request in the browser; returns (redirect location, the request's values)."""
    started = begin(rp, **params)
    response = browser.get(started["path"])
    assert response.status_code == 302, response.content[:500]
    return response["Location"], started


def code_flow(browser, rp, **params):
    location, started = sign_in(browser, rp, **params)
    assert location.startswith(REDIRECT), location
    token = finish(rp, location, started["verifier"])
    return token, started


# --- discovery (oidcc-discovery-*) ------------------------------------------------------------------------
def test_discovery_document_is_valid_and_names_every_endpoint():
    response = Client().get(DISCOVERY)
    assert response.status_code == 200
    metadata = OpenIDProviderMetadata(response.json())
    metadata.validate()  # Authlib's OpenID Connect Discovery 1.0 checks
    assert metadata["issuer"] == BASE
    for name, path in (("authorization_endpoint", AUTHORIZE), ("token_endpoint", TOKEN),
                       ("userinfo_endpoint", USERINFO), ("jwks_uri", "/.well-known/jwks.json"),
                       ("revocation_endpoint", "/oidc/revoke"), ("end_session_endpoint", "/oidc/logout")):
        assert metadata[name] == BASE + path
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post",
                                                                     "none"}


def test_discovery_jwks_lists_an_rsa_key_and_never_private_parts():
    Client().get(DISCOVERY)
    keys = Client().get("/.well-known/jwks.json").json()["keys"]
    rsa = [k for k in keys if k["kty"] == "RSA"]
    assert rsa and rsa[0]["alg"] == "RS256" and rsa[0]["use"] == "sig"
    assert all(not ({"d", "p", "q", "dp", "dq", "qi"} & set(k)) for k in keys)
    assert any(k["kty"] == "OKP" for k in keys)  # the access-token keys are still there


def test_discovery_under_an_issuer_with_a_path(settings):
    settings.AUTH_OIDC_ISSUER = BASE + "/tenant"
    response = Client().get("/tenant" + DISCOVERY)
    assert response.status_code == 200 and response.json()["issuer"] == BASE + "/tenant"
    assert Client().get("/elsewhere" + DISCOVERY).status_code == 404


# --- oidcc-server: the basic code flow --------------------------------------------------------------------
def test_code_flow_confidential_client(browser, confidential, user):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    token, started = code_flow(browser, rp)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert "refresh_token" not in token  # no offline_access
    claims = verify_id_token(token["id_token"], client_id=client.client_id, nonce=started["nonce"])
    assert claims["header"]["alg"] == "RS256"
    assert claims["sub"] == str(user.pk)
    assert claims["email"] == user.email and claims["email_verified"] is True and claims["name"] == user.name
    assert claims["amr"] == ["pwd"]
    browser_session = DeviceSession.objects.get(pk=claims["sid"])
    assert abs(claims["auth_time"] - browser_session.reauthenticated_at.timestamp()) < 2
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 5


def test_client_secret_post(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret, auth_method="client_secret_post")
    token, _ = code_flow(browser, rp)
    assert "id_token" in token


def test_public_client_with_pkce(browser, make_client):
    client, _ = make_client("SPA", public=True)
    rp = relying_party(client.client_id)
    token, started = code_flow(browser, rp)
    verify_id_token(token["id_token"], client_id=client.client_id, nonce=started["nonce"])


def test_eddsa_id_token_per_client(browser, make_client):
    client, secret = make_client("Modern", id_token_alg="EdDSA")
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    claims = verify_id_token(token["id_token"], client_id=client.client_id)
    assert claims["header"]["alg"] == "EdDSA"


def test_access_token_is_ours_with_client_id_and_scope(browser, confidential, user):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    from identity.services.tokens import access_token_verify

    claims = access_token_verify(token["access_token"])
    assert claims["client_id"] == client.client_id and claims["scope"] == "openid profile email"
    assert claims["sub"] == str(user.pk) and claims["sid"]
    # the API's bearer check takes it as it is
    me = Client().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert me.status_code == 200 and me.json()["email"] == user.email


# --- oidcc-userinfo-get / -post-header; oidcc-scope-* -------------------------------------------------------
def test_userinfo_get_and_post(browser, confidential, user):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    auth = f"Bearer {token['access_token']}"
    for method in ("get", "post"):
        response = getattr(Client(), method)(USERINFO, HTTP_AUTHORIZATION=auth)
        assert response.status_code == 200
        assert response.json() == {"sub": str(user.pk), "email": user.email, "email_verified": True,
                                   "name": user.name}
        assert response["Cache-Control"] == "no-store"


def test_userinfo_post_body(browser, confidential, user):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    from urllib.parse import urlencode

    response = Client().post(USERINFO, urlencode({"access_token": token["access_token"]}),
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["sub"] == str(user.pk)


@pytest.mark.parametrize(("scope", "present", "absent"), [
    ("openid", set(), {"email", "email_verified", "name"}),
    ("openid email", {"email", "email_verified"}, {"name"}),
    ("openid profile", {"name"}, {"email", "email_verified"}),
])
def test_claims_by_scope(browser, confidential, scope, present, absent):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret, scope=scope))
    id_claims = verify_id_token(token["id_token"], client_id=client.client_id)
    info = Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").json()
    for claims in (id_claims, info):
        assert present <= set(claims) and not (absent & set(claims))


def test_unknown_scopes_are_ignored_and_openid_is_required(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret, scope="openid phone"))
    assert token["scope"] == "openid"
    location, started = sign_in(browser, relying_party(client.client_id, secret, scope="profile"))
    assert query_of(location)["error"] == "invalid_scope" and query_of(location)["state"] == started["state"]


def test_userinfo_refuses_missing_bad_and_revoked_tokens(browser, confidential):
    client, secret = confidential
    assert Client().get(USERINFO).status_code == 401
    bad = Client().get(USERINFO, HTTP_AUTHORIZATION="Bearer not-a-token")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad["WWW-Authenticate"]
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    from identity.services.tokens import access_token_verify

    sid = access_token_verify(token["access_token"])["sid"]
    DeviceSession.objects.filter(pk=sid).update(revoked_at=timezone.now())
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401


def test_userinfo_refuses_a_plain_api_token(user):
    from sessions_app.services import session_create

    pair = session_create(user=user)
    response = Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {pair.access_token}")
    assert response.status_code == 403


# --- oidcc-ensure-request-with-valid-pkce / PKCE failures ---------------------------------------------------
def test_pkce_wrong_verifier_is_invalid_grant(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    location, _ = sign_in(browser, rp)
    with pytest.raises(OAuthError) as exc:
        finish(rp, location, "x" * 64)
    assert exc.value.error == "invalid_grant"


def test_pkce_missing_verifier_is_invalid_grant(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    location, started = sign_in(browser, rp)
    code = query_of(location)["code"]
    response = Client().post(TOKEN, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                      "client_id": client.client_id, "client_secret": secret})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_public_client_without_pkce_is_refused_at_the_authorization_endpoint(browser, make_client):
    client, _ = make_client("SPA", public=True)
    response = browser.get(AUTHORIZE, {"response_type": "code", "client_id": client.client_id,
                                       "redirect_uri": REDIRECT, "scope": "openid", "state": "s1"})
    assert response.status_code == 302
    assert query_of(response["Location"]) == {"error": "invalid_request", "state": "s1",
                                              "error_description": query_of(response["Location"])["error_description"]}


def test_plain_pkce_is_refused(browser, make_client):
    client, _ = make_client("SPA", public=True)
    response = browser.get(AUTHORIZE, {"response_type": "code", "client_id": client.client_id,
                                       "redirect_uri": REDIRECT, "scope": "openid", "state": "s1",
                                       "code_challenge": "a" * 43, "code_challenge_method": "plain"})
    assert query_of(response["Location"])["error"] == "invalid_request"


# --- oidcc-codereuse, oidcc-codereuse-30seconds ---------------------------------------------------------------
def test_code_reuse_is_refused_and_revokes_what_it_issued(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    location, started = sign_in(browser, rp)
    token = finish(rp, location, started["verifier"])
    auth = f"Bearer {token['access_token']}"
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=auth).status_code == 200
    with pytest.raises(OAuthError) as exc:
        finish(rp, location, started["verifier"])
    assert exc.value.error == "invalid_grant"
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=auth).status_code == 401
    from audit.models import AuditEvent, EventType

    assert AuditEvent.objects.filter(event=EventType.OIDC_CODE_REUSED, success=False).count() == 1


def test_code_expires_after_60_seconds(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    location, started = sign_in(browser, rp)
    from oidc_provider.models import AuthorizationCode

    AuthorizationCode.objects.update(expires_at=timezone.now())
    with pytest.raises(OAuthError) as exc:
        finish(rp, location, started["verifier"])
    assert exc.value.error == "invalid_grant"


def test_code_of_another_client_is_refused(browser, make_client):
    first, first_secret = make_client("One")
    second, second_secret = make_client("Two")
    location, started = sign_in(browser, relying_party(first.client_id, first_secret))
    with pytest.raises(OAuthError) as exc:
        finish(relying_party(second.client_id, second_secret), location, started["verifier"])
    assert exc.value.error == "invalid_grant"


# --- redirect URIs (oidcc-ensure-registered-redirect-uri, -redirect-uri-in-authorization-request) -----------------
def test_unregistered_redirect_uri_is_an_error_page_never_a_redirect(browser, confidential):
    client, _ = confidential
    for uri in ("https://rp.example.com/callback/", "https://evil.example.com/callback",
                "https://rp.example.com/callback?x=1"):
        response = browser.get(AUTHORIZE, {"response_type": "code", "client_id": client.client_id,
                                           "redirect_uri": uri, "scope": "openid", "state": "s"})
        assert response.status_code == 400 and "Location" not in response


def test_missing_redirect_uri_and_unknown_client_are_error_pages(browser, confidential):
    client, _ = confidential
    missing = browser.get(AUTHORIZE, {"response_type": "code", "client_id": client.client_id, "scope": "openid"})
    unknown = browser.get(AUTHORIZE, {"response_type": "code", "client_id": "oidc_nobody", "redirect_uri": REDIRECT,
                                      "scope": "openid"})
    for response in (missing, unknown):
        assert response.status_code == 400 and "Location" not in response


def test_token_request_with_another_redirect_uri_is_invalid_grant(browser, make_client):
    client, secret = make_client(redirect_uris=[REDIRECT, REDIRECT + "2"])
    location, started = sign_in(browser, relying_party(client.client_id, secret))
    rp = relying_party(client.client_id, secret, redirect_uri=REDIRECT + "2")
    with pytest.raises(OAuthError) as exc:
        finish(rp, location, started["verifier"])
    assert exc.value.error == "invalid_grant"


def test_unsupported_response_type_redirects_with_error_and_state(browser, confidential):
    client, _ = confidential
    response = browser.get(AUTHORIZE, {"response_type": "token", "client_id": client.client_id,
                                       "redirect_uri": REDIRECT, "scope": "openid", "state": "xyz"})
    assert response.status_code == 302
    assert query_of(response["Location"])["error"] == "unsupported_response_type"
    assert query_of(response["Location"])["state"] == "xyz"


# --- nonce (oidcc-ensure-request-without-nonce-succeeds-for-code-flow) --------------------------------------------
def test_nonce_only_when_sent(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    path = "&".join(p for p in started["path"].split("&") if not p.startswith("nonce="))
    location = browser.get(path)["Location"]
    token = finish(rp, location, started["verifier"])
    assert "nonce" not in verify_id_token(token["id_token"], client_id=client.client_id)


# --- prompt=none (oidcc-prompt-none-not-logged-in, oidcc-prompt-none-logged-in) -----------------------------------
def test_prompt_none_without_a_signed_in_browser_is_login_required(confidential):
    client, secret = confidential
    location, started = sign_in(Client(), relying_party(client.client_id, secret), prompt="none")
    assert query_of(location) == {"error": "login_required", "state": started["state"],
                                  "error_description": query_of(location).get("error_description")} \
        or query_of(location)["error"] == "login_required"
    assert location.startswith(REDIRECT)


def test_prompt_none_signed_in_returns_a_code(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret), prompt="none")
    assert "id_token" in token


def test_not_signed_in_goes_to_our_login_page_and_back(confidential, user):
    from tests.support.auth import page_login

    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    browser = Client()
    first = browser.get(started["path"])
    assert first.status_code == 302 and first["Location"].startswith("/login?next=")
    from urllib.parse import parse_qs, urlsplit

    nxt = parse_qs(urlsplit(first["Location"]).query)["next"][0]
    assert nxt.startswith(AUTHORIZE)
    signed = page_login(browser, user.email, next=nxt)
    assert signed.status_code == 302 and signed["Location"] == nxt
    location = browser.get(nxt)["Location"]
    token = finish(rp, location, started["verifier"])
    assert verify_id_token(token["id_token"], client_id=client.client_id, nonce=started["nonce"])


# --- prompt=login and max_age (oidcc-prompt-login, oidcc-max-age-1, oidcc-max-age-10000) -------------------------
def _reauthenticate(browser, response):
    from urllib.parse import parse_qs, urlsplit

    from tests.factories import PASSWORD

    assert response.status_code == 302 and response["Location"].startswith("/account/reauthenticate?next=")
    nxt = parse_qs(urlsplit(response["Location"]).query)["next"][0]
    done = browser.post("/account/reauthenticate", {"password": PASSWORD, "next": nxt})
    assert done.status_code == 302 and done["Location"] == nxt
    return browser.get(nxt)


def test_prompt_login_forces_a_new_sign_in_with_a_newer_auth_time(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    first, _ = code_flow(browser, rp)
    first_time = verify_id_token(first["id_token"], client_id=client.client_id)["auth_time"]
    time.sleep(1.1)
    started = begin(rp, prompt="login")
    answer = _reauthenticate(browser, browser.get(started["path"]))
    token = finish(rp, answer["Location"], started["verifier"])
    assert verify_id_token(token["id_token"], client_id=client.client_id)["auth_time"] > first_time


def test_max_age_exceeded_forces_a_new_sign_in(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    DeviceSession.objects.update(reauthenticated_at=timezone.now() - timezone.timedelta(minutes=5))
    started = begin(rp, max_age="60")
    answer = _reauthenticate(browser, browser.get(started["path"]))
    token = finish(rp, answer["Location"], started["verifier"])
    assert time.time() - verify_id_token(token["id_token"], client_id=client.client_id)["auth_time"] < 60


def test_max_age_within_signs_in_without_asking(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret), max_age="10000")
    assert "auth_time" in verify_id_token(token["id_token"], client_id=client.client_id)


def test_prompt_none_with_max_age_exceeded_is_login_required(browser, confidential):
    client, secret = confidential
    DeviceSession.objects.update(reauthenticated_at=timezone.now() - timezone.timedelta(minutes=5))
    location, _ = sign_in(browser, relying_party(client.client_id, secret), prompt="none", max_age="1")
    assert query_of(location)["error"] == "login_required"


def test_bad_max_age_and_bad_prompt_redirect_with_invalid_request(browser, confidential):
    client, secret = confidential
    for params in ({"max_age": "soon"}, {"prompt": "none login"}):
        location, _ = sign_in(browser, relying_party(client.client_id, secret), **params)
        assert query_of(location)["error"] == "invalid_request"


# --- id_token_hint (oidcc-id-token-hint) ------------------------------------------------------------------------
def test_id_token_hint_of_the_signed_in_user(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    first, _ = code_flow(browser, rp)
    token, _ = code_flow(browser, rp, prompt="none", id_token_hint=first["id_token"])
    assert "id_token" in token


def test_id_token_hint_of_someone_else_with_prompt_none_is_login_required(browser, confidential):
    from tests.factories import UserFactory
    from tests.support.auth import page_login

    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    other_browser = Client()
    other = UserFactory()
    page_login(other_browser, other.email)
    other_token, _ = code_flow(other_browser, rp)
    location, _ = sign_in(browser, rp, prompt="none", id_token_hint=other_token["id_token"])
    assert query_of(location)["error"] == "login_required"


def test_forged_id_token_hint_is_invalid_request(browser, confidential):
    client, secret = confidential
    location, _ = sign_in(browser, relying_party(client.client_id, secret), id_token_hint="a.b.c")
    assert query_of(location)["error"] == "invalid_request"


# --- refresh (oidcc-refresh-token) ------------------------------------------------------------------------------
def test_offline_access_refresh_rotates_and_detects_reuse(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret, scope="openid email offline_access")
    token, _ = code_flow(browser, rp)
    first_refresh = token["refresh_token"]
    refreshed = rp.refresh_token(BASE + TOKEN, refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    claims = verify_id_token(refreshed["id_token"], client_id=client.client_id)
    assert claims["sub"] == verify_id_token(token["id_token"], client_id=client.client_id)["sub"]
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {refreshed['access_token']}").status_code == 200


def test_no_refresh_token_without_offline_access(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    assert "refresh_token" not in token


def test_keys_published_before_the_first_id_token_verify_it(browser, confidential):
    client, secret = confidential
    published_keys()
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    verify_id_token(token["id_token"], client_id=client.client_id)


def test_max_age_zero_asks_once_then_signs_in(browser, confidential):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp, max_age="0")
    answer = _reauthenticate(browser, browser.get(started["path"]))
    assert answer.status_code == 302 and answer["Location"].startswith(REDIRECT)
    token = finish(rp, answer["Location"], started["verifier"])
    assert time.time() - verify_id_token(token["id_token"], client_id=client.client_id)["auth_time"] < 30


def test_userinfo_refuses_tokens_of_a_deactivated_client(browser, confidential):
    client, secret = confidential
    token, _ = code_flow(browser, relying_party(client.client_id, secret))
    client.is_active = False
    client.save()
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401


# --- oidcc-ensure-post-request-succeeds; request objects (oidcc-unsigned-request-object-*) -----------------------
def test_authorization_request_by_post(browser, confidential):
    from urllib.parse import parse_qsl, urlsplit

    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    params = dict(parse_qsl(urlsplit(started["path"]).query))
    response = browser.post(AUTHORIZE, params)
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    token = finish(rp, response["Location"], started["verifier"])
    assert verify_id_token(token["id_token"], client_id=client.client_id, nonce=started["nonce"])


def test_authorization_request_by_post_not_signed_in_comes_back_as_get(confidential, user):
    from urllib.parse import parse_qs, parse_qsl, urlsplit

    from tests.support.auth import page_login

    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    browser = Client()
    first = browser.post(AUTHORIZE, dict(parse_qsl(urlsplit(started["path"]).query)))
    nxt = parse_qs(urlsplit(first["Location"]).query)["next"][0]
    assert parse_qs(urlsplit(nxt).query)["client_id"] == [client.client_id]
    page_login(browser, user.email, next=nxt)
    token = finish(rp, browser.get(nxt)["Location"], started["verifier"])
    assert "id_token" in token


@pytest.mark.parametrize(("param", "error"), [("request", "request_not_supported"),
                                              ("request_uri", "request_uri_not_supported"),
                                              ("registration", "registration_not_supported")])
def test_unsupported_request_parameters_are_refused_at_the_client(browser, confidential, param, error):
    client, secret = confidential
    location, started = sign_in(browser, relying_party(client.client_id, secret), **{param: "eyJ.x.y"})
    assert query_of(location)["error"] == error and query_of(location)["state"] == started["state"]

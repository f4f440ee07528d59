"""Plain Django: JwtMiddleware, require_principal, MANA_AUTH settings and the development bypass."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.test import RequestFactory

from mana_auth.django import JwtMiddleware, require_principal
from tests.support.mana_auth import Key, make_token

rf = RequestFactory()


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def echo(request):
    principal = request.principal
    return JsonResponse({"user": principal.user_id if principal else None})


def body(response):
    return json.loads(response.content)


def test_middleware_sets_principal(mana_settings, key):
    token = make_token(key, sub="user-7")
    response = JwtMiddleware(echo)(rf.get("/", **bearer(token)))
    assert response.status_code == 200 and body(response) == {"user": "user-7"}


def test_middleware_without_token_sets_none(mana_settings):
    assert body(JwtMiddleware(echo)(rf.get("/"))) == {"user": None}
    # Another scheme is not ours to judge.
    assert body(JwtMiddleware(echo)(rf.get("/", HTTP_AUTHORIZATION="Basic dXNlcjpwdw=="))) == {"user": None}


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer", "Bearer a b", "bearer x.y.z"])
def test_middleware_refuses_invalid_token_with_401_envelope(mana_settings, key, header):
    called = []
    response = JwtMiddleware(lambda r: called.append(r))(rf.get("/", HTTP_AUTHORIZATION=header))
    assert response.status_code == 401
    assert body(response)["error"]["code"] == "invalid_token"
    assert set(body(response)["error"]) == {"code", "message"}
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert called == []


def test_middleware_refuses_forged_and_expired_tokens(mana_settings, key):
    middleware = JwtMiddleware(echo)
    for token in (make_token(Key(kid=key.kid)), make_token(key, exp=1, iat=0), make_token(key, aud="other")):
        assert middleware(rf.get("/", **bearer(token))).status_code == 401


def test_provider_unreachable_answers_503(mana_settings, server, key):
    server.stop()
    response = JwtMiddleware(echo)(rf.get("/", **bearer(make_token(key))))
    assert response.status_code == 503 and body(response)["error"]["code"] == "auth_unavailable"


def test_require_principal(mana_settings, key):
    view = require_principal(echo)
    assert view(rf.get("/")).status_code == 401
    assert body(view(rf.get("/")))["error"]["code"] == "not_authenticated"
    assert view(rf.get("/", **bearer("garbage"))).status_code == 401
    assert view(rf.get("/", **bearer(make_token(key)))).status_code == 200


def test_require_principal_role(mana_settings, key):
    admin_only = require_principal(role="admin")(echo)
    response = admin_only(rf.get("/", **bearer(make_token(key, role="user"))))
    assert response.status_code == 403 and body(response)["error"]["code"] == "permission_denied"
    assert admin_only(rf.get("/", **bearer(make_token(key, role="admin")))).status_code == 200
    either = require_principal(role=("admin", "service"))(echo)
    assert either(rf.get("/", **bearer(make_token(key, role="service")))).status_code == 200


def test_require_principal_org_role(mana_settings, key):
    view = require_principal(org_role="admin")(echo)
    assert view(rf.get("/", **bearer(make_token(key, org="o1", orgRole="owner")))).status_code == 200
    assert view(rf.get("/", **bearer(make_token(key, org="o1", orgRole="admin")))).status_code == 200
    assert view(rf.get("/", **bearer(make_token(key, org="o1", orgRole="member")))).status_code == 403
    assert view(rf.get("/", **bearer(make_token(key)))).status_code == 403


def test_require_principal_after_middleware_uses_its_principal(mana_settings, key):
    request = rf.get("/", **bearer("not-even-a-token"))
    request.principal = None  # what the middleware decided (here: anonymous)
    assert require_principal(echo)(request).status_code == 401


def test_require_principal_check_revocation(mana_settings, server, key):
    seen = []

    def introspect(handler, payload):
        seen.append(handler.headers["Authorization"])
        return 200, {}, {"active": False}

    server.route("POST", "/api/v1/auth/introspect")(introspect)
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "INTROSPECT_URL": server.url + "/api/v1/auth/introspect",
                               "SERVICE_TOKEN": "svc"}
    token = make_token(key)
    assert require_principal(echo)(rf.get("/", **bearer(token))).status_code == 200  # local check only
    response = require_principal(check_revocation=True)(echo)(rf.get("/", **bearer(token)))
    assert response.status_code == 401 and body(response)["error"]["code"] == "invalid_token"
    assert seen == ["Bearer svc"]


def test_check_revocation_for_every_request(mana_settings, server, key):
    server.route("POST", "/api/v1/auth/introspect")(lambda h, b: (200, {}, {"active": False}))
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "INTROSPECT_URL": server.url + "/api/v1/auth/introspect",
                               "SERVICE_TOKEN": "svc", "CHECK_REVOCATION": True}
    assert JwtMiddleware(echo)(rf.get("/", **bearer(make_token(key)))).status_code == 401


# --- settings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("config,match", [
    (None, "define settings.MANA_AUTH"),
    ({"JWKS_URL": "http://x/jwks", "ISSUER": "i"}, "AUDIENCE"),
    ({"JWKS_URL": "http://x/jwks", "ISSUER": "i", "AUDIENCE": "a", "JWKS_URI": "typo"}, "unknown setting"),
    ({"JWKS_URL": "ftp://x/jwks", "ISSUER": "i", "AUDIENCE": "a"}, "jwks_url"),
    ({"JWKS_URL": "http://x/jwks", "ISSUER": "i", "AUDIENCE": "a", "INTROSPECT_URL": "http://x/introspect"},
     "SERVICE_TOKEN"),
    ({"JWKS_URL": "http://x/jwks", "ISSUER": "i", "AUDIENCE": "a", "CHECK_REVOCATION": True}, "INTROSPECT_URL"),
])
def test_bad_settings_fail_at_startup(settings, monkeypatch, config, match):
    monkeypatch.delenv("MANA_AUTH_DEV_BYPASS", raising=False)
    if config is None:
        del settings.MANA_AUTH
    else:
        settings.MANA_AUTH = config
    with pytest.raises(ImproperlyConfigured, match=match):
        JwtMiddleware(echo)


def test_settings_are_read_on_access(mana_settings, key):
    middleware = JwtMiddleware(echo)
    token = make_token(key, aud="billing")
    assert middleware(rf.get("/", **bearer(token))).status_code == 401
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "AUDIENCE": "billing"}
    assert middleware(rf.get("/", **bearer(token))).status_code == 200


# --- development bypass -------------------------------------------------------------------------------

def test_dev_bypass_needs_debug_and_the_variable(mana_settings, monkeypatch, key):
    mana_settings.DEBUG = True
    assert body(JwtMiddleware(echo)(rf.get("/"))) == {"user": None}  # DEBUG alone: no bypass
    monkeypatch.setenv("MANA_AUTH_DEV_BYPASS", "1")
    middleware = JwtMiddleware(echo)
    assert body(middleware(rf.get("/"))) == {"user": "dev-user"}
    # Tokens are still verified for real while the bypass is on.
    assert middleware(rf.get("/", **bearer("forged"))).status_code == 401
    assert body(middleware(rf.get("/", **bearer(make_token(key, sub="real"))))) == {"user": "real"}


def test_dev_bypass_claims_come_from_settings(mana_settings, monkeypatch):
    mana_settings.DEBUG = True
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "DEV_BYPASS": {"sub": "alice", "role": "admin"}}
    monkeypatch.setenv("MANA_AUTH_DEV_BYPASS", "true")
    view = require_principal(role="admin")(echo)
    assert body(JwtMiddleware(view)(rf.get("/"))) == {"user": "alice"}


def test_dev_bypass_refuses_to_start_without_debug(mana_settings, monkeypatch):
    mana_settings.DEBUG = False
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "DEV_BYPASS": {"sub": "alice"}}
    assert body(JwtMiddleware(echo)(rf.get("/"))) == {"user": None}  # the setting alone does nothing
    monkeypatch.setenv("MANA_AUTH_DEV_BYPASS", "1")
    with pytest.raises(ImproperlyConfigured, match="DEBUG is off"):
        JwtMiddleware(echo)

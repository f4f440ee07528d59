"""DRF: JwtAuthentication, permission classes, principal(request) and the error envelope."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from mana_auth import Principal
from mana_auth.drf import (
    HasOrgRole,
    HasRole,
    IsAuthenticated,
    IsSessionActive,
    JwtAuthentication,
    exception_handler,
    principal,
)
from tests.support.mana_auth import Key, make_token

factory = APIRequestFactory()


def view_with(*permissions, envelope=True):
    class View(APIView):
        authentication_classes = [JwtAuthentication]
        permission_classes = list(permissions)

        def get(self, request, **kwargs):
            found = principal(request)
            return Response({"user": found.user_id if found else None, "same": request.user is request.auth})

        def get_exception_handler(self):
            return exception_handler if envelope else super().get_exception_handler()

    return View.as_view()


def call(view, token=None, **kwargs):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = view(factory.get("/", **headers), **kwargs)
    response.render()
    return response


def test_valid_token_authenticates(mana_settings, key):
    response = call(view_with(IsAuthenticated), make_token(key, sub="u-1"))
    assert response.status_code == 200
    assert response.data == {"user": "u-1", "same": True}


def test_request_auth_is_the_principal(mana_settings, key):
    class View(APIView):
        authentication_classes = [JwtAuthentication]

        def get(self, request):
            assert isinstance(request.auth, Principal) and request.user.is_authenticated
            return Response({"email": request.auth.email})

    assert call(View.as_view(), make_token(key)).data == {"email": "user1@example.com"}


def test_missing_token_is_401_not_403(mana_settings):
    response = call(view_with(IsAuthenticated))
    assert response.status_code == 401
    assert response.data == {"error": {"code": "not_authenticated",
                                       "message": "Authentication credentials were not provided."}}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("make", [
    lambda key: "garbage",
    lambda key: make_token(Key(kid=key.kid)),
    lambda key: make_token(key, exp=1, iat=0),
    lambda key: make_token(key, iss="someone-else"),
])
def test_invalid_tokens_are_401_invalid_token(mana_settings, key, make):
    response = call(view_with(), make(key))
    assert response.status_code == 401
    assert response.data["error"]["code"] == "invalid_token"


def test_provider_envelope_handler_also_says_invalid_token(mana_settings):
    response = call(view_with(envelope=False), "garbage")  # the project's own EXCEPTION_HANDLER
    assert response.status_code == 401 and response.data["error"]["code"] == "invalid_token"


def test_jwks_unreachable_is_503(mana_settings, server, key):
    server.stop()
    response = call(view_with(), make_token(key))
    assert response.status_code == 503 and response.data["error"]["code"] == "auth_unavailable"


def test_has_role(mana_settings, key):
    view = view_with(HasRole("admin"))
    assert call(view, make_token(key, role="admin")).status_code == 200
    response = call(view, make_token(key, role="user"))
    assert response.status_code == 403 and response.data["error"]["code"] == "permission_denied"
    assert call(view).status_code == 401
    assert HasRole("admin") is HasRole("admin")
    assert call(view_with(HasRole("admin", "service")), make_token(key, role="service")).status_code == 200


def test_permissions_compose(mana_settings, key):
    view = view_with(HasRole("admin") | HasOrgRole("owner"))
    assert call(view, make_token(key, role="user", org="o", orgRole="owner")).status_code == 200
    assert call(view, make_token(key, role="user", org="o", orgRole="member")).status_code == 403


def test_has_org_role_follows_the_hierarchy(mana_settings, key):
    view = view_with(HasOrgRole("admin"))
    assert call(view, make_token(key, org="o1", orgRole="owner")).status_code == 200
    assert call(view, make_token(key, org="o1", orgRole="admin")).status_code == 200
    assert call(view, make_token(key, org="o1", orgRole="member")).status_code == 403
    assert call(view, make_token(key)).status_code == 403  # no active organization
    assert call(view_with(HasOrgRole("owner")), make_token(key, org="o1", orgRole="admin")).status_code == 403


def test_has_org_role_for_the_organization_in_the_url(mana_settings, key):
    view = view_with(HasOrgRole("member", org_kwarg="org_id"))
    token = make_token(key, org="o1", orgRole="member")
    assert call(view, token, org_id="o1").status_code == 200
    assert call(view, token, org_id="o2").status_code == 403


def test_is_session_active_asks_the_provider(mana_settings, server, key):
    active = {"value": True}
    server.route("POST", "/api/v1/auth/introspect")(lambda h, b: (200, {}, {"active": active["value"]}))
    mana_settings.MANA_AUTH = {**mana_settings.MANA_AUTH, "INTROSPECT_URL": server.url + "/api/v1/auth/introspect",
                               "SERVICE_TOKEN": "svc", "INTROSPECTION_CACHE_SECONDS": 0}
    view = view_with(IsAuthenticated, IsSessionActive)
    token = make_token(key)
    assert call(view, token).status_code == 200
    active["value"] = False
    response = call(view, token)
    assert response.status_code == 401 and response.data["error"]["code"] == "invalid_token"
    assert call(view_with(IsAuthenticated), token).status_code == 200  # ordinary views stay local


def test_dev_bypass_in_drf(mana_settings, monkeypatch):
    monkeypatch.setenv("MANA_AUTH_DEV_BYPASS", "1")
    mana_settings.DEBUG = True
    assert call(view_with(IsAuthenticated)).data == {"user": "dev-user", "same": True}
    mana_settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured):
        JwtAuthentication()


def test_validation_errors_use_the_envelope(mana_settings, key):
    from rest_framework import serializers

    class Input(serializers.Serializer):
        name = serializers.CharField()

    class View(APIView):
        authentication_classes = [JwtAuthentication]

        def post(self, request):
            Input(data=request.data).is_valid(raise_exception=True)
            return Response({})

        def get_exception_handler(self):
            return exception_handler

    request = factory.post("/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {make_token(key)}")
    response = View.as_view()(request)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "validation_error"
    assert response.data["error"]["fields"] == {"name": ["This field is required."]}

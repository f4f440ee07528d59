"""POST service-token (client credentials) and POST introspect (RFC 7662), on the wire."""

import json
import re
import time
import uuid
from unittest import mock

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.services import keys
from identity.services.tokens import access_token_issue
from service_accounts import services
from service_accounts.models import ServiceClient
from tests.support.auth import introspect, login, obtain
from tests.support.paths import INTROSPECT, SERVICE_TOKEN
from tests.support.tokens import parts


def no_store(response):
    return "no-store" in response.get("Cache-Control", "")


# --- service-token -------------------------------------------------------------------------------

def test_client_credentials_give_a_service_token(api, account):
    response = obtain(api, account.client.client_id, account.client_secret)
    assert response.status_code == 200
    assert no_store(response)
    body = response.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 900
    header, claims = parts(body["accessToken"])
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    assert claims["role"] == "service" and claims["sub"] == str(account.client.user_id)
    assert claims["clientId"] == account.client.client_id and claims["secretVersion"] == 1
    assert "sid" not in claims and "email" not in claims
    assert claims["exp"] - claims["iat"] == 900
    client = ServiceClient.objects.get(pk=account.client.pk)
    assert client.last_used_at is not None
    event = AuditEvent.objects.get(event=EventType.SERVICE_TOKEN_ISSUED)
    assert event.actor_id == account.client.user_id and event.success
    assert event.context["client_id"] == account.client.client_id


@pytest.mark.parametrize("case", ["unknown id", "wrong secret", "inactive"])
def test_bad_credentials_are_one_answer(api, account, case):
    client_id, secret = account.client.client_id, account.client_secret
    if case == "unknown id":
        client_id = "svc_" + "0" * 24
    elif case == "wrong secret":
        secret = secret[:-2] + ("AA" if not secret.endswith("AA") else "BB")
    else:
        services.service_account_set_active(client=account.client, is_active=False)
    response = obtain(api, client_id, secret)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "invalid_client", "message": services.InvalidClient.default_detail}}
    assert "access" not in response.content.decode().lower()
    event = AuditEvent.objects.get(event=EventType.SERVICE_TOKEN_FAILED)
    assert not event.success and event.context["client_id"] == client_id
    assert event.context["reason"] == {"unknown id": "unknown_client", "wrong secret": "bad_secret",
                                       "inactive": "inactive"}[case]
    assert secret not in json.dumps(event.context)
    assert not AuditEvent.objects.filter(event=EventType.SERVICE_TOKEN_ISSUED).exists()


def _shape(sql: str) -> tuple[str, str]:
    table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql)
    return sql.split()[0], table.group(1) if table else ""


def test_unknown_id_and_wrong_secret_do_the_same_work(api, account):
    """Comparable timing by construction: the same queries (one SELECT of the client, then the audit
    row), one SHA-256 and one constant-time comparison either way (wall-clock timing is too noisy on a
    shared machine to assert; measured here: about 5.0 vs 5.2 ms)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    calls = {}
    for case, client_id in (("unknown", "svc_" + "f" * 24), ("wrong", account.client.client_id)):
        with mock.patch("service_accounts.services.hmac.compare_digest", wraps=services.hmac.compare_digest) as cmp, \
                mock.patch("service_accounts.services.hash_token", wraps=services.hash_token) as hashed, \
                CaptureQueriesContext(connection) as queries:
            assert obtain(api, client_id, "mcs_" + "x" * 43).status_code == 401
        # Each query's verb and first table: the same list for both (values differ, shapes may not).
        shape = [_shape(q["sql"]) for q in queries.captured_queries]
        calls[case] = (cmp.call_count, hashed.call_count, [len(a) for a in cmp.call_args.args], shape)
    assert calls["unknown"] == calls["wrong"]
    assert calls["unknown"][:3] == (1, 1, [64, 64])
    assert calls["unknown"][3][0] == ("SELECT", "service_accounts_serviceclient")
    assert ("INSERT", "audit_auditevent") in calls["unknown"][3]


BAD_BODIES = [
    ({}, {"clientId", "clientSecret"}),
    ({"clientId": "svc_x"}, {"clientSecret"}),
    ({"clientId": 5, "clientSecret": "s"}, {"clientId"}),
    ({"clientId": "svc_x", "clientSecret": ["s"]}, {"clientSecret"}),
    ({"clientId": None, "clientSecret": None}, {"clientId", "clientSecret"}),
    ({"clientId": "", "clientSecret": ""}, {"clientId", "clientSecret"}),
    ({"clientId": "x" * 65, "clientSecret": "s"}, {"clientId"}),
    ({"clientId": "svc_x", "clientSecret": "s" * 513}, {"clientSecret"}),
    ({"clientId": "svc_\x00", "clientSecret": "s"}, {"clientId"}),
    ({"clientId": "svc_\ud800", "clientSecret": "s"}, {"clientId"}),
]


@pytest.mark.parametrize("body,fields", BAD_BODIES)
def test_bad_input_is_a_400_envelope_and_writes_nothing(api, account, body, fields):
    response = api.generic("POST", SERVICE_TOKEN, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and set(error["fields"]) == fields
    assert not AuditEvent.objects.filter(event__in=[EventType.SERVICE_TOKEN_FAILED, EventType.SERVICE_TOKEN_ISSUED]).exists()


@pytest.mark.parametrize("raw,content_type,status", [
    (b"{", "application/json", 400), (b"[]", "application/json", 400), (b'"x"', "application/json", 400),
    (b"clientId=a&clientSecret=b", "application/x-www-form-urlencoded", 415),
    (b"\xff\xfe", "application/json", 400),
])
@pytest.mark.parametrize("path", [SERVICE_TOKEN, INTROSPECT])
def test_malformed_bodies(account, service_token, raw, content_type, status, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token}")
    response = client.generic("POST", path, raw, content_type=content_type)
    assert response.status_code == status
    assert set(response.json()["error"]) >= {"code", "message"}


def test_get_is_405(api):
    assert api.get(SERVICE_TOKEN).status_code == 405


# --- introspect -------------------------------------------------------------------------------------

def test_introspect_a_live_user_token(service_api, user, api):
    tokens = login(api, user.email)
    response = introspect(service_api, tokens["accessToken"])
    assert response.status_code == 200 and no_store(response)
    body = response.json()
    _, claims = parts(tokens["accessToken"])
    assert body == {"active": True, **claims}
    assert body["sub"] == str(user.pk) and body["sid"] == tokens["session"]["id"] and body["role"] == "user"


def test_introspect_after_logout_is_inactive(service_api, user, api):
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert introspect(service_api, tokens["accessToken"]).json() == {"active": False}


def test_introspect_a_disabled_users_token_is_inactive(service_api, user, api):
    tokens = login(api, user.email)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert introspect(service_api, tokens["accessToken"]).json() == {"active": False}


def test_introspect_refuses_expired_forged_and_foreign_tokens(service_api, user, api, settings):
    tokens = login(api, user.email)
    sid = tokens["session"]["id"]
    expired = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 3600).token
    settings.AUTH_AUDIENCE = "another-audience"
    foreign = access_token_issue(user=user, session_id=sid).token
    settings.AUTH_AUDIENCE = "manacore"
    signer = keys.signing_key_current()
    _, claims = parts(tokens["accessToken"])
    forged = jwt.encode({"alg": "EdDSA", "kid": signer.kid, "typ": "at+jwt"}, claims,
                        OKPKey.generate_key("Ed25519"), algorithms=["EdDSA"])
    for token in (expired, foreign, forged, "garbage", "a.b.c", tokens["refreshToken"]):
        response = introspect(service_api, token)
        assert response.status_code == 200 and response.json() == {"active": False}, token


def test_introspect_a_service_token(service_api, service_token, account):
    body = introspect(service_api, service_token).json()
    assert body["active"] is True and body["role"] == "service" and body["clientId"] == account.client.client_id


def test_a_sessionless_token_that_is_not_a_service_token_is_refused(service_api, user, settings):
    """Only role service may come without sid: a user token without sid (even signed with our key)
    is neither accepted as a bearer nor active in introspection."""
    now = int(time.time())
    claims = {"iss": "manacore", "aud": "manacore", "sub": str(user.pk), "email": user.email, "role": "user",
              "iat": now, "exp": now + 900, "jti": uuid.uuid4().hex}
    signer = keys.signing_key_current()
    token = jwt.encode({"alg": "EdDSA", "kid": signer.kid, "typ": "at+jwt"}, claims, signer.key, algorithms=["EdDSA"])
    assert introspect(service_api, token).json() == {"active": False}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.get("/api/v1/auth/me").status_code == 401
    # A service-looking token for a client that does not exist is refused as a bearer as well.
    claims.update(role="service", clientId="svc_" + "0" * 24, secretVersion=1)
    del claims["email"]
    fake = jwt.encode({"alg": "EdDSA", "kid": signer.kid, "typ": "at+jwt"}, claims, signer.key, algorithms=["EdDSA"])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {fake}")
    response = introspect(other, "x")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_only_service_accounts_may_introspect(authed, tokens, api):
    response = introspect(authed, tokens["accessToken"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    response = introspect(api, tokens["accessToken"])
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_a_password_user_with_the_service_role_may_not_introspect(api, tokens):
    """Role service set by hand on an ordinary account gives a session token, not a service token."""
    from accounts.models import User

    user = User.objects.get(pk=tokens["user"]["id"])
    user.role = "service"
    user.save(update_fields=["role"])
    session_token = login(api, user.email)["accessToken"]
    assert parts(session_token)[1]["role"] == "service"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_token}")
    response = introspect(client, session_token)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("method,path", [("get", "/api/v1/auth/me"), ("post", "/api/v1/auth/logout"),
                                         ("get", "/api/v1/auth/sessions/active"),
                                         ("post", "/api/v1/auth/sessions/revoke-others")])
def test_service_tokens_are_refused_where_a_user_session_is_assumed(service_api, method, path):
    response = getattr(service_api, method)(path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("body,fields", [({}, {"token"}), ({"token": 5}, {"token"}), ({"token": ""}, {"token"}),
                                         ({"token": "x" * 8193}, {"token"}), ({"token": None}, {"token"})])
def test_introspect_bad_input(service_api, body, fields):
    response = service_api.post(INTROSPECT, body, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == fields


def test_both_endpoints_are_in_the_openapi_document(api):
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()
    token_op = schema["paths"]["/api/v1/auth/service-token"]["post"]
    assert set(token_op["responses"]) >= {"200", "400", "401"}
    introspect_op = schema["paths"]["/api/v1/auth/introspect"]["post"]
    assert set(introspect_op["responses"]) >= {"200", "400", "401", "403"}
    request_ref = token_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][request_ref]["properties"]) == {"clientId", "clientSecret"}


def test_introspection_has_its_own_rate_limit_per_service_account(service_api, tokens, settings):
    """Not the general 100/min ``api`` scope (a busy resource server would get 429s), but the
    ``introspect`` scope, counted per service account."""
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "2/m",
                                                             "introspect": "4/m"}}
    statuses = [introspect(service_api, tokens["accessToken"]).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert introspect(service_api, tokens["accessToken"])["Retry-After"]

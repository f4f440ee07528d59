"""The OpenAPI document at /api/v1/schema/: complete, camelCase, with the error envelope and bearer auth."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import Resolver404, resolve

SCHEMA = "/api/v1/schema/"
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")
ID = str(uuid.uuid4())

# Every (method, path) of CONTRACT.md. Those that config/urls.py serves must be in the document.
CONTRACT = [
    ("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/register-b2b"),
    ("post", "/api/v1/auth/verify-email"), ("post", "/api/v1/auth/resend-verification"),
    ("post", "/api/v1/auth/login"), ("post", "/api/v1/auth/refresh"), ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"), ("patch", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/forgot-password"), ("post", "/api/v1/auth/reset-password"),
    ("post", "/api/v1/auth/change-password"), ("post", "/api/v1/auth/reauthenticate"),
    ("get", "/api/v1/auth/session"), ("get", "/api/v1/auth/token"),
    ("get", "/api/v1/auth/sessions/active"), ("delete", "/api/v1/auth/sessions/{id}"),
    ("post", "/api/v1/auth/sessions/revoke-others"),
    ("get", "/api/v1/auth/jwks"), ("get", "/.well-known/jwks.json"),
    ("post", "/api/v1/auth/switch-organization"), ("post", "/api/v1/auth/service-token"),
    ("post", "/api/v1/auth/introspect"),
    ("get", "/api/v1/orgs/"), ("post", "/api/v1/orgs/"),
    ("get", "/api/v1/orgs/{orgId}"), ("patch", "/api/v1/orgs/{orgId}"), ("delete", "/api/v1/orgs/{orgId}"),
    ("get", "/api/v1/orgs/{orgId}/members"),
    ("patch", "/api/v1/orgs/{orgId}/members/{userId}"), ("delete", "/api/v1/orgs/{orgId}/members/{userId}"),
    ("get", "/api/v1/orgs/{orgId}/invitations"), ("post", "/api/v1/orgs/{orgId}/invitations"),
    ("delete", "/api/v1/orgs/{orgId}/invitations/{id}"), ("post", "/api/v1/orgs/invitations/accept"),
]
# Served, but must not be in the document.
NOT_DOCUMENTED = {SCHEMA}


def _served(path: str) -> bool:
    try:
        resolve(re.sub(r"\{[^}]+\}", ID, path))
    except Resolver404:
        return False
    return True


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
def schema(client):
    response = client.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.fixture
def client():
    return Client()


def _resolve_ref(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _property_names(schema, node, seen=None):
    """Every property name reachable from a schema node (through $ref, arrays and allOf/oneOf)."""
    seen = seen if seen is not None else set()
    if "$ref" in node:
        name = node["$ref"]
        if name in seen:
            return
        seen.add(name)
        yield from _property_names(schema, _resolve_ref(schema, node), seen)
        return
    for key, sub in node.get("properties", {}).items():
        yield key
        yield from _property_names(schema, sub, seen)
    if "items" in node:
        yield from _property_names(schema, node["items"], seen)
    for combinator in ("allOf", "oneOf", "anyOf"):
        for sub in node.get(combinator, []):
            yield from _property_names(schema, sub, seen)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, operation


def test_schema_is_served_as_json_both_ways(client):
    by_query = client.get(SCHEMA, {"format": "json"})
    by_accept = client.get(SCHEMA, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    for response in (by_query, by_accept):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
        assert json.loads(response.content)["openapi"].startswith("3.")
    default = client.get(SCHEMA)
    assert default.status_code == 200 and default.content.startswith(b"openapi: 3.")


def test_schema_needs_no_credentials(client):
    response = client.get(SCHEMA, {"format": "json"}, HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 200


def test_every_served_contract_endpoint_is_documented(schema):
    documented = {(method, _shape(path)) for method, path, _ in _operations(schema)}
    served = [(method, path) for method, path in CONTRACT if _served(path)]
    assert len(served) >= 16  # at least the core auth endpoints and both JWKS paths
    missing = [(m, p) for m, p in served if (m, _shape(p)) not in documented]
    assert not missing, missing


def test_every_documented_path_is_served_and_the_schema_itself_is_not_listed(schema):
    for path in schema["paths"]:
        assert _served(path), path
    assert not NOT_DOCUMENTED & set(schema["paths"])


def test_error_component_is_the_envelope(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = _resolve_ref(schema, error["properties"]["error"])
    assert set(detail["properties"]) == {"code", "message", "fields"}
    assert sorted(detail["required"]) == ["code", "message"]
    assert detail["properties"]["code"]["type"] == "string"
    assert detail["properties"]["message"]["type"] == "string"
    fields = detail["properties"]["fields"]
    assert fields["type"] == "object"
    assert fields["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_every_api_operation_documents_its_errors_with_the_envelope(schema):
    for method, path, operation in _operations(schema):
        if "jwks" in path:
            continue
        errors = {status: r for status, r in operation["responses"].items() if status.startswith("4")}
        assert {"400", "401", "413", "415"} <= set(errors), (method, path, sorted(errors))
        for status, response in errors.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (method, path, status)


def test_bearer_scheme_and_which_operations_need_it(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA, typ at+jwt)"}
    public = {"register", "verify-email", "resend-verification", "login", "refresh", "forgot-password",
              "reset-password", "register-b2b", "jwks", "jwks.json", "service-token",
              "unlock", "not-me", "confirm-email-change",  # the links mailed by issue 4's defenses
              "revert-email-change",  # issue 14: the way back mailed to the old address
              "verify"}  # mfa/verify: the second step of a login (its mfaToken, no bearer yet)
    # Passkeys (issue 12): "options" and "verify" name public and signed-in operations alike.
    public_paths = {"/api/v1/auth/passkeys/login/options", "/api/v1/auth/passkeys/login/verify",
                    "/api/v1/auth/mfa/passkey/options"}
    signed_in_paths = {"/api/v1/auth/passkeys/register/options", "/api/v1/auth/passkeys/register/verify"}
    for method, path, operation in _operations(schema):
        if not path.startswith(("/api/v1/auth/", "/.well-known/")):
            continue
        needs_bearer = {"bearerAuth": []} in operation.get("security", [])
        name = path.rsplit("/", 1)[-1]
        if name == "token":  # GET token: the browser's session cookie only (issue 3, docs/browser.md)
            assert operation["security"] == [{"cookieAuth": []}], (method, path, operation.get("security"))
            continue
        expected = (path not in public_paths) and (path in signed_in_paths or name not in public)
        assert needs_bearer == expected, (method, path, operation.get("security"))


def test_request_and_response_bodies_are_camel_case(schema):
    seen_request_props = set()
    for method, path, operation in _operations(schema):
        bodies = []
        if "requestBody" in operation:
            content = operation["requestBody"]["content"]
            assert list(content) == ["application/json"], (method, path, list(content))  # JSON only
            bodies.append(("request", content["application/json"]["schema"]))
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                bodies.append((status, media["schema"]))
        for where, body in bodies:
            for name in _property_names(schema, body):
                assert CAMEL.fullmatch(name), (method, path, where, name)
                if where == "request":
                    seen_request_props.add(name)
    # The multi-word request fields of the contract really are there, in camelCase.
    multi_word = {"rememberMe", "deviceId", "deviceName", "refreshToken", "currentPassword", "newPassword"}
    assert multi_word <= seen_request_props


def test_request_bodies_match_what_the_views_require(schema):
    """Required fields in the document are the ones the serializers require (PATCH me included)."""
    def required(method, path):
        body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        return sorted(_resolve_ref(schema, body).get("required", []))

    assert required("post", "/api/v1/auth/login") == ["email", "password"]
    assert required("patch", "/api/v1/auth/me") == ["name"]
    assert required("post", "/api/v1/auth/change-password") == ["currentPassword", "newPassword"]
    assert required("post", "/api/v1/auth/reset-password") == ["password", "token"]


def test_response_shapes_name_every_contract_key(schema):
    def props(name):
        return set(schema["components"]["schemas"][name]["properties"])

    def required(name):
        return set(schema["components"]["schemas"][name]["required"])

    user = {"id", "email", "name", "role", "emailVerified", "createdAt"}
    session = {"id", "deviceId", "deviceName", "ipAddress", "userAgent", "createdAt", "lastActivityAt",
               "expiresAt", "rememberMe", "amr", "current"}
    pair = {"accessToken", "refreshToken", "tokenType", "expiresIn", "refreshExpiresAt", "user", "session"}
    assert props("UserOutput") == required("UserOutput") == user
    assert props("SessionOutput") == required("SessionOutput") == session
    assert props("TokenPairOutput") == required("TokenPairOutput") == pair
    assert props("ReauthenticateOutput") == {"reauthenticatedAt", "freshUntil"}


def test_spectacular_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert target.read_text().startswith("openapi: 3.")

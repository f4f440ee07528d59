"""Bad input on every organization endpoint: a 4xx in the one error envelope, never a 5xx, and
nothing written. Bodies go through Django's test client as raw bytes, so malformed bytes arrive as sent."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from orgs.models import Invitation, Membership, Organization, PendingOrganization
from sessions_app.models import DeviceSession
from tests.support.errors import error_of
from tests.support.paths import ORGS, SWITCH

# (name, method, path, {field: kind}) with kinds "str", "email", "role", "uuid|null", "policy".
BODY_ENDPOINTS = [
    ("create", "POST", "", {"name": "str"}),
    ("rename", "PATCH", "{org}", {"name": "str"}),
    ("policy", "PATCH", "{org}", {"sessionPolicy": "policy"}),
    ("member-role", "PATCH", "{org}/members/{member}", {"role": "role"}),
    ("invite", "POST", "{org}/invitations", {"email": "email", "role": "role"}),
    ("accept", "POST", "invitations/accept", {"token": "str"}),
    ("switch", "POST", SWITCH, {"organizationId": "uuid|null"}),
    ("register-b2b", "POST", "/api/v1/auth/register-b2b", {"organizationName": "str"}),
]
BAD_VALUES = {
    "str": [123, 1.5, ["a"], {"a": "b"}, True, "nul\x00byte"],
    "email": [123, "not-an-email", ["a@example.com"], "a@b" * 100],
    "role": [123, "superuser", "Owner", ["owner"], None],
    "uuid|null": [123, "not-a-uuid", ["x"], {"id": 1}, True, "1" * 1000],
    "policy": ["900", 900, [900], {"idleTimeoutSeconds": "900"}, {"idleTimeoutSeconds": 1.5},
               {"idleTimeoutSeconds": False}, {"maxSessionLifetimeSeconds": -1}],
}
MALFORMED = [b"{", b'{"name": }', b"[]", b"null", b'"text"', b"\xff\xfe", b"[" * 5000, b'{"name": NaN}']


def state() -> dict:
    return {
        "orgs": sorted(Organization.objects.values_list("pk", "name", "slug", "idle_timeout_seconds",
                                                        "max_session_lifetime_seconds")),
        "members": sorted(Membership.objects.values_list("user_id", "organization_id", "role")),
        "invitations": sorted(Invitation.objects.values_list("pk", "accepted_at", "revoked_at")),
        "pending": PendingOrganization.objects.count(),
        "sessions": sorted(DeviceSession.objects.values_list("pk", "refresh_secret_hash", "active_organization_id")),
        "org_audit": AuditEvent.objects.filter(organization_id__isnull=False).count(),
    }


def url(world, path):
    if path.startswith("/"):
        return path
    return ORGS + path.format(org=world.org.pk, member=world.uid("member"))


@pytest.fixture
def owner(world):
    client = Client()
    pair = world.client("owner").pair
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {pair.access_token}"
    return client


def cases():
    for name, method, path, fields in BODY_ENDPOINTS:
        for field, kind in fields.items():
            for value in BAD_VALUES[kind]:
                yield pytest.param(method, path, field, value, id=f"{name}-{field}-{json.dumps(value)[:20]}")


@pytest.mark.parametrize("method,path,field,value", list(cases()))
def test_wrong_types_and_values(world, owner, method, path, field, value):
    before = state()
    body = {"email": "x@example.com", "password": "Correct-Horse-Battery-42", "name": "X",
            "organizationName": "Valid", "token": "t", "role": "member"} if "register" in path else {}
    body[field] = value
    response = owner.generic(method, url(world, path), json.dumps(body).encode(), content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "validation_error"
    assert any(name == field or name.startswith(field + ".") for name in error["fields"]), error
    assert state() == before


@pytest.mark.parametrize("method,path,_fields", [(m, p, f) for _, m, p, f in BODY_ENDPOINTS],
                         ids=[n for n, *_ in BODY_ENDPOINTS])
@pytest.mark.parametrize("payload", MALFORMED, ids=lambda b: repr(b[:12]))
def test_malformed_json(world, owner, method, path, _fields, payload):
    before = state()
    response = owner.generic(method, url(world, path), payload, content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] in ("malformed_request", "validation_error")
    assert state() == before


@pytest.mark.parametrize("method,path", [(m, p) for _, m, p, _ in BODY_ENDPOINTS], ids=[n for n, *_ in BODY_ENDPOINTS])
def test_not_json_and_too_large(world, owner, method, path):
    before = state()
    form = owner.generic(method, url(world, path), b"name=x", content_type="application/x-www-form-urlencoded")
    assert error_of(form, 415)["code"] == "unsupported_media_type"
    big = owner.generic(method, url(world, path), b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
                        content_type="application/json")
    assert error_of(big, 413)["code"] == "request_too_large"
    assert state() == before


ID_PATHS = [
    ("GET", "{org}"), ("PATCH", "{org}"), ("DELETE", "{org}"), ("GET", "{org}/members"),
    ("PATCH", "{org}/members/{user}"), ("DELETE", "{org}/members/{user}"), ("GET", "{org}/invitations"),
    ("POST", "{org}/invitations"), ("DELETE", "{org}/invitations/{invitation}"),
]


def id_cases():
    for method, path in ID_PATHS:
        for target in ("org", "user", "invitation"):
            if "{%s}" % target in path:
                for style in ("unknown", "not-a-uuid"):
                    yield pytest.param(method, path, target, style, id=f"{method}-{path}-{target}-{style}")


@pytest.mark.parametrize("method,path,target,style", list(id_cases()))
def test_unknown_and_non_uuid_ids_are_not_found(world, owner, method, path, target, style):
    ids = {"org": str(world.org.pk), "user": world.uid("member"), "invitation": str(uuid.uuid4())}
    ids[target] = str(uuid.uuid4()) if style == "unknown" else "12345'%20OR%201=1"
    before = state()
    body = {"role": "admin", "name": "x", "email": "y@example.com"}
    response = owner.generic(method, ORGS + path.format(**ids), json.dumps(body).encode(),
                             content_type="application/json")
    assert error_of(response, 404)["code"] == "not_found"
    assert state() == before


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_wrong_method_is_405_in_the_envelope(world, owner, method):
    response = owner.generic(method, f"{ORGS}{world.org.pk}/members", b"{}", content_type="application/json")
    assert error_of(response, 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize("header", ["Bearer", "Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
def test_bad_credentials_are_401(world, header):
    client = Client(HTTP_AUTHORIZATION=header)
    for method, path in [("GET", ""), ("POST", ""), ("DELETE", f"{world.org.pk}")]:
        response = client.generic(method, ORGS + path, b'{"name": "x"}', content_type="application/json")
        assert error_of(response, 401)["code"] in ("invalid_token", "not_authenticated")
    assert Organization.objects.filter(pk=world.org.pk).exists()

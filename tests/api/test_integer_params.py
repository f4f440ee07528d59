"""Issue 14, item 2: every whole number a client writes (query parameters of the API and the pages,
page forms, the Content-Length header, JSON numbers) goes through one strict parser
(core/fields.py): ASCII digits only, bounded before conversion. Non-ASCII digits, exponents,
signs and huge numbers are a 400 (or 413 for a body size), never a 500, and never mean something else."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from core.errors import ApiError
from core.fields import ascii_int, int_param
from orgs.models import Membership, Organization, OrgRole
from tests.conftest import login
from tests.factories import UserFactory
from tests.web.conftest import CHROME, page_login

# The values the issue names, and a few more of the same kind.
BAD = ["²", "١", "1e9", "99999999999999999999999", "-1", "", "１２", "+1", " 1", "1_0", "0x10", "1.0", "9" * 5000]
SEMANTICALLY_BAD_TEXT = ["²", "١", "1e9", "-1", "", "１２", "+1", " 1", "1_0", "0x10", "1.0"]


# --- the parser ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", SEMANTICALLY_BAD_TEXT + [None, 12, b"12"])
def test_ascii_int_refuses_everything_but_ascii_digits(text):
    assert ascii_int(text, maximum=10**6) is None


@pytest.mark.parametrize("text, value", [("0", 0), ("7", 7), ("0007", 7), ("1000000", 1_000_000),
                                         ("1000001", 1_000_001), ("99999999999999999999999", 1_000_001),
                                         ("9" * 5000, 1_000_001), ("0" * 5000 + "5", 5)])
def test_ascii_int_bounds_before_converting(text, value):
    assert ascii_int(text, maximum=10**6) == value


@pytest.mark.parametrize("text", BAD + ["0", "10001"])
def test_int_param_is_a_validation_error_naming_the_parameter(text):
    with pytest.raises(ApiError) as caught:
        int_param(text, name="page", default=1, minimum=1, maximum=10_000)
    assert caught.value.code == "validation_error" and caught.value.status_code == 400
    assert caught.value.fields == {"page": ["A whole number from 1 to 10000."]}


def test_int_param_default_only_when_absent():
    assert int_param(None, name="page", default=3, minimum=1, maximum=9) == 3
    assert int_param("9", name="page", default=3, minimum=1, maximum=9) == 9


# --- the API: GET me/security-events?page=&pageSize= ---------------------------------------------------
EVENTS = "/api/v1/auth/me/security-events"


@pytest.mark.parametrize("name", ["page", "pageSize"])
@pytest.mark.parametrize("value", BAD)
def test_security_events_query_parameters(authed, name, value):
    response = authed.get(EVENTS, {name: value})
    assert response.status_code == 400, (name, value, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "validation_error" and list(error["fields"]) == [name]


def test_security_events_good_values_still_work(authed):
    body = authed.get(EVENTS, {"page": "1", "pageSize": "100"}).json()
    assert body["page"] == 1 and body["pageSize"] == 100
    assert authed.get(EVENTS, {"page": "0001", "pageSize": "05"}).json()["pageSize"] == 5


# --- the API: JSON numbers of the session policy -----------------------------------------------------------
@pytest.fixture
def owned(db):
    owner = UserFactory()
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=owner, organization=org, role=OrgRole.OWNER)
    return owner, org


RAW_JSON_NUMBERS = ['"²"', '"١"', "1e9", "99999999999999999999999", "-1", '""', "1.5", "true", '"600"',
                    "9" * 4000, "1e999", "-0"]


@pytest.mark.parametrize("key", ["maxSessionLifetimeSeconds", "idleTimeoutSeconds"])
@pytest.mark.parametrize("raw", RAW_JSON_NUMBERS)
def test_session_policy_numbers(api, owned, key, raw):
    owner, org = owned
    tokens = login(api, owner.email)
    client = Client()
    body = f'{{"sessionPolicy": {{"{key}": {raw}}}}}'
    response = client.patch(f"/api/v1/orgs/{org.pk}", body, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert response.status_code == 400, (raw, response.content[:300])
    assert response.json()["error"]["code"] in ("validation_error", "malformed_request")
    org.refresh_from_db()
    assert org.max_session_lifetime_seconds is None and org.idle_timeout_seconds is None


# --- the Content-Length header ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, status", [("²", 400), ("١", 400), ("1e9", 400), ("-1", 400), ("１２", 400),
                                           ("+2", 400), ("1_0", 400), ("99999999999999999999999", 413),
                                           ("9" * 5000, 413), ("", None)])
def test_content_length_header(db, value, status):
    response = Client().generic("POST", "/api/v1/auth/login", b"{}", content_type="application/json",
                                CONTENT_LENGTH=value)
    if status is None:  # absent or empty: no body, the view answers (400 for the missing fields)
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    else:
        assert response.status_code == status
        assert response.json()["error"]["code"] == ("request_too_large" if status == 413 else "malformed_request")


# --- the pages ----------------------------------------------------------------------------------------------
@pytest.fixture
def page_client(user):
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, user.email).status_code == 302
    return client


@pytest.mark.parametrize("value", BAD)
def test_security_page_number(page_client, value):
    response = page_client.get("/account/security", {"page": value})
    body = response.content.decode()
    assert response.status_code == 400 and "A whole number from 1 to 10000." in body and "<!doctype html>" in body


def test_security_page_numbers_that_work(page_client):
    assert page_client.get("/account/security").status_code == 200
    assert page_client.get("/account/security", {"page": "2"}).status_code == 200


@pytest.mark.parametrize("field", ["max_lifetime_minutes", "idle_timeout_minutes"])
@pytest.mark.parametrize("value", [v for v in BAD if v.strip() and v != " 1"])  # a typed space is forgiven
def test_session_policy_form(owned, field, value):
    owner, org = owned
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, owner.email).status_code == 302
    response = client.post(f"/organizations/{org.pk}/policy", {field: value})
    body = response.content.decode()
    assert response.status_code == 400 and "<!doctype html>" in body, (value, response.status_code)
    assert "Enter a whole number." in body or "less than or equal to 10000000" in body
    org.refresh_from_db()
    assert org.max_session_lifetime_seconds is None and org.idle_timeout_seconds is None


def test_session_policy_form_blank_means_no_limit_and_ascii_digits_work(owned):
    owner, org = owned
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, owner.email).status_code == 302
    assert client.post(f"/organizations/{org.pk}/policy", {"idle_timeout_minutes": " 15 "}).status_code == 302
    org.refresh_from_db()
    assert org.idle_timeout_seconds == 15 * 60 and org.max_session_lifetime_seconds is None


def test_admin_list_numbers_never_fail(db):
    """Django's admin parses its own ``p`` (page) and ``o`` (ordering): checked, not replaced."""
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, staff.email).status_code == 302
    assert AuditEvent.objects.exists()
    for url in ("/admin/audit/auditevent/", "/admin/accounts/user/"):
        for param in ("p", "o"):
            for value in BAD:
                response = client.get(url, {param: value})
                assert response.status_code in (200, 302), (url, param, value, response.status_code)

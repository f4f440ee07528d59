"""register-b2b: a user and, once the email is verified, an organization with that user as owner."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import User
from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole, PendingOrganization
from tests.factories import PASSWORD
from tests.support.auth import bearer, login
from tests.support.errors import error_code
from tests.support.mail import last_mail_to, link_token
from tests.support.paths import ORGS

B2B = "/api/v1/auth/register-b2b"
REGISTER = "/api/v1/auth/register"
BODY = {"email": "Founder@Acme.example", "password": PASSWORD, "name": "Fay", "organizationName": "Acme GmbH"}


def test_end_to_end(api, db):
    r = api.post(B2B, BODY, format="json")
    assert r.status_code == 202
    plain = api.post(REGISTER, {"email": "someone@example.com", "password": PASSWORD}, format="json")
    assert r.json() == plain.json()  # the same answer as register
    user = User.objects.get(email="founder@acme.example")
    assert not user.email_verified and user.name == "Fay"
    assert not Organization.objects.exists()  # not before the email is verified
    assert PendingOrganization.objects.get().name == "Acme GmbH"

    token = link_token(last_mail_to("founder@acme.example"))
    r = api.post("/api/v1/auth/verify-email", {"token": token, "password": PASSWORD}, format="json")
    assert r.status_code == 200
    organization = Organization.objects.get()
    assert (organization.name, organization.slug) == ("Acme GmbH", "acme-gmbh")
    assert Membership.objects.get(organization=organization).user == user
    assert Membership.objects.get(organization=organization).role == OrgRole.OWNER
    assert not PendingOrganization.objects.exists()
    row = AuditEvent.objects.get(event=EventType.ORG_CREATED)
    assert row.organization_id == organization.pk and row.context["via"] == "register_b2b"

    pair = login(api, "founder@acme.example")
    orgs = bearer(pair["accessToken"]).get(ORGS).json()["organizations"]
    assert [(o["name"], o["role"]) for o in orgs] == [("Acme GmbH", "owner")]


def test_a_taken_email_gets_the_same_answer_and_no_organization(api, user):
    mail.outbox.clear()
    r = api.post(B2B, {**BODY, "email": user.email.upper()}, format="json")
    fresh = api.post(B2B, {**BODY, "email": "new@acme.example"}, format="json")
    assert r.status_code == fresh.status_code == 202 and r.json() == fresh.json()
    assert "you already have" in last_mail_to(user.email).body
    assert not PendingOrganization.objects.filter(user=user).exists()
    assert User.objects.filter(email=user.email).count() == 1


def test_the_organization_is_created_once(api, db):
    api.post(B2B, BODY, format="json")
    token = link_token(last_mail_to("founder@acme.example"))
    assert api.post("/api/v1/auth/verify-email", {"token": token, "password": PASSWORD},
                    format="json").status_code == 200
    assert api.post("/api/v1/auth/verify-email", {"token": token}, format="json").status_code == 400
    assert Organization.objects.count() == 1


def test_a_password_reset_verifies_the_email_and_creates_the_organization(api, db):
    api.post(B2B, BODY, format="json")
    api.post("/api/v1/auth/forgot-password", {"email": "founder@acme.example"}, format="json")
    token = link_token(last_mail_to("founder@acme.example"))
    r = api.post("/api/v1/auth/reset-password", {"token": token, "password": "another-long-password-9"},
                 format="json")
    assert r.status_code == 204
    assert Membership.objects.get(user__email="founder@acme.example").role == OrgRole.OWNER


def test_plain_register_and_verify_create_no_organization(api, db):
    api.post(REGISTER, {"email": "plain@example.com", "password": PASSWORD}, format="json")
    token = link_token(last_mail_to("plain@example.com"))
    assert api.post("/api/v1/auth/verify-email", {"token": token, "password": PASSWORD},
                    format="json").status_code == 200
    assert not Organization.objects.exists()


@pytest.mark.parametrize("change,field", [
    ({"organizationName": None}, "organizationName"),
    ({"organizationName": ""}, "organizationName"),
    ({"organizationName": 42}, "organizationName"),
    ({"organizationName": "x" * 101}, "organizationName"),
    ({"organizationName": "Evil\r\nBcc: x@example.com"}, "organizationName"),
    ({"email": "not-an-email"}, "email"),
    ({"password": "short"}, "password"),
])
def test_bad_input(api, db, change, field):
    body = {**BODY, **change}
    if change.get("organizationName", "") is None:
        body.pop("organizationName")
    r = api.post(B2B, body, format="json")
    assert error_code(r, 400) == "validation_error"
    assert field in r.json()["error"]["fields"]
    assert not User.objects.exists() and not PendingOrganization.objects.exists()


"""switch-organization: the org claims, refresh, membership changes, and the default at the next login."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from orgs.models import Membership, OrgRole
from sessions_app.models import DeviceSession, SpentRefreshToken
from tests.support.auth import bearer, login, signed_in
from tests.support.errors import error_code
from tests.support.paths import ORGS, SWITCH

REFRESH = "/api/v1/auth/refresh"


def claims(pair) -> dict:
    return access_token_verify(pair["accessToken"])


def switch(client, organization_id):
    value = None if organization_id is None else str(organization_id)
    return client.post(SWITCH, {"organizationId": value}, format="json")


def switched(client, organization_id) -> dict:
    r = switch(client, organization_id)
    assert r.status_code == 200, r.content
    return r.json()


def refreshed(refresh_token) -> dict:
    r = APIClient().post(REFRESH, {"refreshToken": refresh_token}, format="json")
    assert r.status_code == 200, r.content
    return r.json()


def test_switch_returns_a_pair_with_org_claims(world):
    client = world.client("admin")
    r = switch(client, world.org.pk)
    assert r.status_code == 200
    assert "no-store" in r["Cache-Control"]
    pair = r.json()
    assert set(pair) >= {"accessToken", "refreshToken", "tokenType", "expiresIn", "refreshExpiresAt", "user",
                         "session"}
    assert pair["session"]["id"] == str(client.pair.session.pk)  # same device session
    c = claims(pair)
    assert c["org"] == str(world.org.pk) and c["orgRole"] == "admin" and c["sid"] == str(client.pair.session.pk)
    assert DeviceSession.objects.get(pk=client.pair.session.pk).active_organization_id == world.org.pk
    membership = Membership.objects.get(user=world.users["admin"], organization=world.org)
    assert membership.last_active_at is not None
    row = AuditEvent.objects.get(event=EventType.ORGANIZATION_SWITCHED)
    assert row.organization_id == world.org.pk and row.session_id == client.pair.session.pk


def test_tokens_without_an_active_organization_carry_no_org_claims(world):
    client = world.client("member")
    assert "org" not in access_token_verify(client.pair.access_token)
    assert "orgRole" not in access_token_verify(client.pair.access_token)


def test_the_choice_survives_refresh_and_follows_role_changes(world):
    pair = switched(world.client("member"), world.org.pk)
    pair = refreshed(pair["refreshToken"])
    assert (claims(pair)["org"], claims(pair)["orgRole"]) == (str(world.org.pk), "member")
    Membership.objects.filter(user=world.users["member"], organization=world.org).update(role=OrgRole.ADMIN)
    pair = refreshed(pair["refreshToken"])
    assert claims(pair)["orgRole"] == "admin"


def test_a_refresh_with_an_organization_reads_the_role_with_the_session(world, settings,
                                                                       django_assert_max_num_queries):
    """The role the new token carries comes with the session's own look-up (its ``active_org_role``), so a
    refresh with an active organization is as few statements as one without (tests/sessions_app/
    test_refresh.py), and the role read is the one of that moment."""
    from tests.sessions_app.test_refresh import REFRESH_MAX_QUERIES

    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}  # not counted here
    pair = switched(world.client("member"), world.org.pk)
    with django_assert_max_num_queries(REFRESH_MAX_QUERIES):
        pair = refreshed(pair["refreshToken"])
    assert (claims(pair)["org"], claims(pair)["orgRole"]) == (str(world.org.pk), "member")
    Membership.objects.filter(user=world.users["member"], organization=world.org).update(role=OrgRole.OWNER)
    with django_assert_max_num_queries(REFRESH_MAX_QUERIES):
        pair = refreshed(pair["refreshToken"])
    assert claims(pair)["orgRole"] == "owner"


def test_removal_drops_the_organization_at_the_next_refresh(world):
    pair = switched(world.client("member"), world.org.pk)
    r = world.client("admin").delete(f"{ORGS}{world.org.pk}/members/{world.uid('member')}")
    assert r.status_code == 204
    pair = refreshed(pair["refreshToken"])
    assert "org" not in claims(pair) and "orgRole" not in claims(pair)
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).active_organization_id is None


def test_refresh_drops_an_organization_whose_membership_vanished_any_way(world):
    """Even when the membership row disappears without a signal (SQL: the ORM's delete is caught by
    sessions_app/receivers.py, tests/orgs/test_membership_end_sessions.py), refresh notices."""
    pair = switched(world.client("member"), world.org.pk)
    # one DELETE statement, no signals (what Django's own cascade uses when no receiver listens)
    Membership.objects.filter(user=world.users["member"], organization=world.org)._raw_delete(connection.alias)
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).active_organization_id == world.org.pk
    pair = refreshed(pair["refreshToken"])
    assert "org" not in claims(pair)
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).active_organization_id is None


def test_leaving_drops_the_organization_too(world):
    client = world.client("member")
    pair = switched(client, world.org.pk)
    r = bearer(pair["accessToken"]).delete(f"{ORGS}{world.org.pk}/members/{world.uid('member')}")
    assert r.status_code == 204
    assert "org" not in claims(refreshed(pair["refreshToken"]))


def test_deleting_the_organization_drops_it_from_sessions(world):
    pair = switched(world.client("member"), world.org.pk)
    assert world.client("owner").delete(f"{ORGS}{world.org.pk}").status_code == 204
    assert "org" not in claims(refreshed(pair["refreshToken"]))


def test_switch_to_null_leaves(world):
    client = world.client("admin")
    pair = switched(client, world.org.pk)
    pair = switched(bearer(pair["accessToken"]), None)
    assert "org" not in claims(pair)
    assert "org" not in claims(refreshed(pair["refreshToken"]))


@pytest.mark.parametrize("target", ["other", "unknown"])
def test_switch_to_an_organization_you_are_not_in_is_not_found(world, target):
    client = world.client("admin")
    organization_id = world.other.pk if target == "other" else uuid.uuid4()
    assert error_code(switch(client, organization_id), 404) == "not_found"
    session = DeviceSession.objects.get(pk=client.pair.session.pk)
    assert session.active_organization_id is None
    assert not AuditEvent.objects.filter(event=EventType.ORGANIZATION_SWITCHED).exists()
    # The refresh token was not rotated.
    assert refreshed(client.pair.refresh_token)


@pytest.mark.parametrize("body", [{}, {"organizationId": "not-a-uuid"}, {"organizationId": 12345},
                                  {"organizationId": ["x"]}, {"organizationId": True}, []])
def test_switch_bad_input(world, body):
    r = world.client("admin").post(SWITCH, body, format="json")
    assert error_code(r, 400) == "validation_error"


def test_switch_needs_a_bearer_token(world):
    assert error_code(switch(APIClient(), world.org.pk), 401) == "not_authenticated"


def test_the_previous_refresh_token_is_spent_by_a_switch(world):
    """Switching rotates the refresh token like a refresh does: the old one presented again after the
    grace window is reuse (within it, tests/sessions_app/test_grace_checks.py)."""
    client = world.client("admin")
    switched(client, world.org.pk)
    SpentRefreshToken.objects.filter(session=client.pair.session).update(
        spent_at=timezone.now() - timedelta(seconds=11))
    r = APIClient().post(REFRESH, {"refreshToken": client.pair.refresh_token}, format="json")
    assert error_code(r, 401) == "refresh_token_reused"
    assert DeviceSession.objects.get(pk=client.pair.session.pk).revoked_at is not None


def test_the_last_active_organization_is_the_default_at_the_next_login(world, api):
    user = world.users["member"]
    Membership.objects.create(user=user, organization=world.other, role=OrgRole.ADMIN)
    client = signed_in(user)
    switched(client, world.org.pk)
    switched(client, world.other.pk)  # the later one wins
    pair = login(api, user.email)
    assert (claims(pair)["org"], claims(pair)["orgRole"]) == (str(world.other.pk), "admin")
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).active_organization_id == world.other.pk
    # ... and it survives a refresh of the new session.
    assert claims(refreshed(pair["refreshToken"]))["org"] == str(world.other.pk)


def test_no_default_at_login_once_the_membership_is_gone(world, api):
    user = world.users["member"]
    switched(signed_in(user), world.org.pk)
    Membership.objects.filter(user=user, organization=world.org).delete()
    pair = login(api, user.email)
    assert "org" not in claims(pair)


def test_no_default_at_login_for_someone_who_never_switched(world, api):
    assert "org" not in claims(login(api, world.users["owner"].email))


def test_browser_sessions_have_an_active_organization_too(world):
    """A browser sign-in gets the default organization, GET token carries it, and the cookie (with
    the CSRF token) can switch."""
    from django.conf import settings
    from django.test import Client

    from tests.factories import PASSWORD

    user = world.users["member"]
    Membership.objects.create(user=user, organization=world.other, role=OrgRole.ADMIN)
    switched(signed_in(user), world.org.pk)
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login")
    csrf = browser.cookies[settings.CSRF_COOKIE_NAME].value
    assert browser.post("/login", {"email": user.email, "password": PASSWORD,
                                   "csrfmiddlewaretoken": csrf}).status_code == 302
    r = browser.get("/api/v1/auth/token")
    assert r.status_code == 200, r.content
    assert access_token_verify(r.json()["accessToken"])["org"] == str(world.org.pk)
    csrf = browser.cookies[settings.CSRF_COOKIE_NAME].value
    r = browser.post(SWITCH, {"organizationId": str(world.other.pk)}, content_type="application/json",
                     HTTP_X_CSRFTOKEN=csrf)
    assert r.status_code == 200, r.content
    assert (claims(r.json())["org"], claims(r.json())["orgRole"]) == (str(world.other.pk), "admin")
    # With the cookie no refresh token is rotated or returned: scripts never hold one.
    row = DeviceSession.objects.get(pk=r.json()["session"]["id"])
    assert r.json()["refreshToken"] == ""
    assert not SpentRefreshToken.objects.filter(session=row).exists()
    r = browser.get("/api/v1/auth/token")
    assert access_token_verify(r.json()["accessToken"])["org"] == str(world.other.pk)

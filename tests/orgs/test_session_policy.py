"""Per-organization session policy: an idle timeout and a maximum lifetime that apply to a session
while that organization is active on it, enforced on refresh and on every bearer request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from orgs.models import Organization
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import PASSWORD
from tests.support.auth import bearer, signed_in
from tests.support.errors import error_code
from tests.support.paths import ORGS, SWITCH

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
IDLE, LIFETIME = 900, 8 * 3600


@pytest.fixture
def strict(world):
    """``org`` with a 15-minute idle timeout and an 8-hour maximum session lifetime."""
    Organization.objects.filter(pk=world.org.pk).update(idle_timeout_seconds=IDLE,
                                                        max_session_lifetime_seconds=LIFETIME)
    return world


def active_session(world, label="member"):
    """A session of ``label`` with ``org`` active: (pair dict, session id)."""
    r = world.client(label).post(SWITCH, {"organizationId": str(world.org.pk)}, format="json")
    assert r.status_code == 200, r.content
    pair = r.json()
    return pair, pair["session"]["id"]


def age(session_id, *, idle=None, lifetime=None):
    now = timezone.now()
    changes = {}
    if idle is not None:
        changes["last_activity_at"] = now - timedelta(seconds=idle)
    if lifetime is not None:
        changes["created_at"] = now - timedelta(seconds=lifetime)
    DeviceSession.objects.filter(pk=session_id).update(**changes)


def assert_expired_by_policy(session_id, world, limit):
    session = DeviceSession.objects.get(pk=session_id)
    assert session.revoked_at is not None and session.revoked_reason == RevokeReason.ORGANIZATION_POLICY
    row = AuditEvent.objects.get(event=EventType.SESSION_REVOKED, session_id=session_id)
    assert row.context["reason"] == "organization_policy" and row.context["limit"] == limit
    assert row.organization_id == world.org.pk


@pytest.mark.parametrize("kind,limit", [("idle", "organization_idle_timeout"),
                                        ("lifetime", "organization_max_lifetime")])
def test_bearer_requests_end_at_the_limit(strict, kind, limit):
    pair, sid = active_session(strict)
    client = bearer(pair["accessToken"])
    age(sid, **{kind: (IDLE if kind == "idle" else LIFETIME) - 30})
    assert client.get(ME).status_code == 200  # just inside
    age(sid, **{kind: (IDLE if kind == "idle" else LIFETIME) + 1})
    r = client.get(ME)
    assert error_code(r, 401) == "session_expired"
    assert "Bearer" in r["WWW-Authenticate"]
    assert_expired_by_policy(sid, strict, limit)
    # Revoked for good: the refresh token is dead too.
    r = APIClient().post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json")
    assert error_code(r, 401) == "session_revoked"


@pytest.mark.parametrize("kind,limit", [("idle", "organization_idle_timeout"),
                                        ("lifetime", "organization_max_lifetime")])
def test_refresh_ends_at_the_limit(strict, kind, limit):
    pair, sid = active_session(strict)
    age(sid, **{kind: (IDLE if kind == "idle" else LIFETIME) + 1})
    r = APIClient().post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json")
    assert error_code(r, 401) == "session_expired"
    assert_expired_by_policy(sid, strict, limit)
    failed = AuditEvent.objects.get(event=EventType.TOKEN_REFRESH_FAILED, session_id=sid)
    assert failed.context["reason"] == limit


def test_activity_keeps_an_idle_timeout_away(strict):
    pair, sid = active_session(strict)
    age(sid, idle=IDLE - 60)
    r = APIClient().post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json")
    assert r.status_code == 200  # a refresh is activity: last_activity_at moves to now
    age(sid, idle=0)
    assert DeviceSession.objects.get(pk=sid).is_alive()


def test_the_policy_applies_only_while_the_organization_is_active(strict):
    client = strict.client("member")  # never switched: no organization active
    sid = client.pair.session.pk
    age(sid, idle=IDLE * 10, lifetime=LIFETIME * 2)
    assert client.get(ME).status_code == 200
    r = APIClient().post(REFRESH, {"refreshToken": client.pair.refresh_token}, format="json")
    assert r.status_code == 200


def test_leaving_the_organization_leaves_its_policy(strict):
    pair, sid = active_session(strict)
    pair = bearer(pair["accessToken"]).post(SWITCH, {"organizationId": None}, format="json").json()
    age(sid, idle=IDLE * 10)
    assert bearer(pair["accessToken"]).get(ME).status_code == 200


def test_removal_from_the_organization_ends_its_policy_at_once(strict):
    pair, sid = active_session(strict)
    assert strict.client("owner").delete(f"{ORGS}{strict.org.pk}/members/{strict.uid('member')}").status_code == 204
    assert DeviceSession.objects.get(pk=sid).active_organization_id is None
    age(sid, idle=IDLE * 10)
    assert bearer(pair["accessToken"]).get(ME).status_code == 200


def test_a_stricter_policy_set_later_applies_to_live_sessions(world):
    pair, sid = active_session(world)
    age(sid, idle=IDLE + 1)
    client = bearer(pair["accessToken"])
    assert client.get(ME).status_code == 200  # no policy yet
    age(sid, idle=IDLE + 1)  # the request above recorded activity
    r = world.client("owner").patch(f"{ORGS}{world.org.pk}", {"sessionPolicy": {"idleTimeoutSeconds": IDLE}},
                                    format="json")
    assert r.status_code == 200
    assert error_code(client.get(ME), 401) == "session_expired"


def test_switching_into_a_policy_the_session_is_too_old_for_is_refused(strict):
    client = strict.client("member")
    age(client.pair.session.pk, lifetime=LIFETIME + 1)
    r = client.post(SWITCH, {"organizationId": str(strict.org.pk)}, format="json")
    assert error_code(r, 403) == "organization_session_policy"
    session = DeviceSession.objects.get(pk=client.pair.session.pk)
    assert session.active_organization_id is None and session.revoked_at is None
    # A fresh sign-in can switch.
    fresh = signed_in(strict.users["member"])
    r = fresh.post(SWITCH, {"organizationId": str(strict.org.pk)}, format="json")
    assert r.status_code == 200 and access_token_verify(r.json()["accessToken"])["org"] == str(strict.org.pk)


# --- setting the policy -----------------------------------------------------------------------------

def patch_policy(world, policy, who="owner"):
    return world.client(who).patch(f"{ORGS}{world.org.pk}", {"sessionPolicy": policy}, format="json")


def test_owners_set_and_clear_the_policy(world):
    r = patch_policy(world, {"idleTimeoutSeconds": 900, "maxSessionLifetimeSeconds": 28800})
    assert r.status_code == 200
    assert r.json()["sessionPolicy"] == {"idleTimeoutSeconds": 900, "maxSessionLifetimeSeconds": 28800}
    r = patch_policy(world, {"idleTimeoutSeconds": None})  # only that key changes
    assert r.json()["sessionPolicy"] == {"idleTimeoutSeconds": None, "maxSessionLifetimeSeconds": 28800}
    r = patch_policy(world, None)
    assert r.json()["sessionPolicy"] == {"idleTimeoutSeconds": None, "maxSessionLifetimeSeconds": None}
    rows = AuditEvent.objects.filter(event=EventType.ORG_UPDATED, organization_id=world.org.pk).order_by("id")
    assert rows.count() == 3
    assert rows[0].context["changed"]["idle_timeout_seconds"] == {"old": None, "new": 900}


def test_admins_cannot_set_the_policy(world):
    r = patch_policy(world, {"idleTimeoutSeconds": 900}, who="admin")
    assert error_code(r, 403) == "permission_denied"
    world.org.refresh_from_db()
    assert world.org.idle_timeout_seconds is None


@pytest.mark.parametrize("policy,field", [
    ({"idleTimeoutSeconds": 0}, "sessionPolicy.idleTimeoutSeconds"),
    ({"idleTimeoutSeconds": -5}, "sessionPolicy.idleTimeoutSeconds"),
    ({"idleTimeoutSeconds": 299}, "sessionPolicy.idleTimeoutSeconds"),  # below the floor (activity resolution)
    ({"idleTimeoutSeconds": 30 * 24 * 3600 + 1}, "sessionPolicy.idleTimeoutSeconds"),  # looser than global
    ({"maxSessionLifetimeSeconds": 90 * 24 * 3600 + 1}, "sessionPolicy.maxSessionLifetimeSeconds"),
    ({"maxSessionLifetimeSeconds": 10 ** 30}, "sessionPolicy.maxSessionLifetimeSeconds"),
    ({"maxSessionLifetimeSeconds": "3600"}, "sessionPolicy.maxSessionLifetimeSeconds"),
    ({"maxSessionLifetimeSeconds": 3600.5}, "sessionPolicy.maxSessionLifetimeSeconds"),
    ({"idleTimeoutSeconds": True}, "sessionPolicy.idleTimeoutSeconds"),
    ("strict", "sessionPolicy.nonFieldErrors"),
    ([900], "sessionPolicy.nonFieldErrors"),
])
def test_a_policy_looser_than_the_global_rules_or_malformed_is_refused(world, policy, field):
    r = patch_policy(world, policy)
    assert error_code(r, 400) == "validation_error"
    assert field in r.json()["error"]["fields"], r.json()
    world.org.refresh_from_db()
    assert (world.org.idle_timeout_seconds, world.org.max_session_lifetime_seconds) == (None, None)


def test_the_limits_follow_the_global_settings(world, settings):
    settings.SESSIONS = {"ABSOLUTE_LIFETIME_SECONDS": 3600, "LIFETIME_SECONDS": 1800,
                         "REMEMBER_ME_LIFETIME_SECONDS": 1800}
    assert error_code(patch_policy(world, {"maxSessionLifetimeSeconds": 3601}), 400) == "validation_error"
    assert error_code(patch_policy(world, {"idleTimeoutSeconds": 1801}), 400) == "validation_error"
    assert patch_policy(world, {"maxSessionLifetimeSeconds": 3600, "idleTimeoutSeconds": 1800}).status_code == 200


def test_the_database_refuses_non_positive_policy_values(world):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.filter(pk=world.org.pk).update(idle_timeout_seconds=0)


# --- browser sessions (the session cookie) ------------------------------------------------------------

def test_browser_sign_in_makes_the_last_organization_active_and_its_policy_applies(strict):
    from django.test import Client

    from sessions_app.app_settings import app_settings as session_settings

    user = strict.users["member"]
    active_session(strict)  # switched once: the default at the next sign-in
    browser = Client()
    assert browser.post("/login", {"email": user.email, "password": PASSWORD}).status_code == 302
    row = DeviceSession.objects.filter(user=user, browser_key_hash__isnull=False).get()
    assert row.active_organization_id == strict.org.pk
    assert browser.get("/account/sessions").status_code == 200
    DeviceSession.objects.filter(pk=row.pk).update(last_activity_at=timezone.now() - timedelta(seconds=IDLE + 1))
    browser.cookies.pop(session_settings.CACHE_COOKIE, None)  # no cookie-cache answer: the row is read
    assert browser.get("/account/sessions").status_code == 302  # signed out: back to the sign-in page
    assert_expired_by_policy(row.pk, strict, "organization_idle_timeout")

"""Introspection and a bearer call apply the same rule (sessions_app.policy.session_refusal): for each way a
session stops being usable, ``introspect`` answers inactive exactly when ``GET me`` refuses. Introspection only
reads (the session's next use by its owner applies the refusal), and the bearer token of a request is verified
once, whichever authentication classes run."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from identity import bearer as bearer_module
from orgs.models import Membership, Organization
from sessions_app.models import DeviceSession, RevokeReason
from tests.support.auth import introspect, signed_in
from tests.support.errors import error_code

ME = "/api/v1/auth/me"
ORG_IDLE, ORG_LIFETIME = 900, 8 * 3600


def _with_organization(session_id, user):
    org = Organization.objects.create(name="Acme", slug="acme", idle_timeout_seconds=ORG_IDLE,
                                      max_session_lifetime_seconds=ORG_LIFETIME)
    Membership.objects.create(user=user, organization=org)
    DeviceSession.objects.filter(pk=session_id).update(active_organization=org)


def live(session_id, user, settings):
    """Nothing changes: both accept."""


def idle_timeout(session_id, user, settings):
    settings.SESSIONS = {**getattr(settings, "SESSIONS", {}), "IDLE_TIMEOUT_MINUTES": 30}
    DeviceSession.objects.filter(pk=session_id).update(last_activity_at=timezone.now() - timedelta(hours=1))


def organization_max_lifetime(session_id, user, settings):
    _with_organization(session_id, user)
    DeviceSession.objects.filter(pk=session_id).update(
        created_at=timezone.now() - timedelta(seconds=ORG_LIFETIME + 60))


def organization_idle_timeout(session_id, user, settings):
    _with_organization(session_id, user)
    DeviceSession.objects.filter(pk=session_id).update(
        last_activity_at=timezone.now() - timedelta(seconds=ORG_IDLE + 60))


def deleted_user(session_id, user, settings):
    user.delete()  # its sessions cascade


def inactive_user(session_id, user, settings):
    # A bulk UPDATE: saving is_active=False through the model revokes the sessions first, and the rule must
    # refuse a disabled account by itself.
    User.objects.filter(pk=user.pk).update(is_active=False)


CASES = [  # (change, the bearer refusal code or None, what the owner's use writes on the row)
    (live, None, None),
    (idle_timeout, "session_revoked", RevokeReason.IDLE_TIMEOUT),
    (organization_max_lifetime, "session_expired", RevokeReason.ORGANIZATION_POLICY),
    (organization_idle_timeout, "session_expired", RevokeReason.ORGANIZATION_POLICY),
    (deleted_user, "session_revoked", None),
    (inactive_user, "session_revoked", None),
]


def _written(session_id):
    """Everything introspection must leave alone: the audit trail and the session row."""
    return (AuditEvent.objects.count(),
            list(DeviceSession.objects.filter(pk=session_id).values_list("revoked_at", "revoked_reason",
                                                                         "last_activity_at", "expires_at")))


@pytest.mark.parametrize("change,code,revoked_as", CASES, ids=[case[0].__name__ for case in CASES])
def test_introspection_and_a_bearer_call_agree(change, code, revoked_as, service_api, user, settings):
    client = signed_in(user)
    session_id, token = client.pair.session.pk, client.pair.access_token
    change(session_id, user, settings)

    before = _written(session_id)
    body = introspect(service_api, token).json()
    assert _written(session_id) == before  # introspection writes nothing

    response = client.get(ME)
    assert body["active"] is (response.status_code == 200)
    if code is None:
        assert body["sub"] == str(user.pk) and body["sid"] == str(session_id)
        return
    assert body == {"active": False}
    assert error_code(response, 401) == code
    row = DeviceSession.objects.filter(pk=session_id).first()
    if revoked_as is not None:  # the owner's use applied the refusal
        assert row.revoked_at is not None and row.revoked_reason == revoked_as
    elif row is not None:
        assert row.revoked_at is None
    assert introspect(service_api, token).json() == {"active": False}  # and they still agree afterwards


def test_a_user_token_is_verified_once_per_request(user):
    client = signed_in(user)
    with mock.patch.object(bearer_module, "access_token_verify", wraps=bearer_module.access_token_verify) as verify:
        assert client.get(ME).status_code == 200
    assert verify.call_count == 1


def test_a_service_token_is_verified_once_per_request(service_api, service_token, user):
    other = signed_in(user)
    with mock.patch.object(bearer_module, "access_token_verify", wraps=bearer_module.access_token_verify) as verify:
        response = introspect(service_api, other.pair.access_token)
    assert response.status_code == 200 and response.json()["active"] is True
    assert [call.args for call in verify.call_args_list] == [(service_token,)]


def test_a_bad_token_is_refused_once_for_both_classes(service_api):
    """An invalid bearer token is refused by the first class and the refusal is remembered: one check."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    with mock.patch.object(bearer_module, "access_token_verify", wraps=bearer_module.access_token_verify) as verify:
        response = client.get(ME)
    assert error_code(response, 401) == "invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert verify.call_count == 1

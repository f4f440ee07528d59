"""orgs checks a session policy against the range it is given (flows.organizations supplies the global
session rules' range from sessions_app.policy); without a range it refuses to decide."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, EventType
from core.errors import ApiError
from flows.organizations import organization_policy_errors, organization_update
from orgs import services as orgs
from sessions_app.policy import session_policy_limits

POLICY = {"maxSessionLifetimeSeconds": 7200, "idleTimeoutSeconds": 3600}


def test_a_policy_without_limits_is_a_programming_error_and_changes_nothing(world):
    with pytest.raises(TypeError):
        orgs.organization_update(user=world.users["owner"], organization_id=world.org.pk, session_policy=POLICY)
    world.org.refresh_from_db()
    assert (world.org.max_session_lifetime_seconds, world.org.idle_timeout_seconds) == (None, None)
    assert not AuditEvent.objects.filter(event=EventType.ORG_UPDATED).exists()


def test_the_range_given_is_the_range_checked(world):
    narrow = {"maxSessionLifetimeSeconds": (60, 3600), "idleTimeoutSeconds": (60, 3600)}
    with pytest.raises(ApiError) as caught:
        orgs.organization_update(user=world.users["owner"], organization_id=world.org.pk, session_policy=POLICY,
                                 policy_limits=narrow)
    assert set(caught.value.fields) == {"sessionPolicy.maxSessionLifetimeSeconds"}
    orgs.organization_update(user=world.users["owner"], organization_id=world.org.pk, session_policy=POLICY,
                             policy_limits=session_policy_limits())
    world.org.refresh_from_db()
    assert (world.org.max_session_lifetime_seconds, world.org.idle_timeout_seconds) == (7200, 3600)


def test_the_flow_uses_the_global_session_rules(world):
    low, high = session_policy_limits()["idleTimeoutSeconds"]
    assert organization_policy_errors({"idleTimeoutSeconds": high}) == {}
    assert set(organization_policy_errors({"idleTimeoutSeconds": high + 1, "maxSessionLifetimeSeconds": low - 1})) == {
        "sessionPolicy.idleTimeoutSeconds", "sessionPolicy.maxSessionLifetimeSeconds"}
    with pytest.raises(ApiError):
        organization_update(user=world.users["owner"], organization_id=world.org.pk,
                            session_policy={"idleTimeoutSeconds": high + 1})
    renamed = organization_update(user=world.users["admin"], organization_id=world.org.pk, name="Acme 2")
    assert renamed.organization.name == "Acme 2"

"""Deleting an account keeps the last-owner rule: the only owner of an organization is refused
(409 last_owner, nothing changes); everyone else leaves their organizations as an audited departure."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.support.auth import signed_in
from tests.support.errors import error_code
from tests.support.races import http_race

ME = "/api/v1/auth/me"


def _org(name, slug, **people):
    org = Organization.objects.create(name=name, slug=slug)
    for user, role in people.items():
        Membership.objects.create(user=User.objects.get(email=user), organization=org, role=role)
    return org


def test_the_only_owner_cannot_delete_the_account_and_nothing_changes(db):
    ada = UserFactory(email="ada@example.com")
    UserFactory(email="bo@example.com")
    acme = _org("Acme", "acme", **{"ada@example.com": OrgRole.OWNER, "bo@example.com": OrgRole.ADMIN})
    beta = _org("Beta", "beta", **{"ada@example.com": OrgRole.OWNER})
    client = signed_in(ada)
    assert error_code(client.delete(ME), 409) == "last_owner"
    message = client.delete(ME).json()["error"]["message"]
    assert "Acme (acme)" in message and "Beta (beta)" in message and "them" in message
    assert User.objects.filter(pk=ada.pk).exists()
    assert Membership.objects.filter(user=ada, role=OrgRole.OWNER).count() == 2
    assert DeviceSession.objects.get(user=ada).revoked_at is None  # no session was signed out
    assert not AuditEvent.objects.filter(event__in=[EventType.ACCOUNT_DELETED, EventType.ORG_MEMBER_REMOVED,
                                                    EventType.SESSION_REVOKED]).exists()
    assert client.get(ME).status_code == 200
    assert Organization.objects.filter(pk__in=[acme.pk, beta.pk]).count() == 2
    refused = AuditEvent.objects.filter(event=EventType.ACCOUNT_DELETE_REFUSED, actor=ada)
    assert refused.count() == 2  # each refusal is in the trail, though its transaction was rolled back
    assert refused.first().success is False and refused.first().context["reason"] == "last_owner"
    assert sorted(refused.first().context["organizations"]) == sorted([str(acme.pk), str(beta.pk)])


def test_after_transferring_ownership_the_account_can_be_deleted(db):
    ada, bo = UserFactory(email="ada@example.com"), UserFactory(email="bo@example.com")
    acme = _org("Acme", "acme", **{"ada@example.com": OrgRole.OWNER, "bo@example.com": OrgRole.MEMBER})
    client = signed_in(ada)
    assert error_code(client.delete(ME), 409) == "last_owner"
    assert client.patch(f"/api/v1/orgs/{acme.pk}/members/{bo.pk}", {"role": "owner"},
                        format="json").status_code == 200
    assert client.delete(ME).status_code == 204
    assert not User.objects.filter(pk=ada.pk).exists()
    assert list(Membership.objects.filter(organization=acme).values_list("user_id", "role")) == [
        (bo.pk, OrgRole.OWNER)]
    left = AuditEvent.objects.get(event=EventType.ORG_MEMBER_REMOVED, organization_id=acme.pk)
    assert left.actor_id == ada.pk and left.subject_id == ada.pk
    assert left.context["left"] is True and left.context["reason"] == "account_deleted"
    assert left.context["role"] == OrgRole.OWNER


@pytest.mark.parametrize("role", [OrgRole.ADMIN, OrgRole.MEMBER])
def test_admins_and_members_leave_their_organizations_when_deleting(db, role):
    owner, ada = UserFactory(email="owner@example.com"), UserFactory(email="ada@example.com")
    acme = _org("Acme", "acme", **{"owner@example.com": OrgRole.OWNER, "ada@example.com": role})
    assert signed_in(ada).delete(ME).status_code == 204
    assert list(Membership.objects.filter(organization=acme).values_list("user_id", flat=True)) == [owner.pk]
    assert AuditEvent.objects.filter(event=EventType.ORG_MEMBER_REMOVED, organization_id=acme.pk,
                                     subject_id=ada.pk).count() == 1


def test_an_account_without_organizations_is_deleted_as_before(db):
    ada = UserFactory()
    assert signed_in(ada).delete(ME).status_code == 204
    assert not User.objects.filter(pk=ada.pk).exists()
    assert not AuditEvent.objects.filter(event=EventType.ORG_MEMBER_REMOVED).exists()


@pytest.mark.postgres
def test_two_owners_deleting_their_accounts_at_once_leave_one_owner(live_server, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for n in range(5):
        a, b = UserFactory(), UserFactory()
        org = Organization.objects.create(name=f"Race {n}", slug=f"race-{n}")
        for user in (a, b):
            Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
        url = f"{live_server.url}{ME}"
        results = http_race([("DELETE", url, signed_in(a).pair.access_token, None),
                             ("DELETE", url, signed_in(b).pair.access_token, None)])
        assert sorted(r.summary for r in results) == [(204, None), (409, "last_owner")], results
        assert Membership.objects.filter(organization=org, role=OrgRole.OWNER).count() == 1
        assert User.objects.filter(pk__in=[a.pk, b.pk]).count() == 1

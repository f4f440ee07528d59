"""Members: roles, removal, leaving, and the rule that an organization keeps at least one owner."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, EventType
from orgs import services
from orgs.models import Membership, Organization, OrgRole
from tests.factories import UserFactory
from tests.support.auth import signed_in
from tests.support.errors import error_code
from tests.support.paths import ORGS

MEMBER_KEYS = {"userId", "email", "name", "role", "joinedAt"}


@pytest.fixture
def solo():
    """An organization with exactly one owner and one member."""
    owner, member = UserFactory(email="solo-owner@example.com"), UserFactory(email="solo-member@example.com")
    org = Organization.objects.create(name="Solo", slug="solo")
    Membership.objects.create(user=owner, organization=org, role=OrgRole.OWNER)
    Membership.objects.create(user=member, organization=org, role=OrgRole.MEMBER)
    return org, owner, member


def role_of(org, user):
    return Membership.objects.filter(organization=org, user=user).values_list("role", flat=True).first()


def test_members_list_shape(world):
    body = world.client("member").get(f"{ORGS}{world.org.pk}/members").json()
    assert set(body) == {"members"}
    assert len(body["members"]) == 6
    for member in body["members"]:
        assert set(member) == MEMBER_KEYS
    by_email = {m["email"]: m for m in body["members"]}
    assert by_email["owner@example.com"]["role"] == "owner"
    assert by_email["admin@example.com"]["userId"] == world.uid("admin")
    assert "outsider@example.com" not in by_email


def test_the_last_owner_cannot_step_down(solo):
    org, owner, _ = solo
    r = signed_in(owner).patch(f"{ORGS}{org.pk}/members/{owner.pk}", {"role": "admin"}, format="json")
    assert error_code(r, 409) == "last_owner"
    assert role_of(org, owner) == OrgRole.OWNER
    assert not AuditEvent.objects.filter(event=EventType.ORG_MEMBER_ROLE_CHANGED).exists()


def test_the_last_owner_cannot_leave(solo):
    org, owner, _ = solo
    r = signed_in(owner).delete(f"{ORGS}{org.pk}/members/{owner.pk}")
    assert error_code(r, 409) == "last_owner"
    assert role_of(org, owner) == OrgRole.OWNER


def test_the_last_owner_cannot_be_removed_by_the_service_either(solo):
    org, owner, _ = solo
    with pytest.raises(services.LastOwner):
        services.member_remove(user=owner, organization_id=org.pk, member_user_id=owner.pk)
    assert Membership.objects.filter(organization=org, role=OrgRole.OWNER).count() == 1


def test_transfer_ownership_then_step_down(solo):
    """Ownership moves by promoting someone else, after which the old owner may step down or leave."""
    org, owner, member = solo
    client = signed_in(owner)
    r = client.patch(f"{ORGS}{org.pk}/members/{member.pk}", {"role": "owner"}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "owner"
    r = client.patch(f"{ORGS}{org.pk}/members/{owner.pk}", {"role": "member"}, format="json")
    assert r.status_code == 200 and r.json()["role"] == "member"
    assert role_of(org, owner) == OrgRole.MEMBER and role_of(org, member) == OrgRole.OWNER
    # Now a plain member: no longer allowed to change roles.
    r = client.patch(f"{ORGS}{org.pk}/members/{member.pk}", {"role": "member"}, format="json")
    assert error_code(r, 403) == "permission_denied"
    rows = AuditEvent.objects.filter(event=EventType.ORG_MEMBER_ROLE_CHANGED).order_by("id")
    assert [(r.subject_id, r.context["old_role"], r.context["new_role"]) for r in rows] == [
        (member.pk, "member", "owner"), (owner.pk, "owner", "member")]
    assert {r.organization_id for r in rows} == {org.pk}


def test_one_of_two_owners_may_leave_and_the_other_remains(world):
    r = world.client("owner").delete(f"{ORGS}{world.org.pk}/members/{world.uid('owner')}")
    assert r.status_code == 204
    assert list(Membership.objects.filter(organization=world.org, role=OrgRole.OWNER)
                .values_list("user__email", flat=True)) == ["owner2@example.com"]
    row = AuditEvent.objects.get(event=EventType.ORG_MEMBER_REMOVED)
    assert row.context["left"] is True and row.organization_id == world.org.pk
    # The one left cannot go too.
    r = world.client("owner2").delete(f"{ORGS}{world.org.pk}/members/{world.uid('owner2')}")
    assert error_code(r, 409) == "last_owner"


def test_a_member_cannot_remove_or_promote_anyone_but_can_leave(world):
    client = world.client("member")
    assert error_code(client.delete(f"{ORGS}{world.org.pk}/members/{world.uid('member2')}"), 403) == "permission_denied"
    r = client.patch(f"{ORGS}{world.org.pk}/members/{world.uid('member')}", {"role": "admin"}, format="json")
    assert error_code(r, 403) == "permission_denied"
    assert role_of(world.org, world.users["member"]) == OrgRole.MEMBER
    assert client.delete(f"{ORGS}{world.org.pk}/members/{world.uid('member')}").status_code == 204
    assert role_of(world.org, world.users["member"]) is None


def test_an_admin_cannot_make_themselves_owner(world):
    r = world.client("admin").patch(f"{ORGS}{world.org.pk}/members/{world.uid('admin')}", {"role": "owner"},
                                    format="json")
    assert error_code(r, 403) == "permission_denied"
    assert role_of(world.org, world.users["admin"]) == OrgRole.ADMIN


def test_setting_the_same_role_changes_nothing(world):
    r = world.client("owner").patch(f"{ORGS}{world.org.pk}/members/{world.uid('admin')}", {"role": "admin"},
                                    format="json")
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert not AuditEvent.objects.filter(event=EventType.ORG_MEMBER_ROLE_CHANGED).exists()


def test_a_removed_member_loses_access_at_once(world):
    assert world.client("owner").delete(f"{ORGS}{world.org.pk}/members/{world.uid('admin')}").status_code == 204
    client = world.client("admin")
    assert error_code(client.get(f"{ORGS}{world.org.pk}"), 404) == "not_found"
    assert client.get(ORGS).json() == {"organizations": []}


def test_a_demoted_owner_acts_with_the_new_role_at_once(world):
    """Permissions are read from the database on every request, not from the token."""
    client = world.client("owner2")  # token minted while owner2 is an owner
    r = world.client("owner").patch(f"{ORGS}{world.org.pk}/members/{world.uid('owner2')}", {"role": "member"},
                                    format="json")
    assert r.status_code == 200
    r = client.delete(f"{ORGS}{world.org.pk}")
    assert error_code(r, 403) == "permission_denied"
    assert Organization.objects.filter(pk=world.org.pk).exists()


def test_delete_organization_cascades_and_is_audited(world):
    org_id = world.org.pk
    r = world.client("owner").delete(f"{ORGS}{org_id}")
    assert r.status_code == 204
    assert not Organization.objects.filter(pk=org_id).exists()
    assert not Membership.objects.filter(organization_id=org_id).exists()
    row = AuditEvent.objects.get(event=EventType.ORG_DELETED)
    assert row.organization_id == org_id and row.actor_id == world.users["owner"].pk
    assert row.context["members"] == 6 and row.context["slug"] == "acme"


def test_the_database_refuses_a_second_membership_and_an_unknown_role(world):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=world.users["member"], organization=world.org, role=OrgRole.ADMIN)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=world.users["outsider"], organization=world.org, role="superuser")

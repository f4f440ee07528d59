"""Django admin for staff: organizations with their members inline, invitations without the token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from orgs.models import Invitation, Membership, OrgRole
from tests.factories import UserFactory

ORG_ADMIN = "/admin/orgs/organization/"
INVITATION_ADMIN = "/admin/orgs/invitation/"


@pytest.fixture
def staff(db):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _inline_post(world, changes: dict) -> dict:
    """The change form of ``org`` as the browser would post it, with ``changes`` applied per member label."""
    memberships = list(Membership.objects.filter(organization=world.org).order_by("pk"))
    data = {"name": world.org.name, "slug": world.org.slug, "max_session_lifetime_seconds": "",
            "idle_timeout_seconds": "", "memberships-TOTAL_FORMS": str(len(memberships)),
            "memberships-INITIAL_FORMS": str(len(memberships)), "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000"}
    labels = {u.pk: label for label, u in world.users.items()}
    for i, m in enumerate(memberships):
        data.update({f"memberships-{i}-id": str(m.pk), f"memberships-{i}-organization": str(world.org.pk),
                     f"memberships-{i}-user": str(m.user_id), f"memberships-{i}-role": m.role})
        for key, value in changes.get(labels[m.user_id], {}).items():
            data[f"memberships-{i}-{key}"] = value
    return data


def test_staff_see_organizations_and_members(world, staff):
    r = staff.get(ORG_ADMIN)
    assert r.status_code == 200 and "Acme" in r.content.decode()
    r = staff.get(f"{ORG_ADMIN}{world.org.pk}/change/")
    page = r.content.decode()
    assert r.status_code == 200
    assert page.count('name="memberships-') > 6  # the members inline


def test_invitations_are_listed_without_their_token(world, staff):
    now = timezone.now()
    invitation = Invitation.objects.create(organization=world.org, email="x@example.com", token_hash="ab" * 32,
                                           created_at=now, expires_at=now + timedelta(hours=48))
    r = staff.get(INVITATION_ADMIN)
    assert r.status_code == 200 and "x@example.com" in r.content.decode()
    r = staff.get(f"{INVITATION_ADMIN}{invitation.pk}/change/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "ab" * 32 not in page and "token hash" not in page.lower()
    assert staff.get(f"{INVITATION_ADMIN}add/").status_code == 403


def test_the_inline_refuses_to_remove_the_last_owners(world, staff):
    data = _inline_post(world, {"owner": {"role": OrgRole.ADMIN}, "owner2": {"DELETE": "on"}})
    r = staff.post(f"{ORG_ADMIN}{world.org.pk}/change/", data)
    assert r.status_code == 200  # the form again, with the error
    assert "at least one owner" in r.content.decode()
    assert Membership.objects.filter(organization=world.org, role=OrgRole.OWNER).count() == 2


def test_inline_changes_are_audited(world, staff):
    data = _inline_post(world, {"member": {"role": OrgRole.ADMIN}, "member2": {"DELETE": "on"}})
    r = staff.post(f"{ORG_ADMIN}{world.org.pk}/change/", data)
    assert r.status_code == 302, r.content.decode()[-3000:]
    assert Membership.objects.get(organization=world.org, user=world.users["member"]).role == OrgRole.ADMIN
    assert not Membership.objects.filter(organization=world.org, user=world.users["member2"]).exists()
    changed = AuditEvent.objects.get(event=EventType.ORG_MEMBER_ROLE_CHANGED)
    assert (changed.subject_id, changed.context["old_role"], changed.context["via"]) == (
        world.users["member"].pk, "member", "admin")
    removed = AuditEvent.objects.get(event=EventType.ORG_MEMBER_REMOVED)
    assert removed.subject_id == world.users["member2"].pk and removed.organization_id == world.org.pk


def test_the_admin_keeps_the_session_policy_rule(world, staff):
    data = _inline_post(world, {})
    data["idle_timeout_seconds"] = str(365 * 24 * 3600)
    r = staff.post(f"{ORG_ADMIN}{world.org.pk}/change/", data)
    assert r.status_code == 200 and "can only be stricter" in r.content.decode()
    world.org.refresh_from_db()
    assert world.org.idle_timeout_seconds is None


def test_deleting_in_the_admin_is_audited(world, staff):
    r = staff.post(f"{ORG_ADMIN}{world.org.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    row = AuditEvent.objects.get(event=EventType.ORG_DELETED)
    assert row.organization_id == world.org.pk and row.context["via"] == "admin"

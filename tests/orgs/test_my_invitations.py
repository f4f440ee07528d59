"""Invitations addressed to me (extensions): ``GET invitations/mine``, ``POST invitations/<id>/accept``
and ``POST invitations/<id>/decline``. A verified email address equal to the invited one stands in
for the mailed token; everyone else gets 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from orgs.models import Invitation, InvitationStatus, Membership, OrgRole
from tests.factories import UserFactory
from tests.support.auth import signed_in
from tests.support.errors import error_code
from tests.support.mail import last_mail_to, link_token
from tests.support.paths import ORGS

MINE = ORGS + "invitations/mine"
MINE_KEYS = {"id", "organizationId", "organizationName", "email", "role", "invitedBy", "inviterName",
             "createdAt", "expiresAt"}


def invite(world, email="new@example.com", role="member", by="admin", org=None):
    org = org or world.org
    client = world.client(by)
    r = client.post(f"{ORGS}{org.pk}/invitations", {"email": email, "role": role}, format="json")
    assert r.status_code == 201, r.content
    return Invitation.objects.get(pk=r.json()["id"]), link_token(last_mail_to(email.strip().lower()))


def accept_url(invitation_id):
    return f"{ORGS}invitations/{invitation_id}/accept"


def decline_url(invitation_id):
    return f"{ORGS}invitations/{invitation_id}/decline"


def state():
    return (sorted(Membership.objects.values_list("organization_id", "user_id", "role")),
            sorted(Invitation.objects.values_list("pk", "accepted_at", "revoked_at")))


@pytest.fixture
def newcomer(db):
    return UserFactory(email="new@example.com", name="Nia New")


def test_mine_lists_only_pending_invitations_to_my_verified_address(world, newcomer):
    world.users["admin"].name = "Ada Admin"
    world.users["admin"].save()
    mine, _ = invite(world, email="New@Example.com", role="admin")
    other_org, _ = invite(world, email="new@example.com", by="other_owner", org=world.other)
    invite(world, email="someone-else@example.com")
    expired, _ = invite(world, email="new@example.com", by="other_owner", org=world.other)  # replaces other_org
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    accepted = Invitation.objects.create(organization=world.other, email="new@example.com", token_hash="a" * 64,
                                         expires_at=timezone.now() + timedelta(days=1), accepted_at=timezone.now())
    r = signed_in(newcomer).get(MINE)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["invitations"] and len(body["invitations"]) == 1
    listed = body["invitations"][0]
    assert set(listed) == MINE_KEYS
    assert listed["id"] == str(mine.pk) and listed["organizationId"] == str(world.org.pk)
    assert listed["organizationName"] == "Acme" and listed["role"] == "admin" and listed["email"] == "new@example.com"
    assert listed["invitedBy"] == world.uid("admin") and listed["inviterName"] == "Ada Admin"
    assert listed["expiresAt"]
    assert str(other_org.pk) not in r.content.decode() and str(accepted.pk) not in r.content.decode()
    # Someone else sees none of them.
    assert world.client("outsider").get(MINE).json() == {"invitations": []}


def test_an_unverified_account_sees_nothing_and_cannot_accept(world):
    invitation, _ = invite(world)
    unverified = UserFactory(email="new@example.com", email_verified_at=None)
    client = signed_in(unverified)
    assert client.get(MINE).json() == {"invitations": []}
    before = state()
    assert error_code(client.post(accept_url(invitation.pk)), 404) == "not_found"
    assert error_code(client.post(decline_url(invitation.pk)), 404) == "not_found"
    assert state() == before


def test_accept_by_id(world, newcomer):
    invitation, token = invite(world, role="admin")
    client = signed_in(newcomer)
    r = client.post(accept_url(invitation.pk), {"ignored": ["body"]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["userId"] == str(newcomer.pk) and r.json()["role"] == "admin"
    assert Membership.objects.get(organization=world.org, user=newcomer).role == OrgRole.ADMIN
    invitation.refresh_from_db()
    assert invitation.status() == InvitationStatus.ACCEPTED
    row = AuditEvent.objects.get(event=EventType.ORG_INVITATION_ACCEPTED)
    assert row.organization_id == world.org.pk and row.actor_id == newcomer.pk
    assert row.context["invitation"] == str(invitation.pk) and row.context["via"] == "list"
    assert client.get(MINE).json() == {"invitations": []}
    # The mailed link is dead now, and so is the id.
    assert error_code(client.post(ORGS + "invitations/accept", {"token": token}, format="json"), 400) == "invalid_token"
    assert error_code(client.post(accept_url(invitation.pk)), 400) == "invalid_token"


def test_decline(world, newcomer):
    invitation, token = invite(world)
    client = signed_in(newcomer)
    r = client.post(decline_url(invitation.pk))
    assert r.status_code == 204 and r.content == b""
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None and invitation.accepted_at is None
    assert not Membership.objects.filter(user=newcomer).exists()
    row = AuditEvent.objects.get(event=EventType.ORG_INVITATION_DECLINED)
    assert row.organization_id == world.org.pk and row.actor_id == newcomer.pk
    assert row.context["invitation"] == str(invitation.pk)
    assert client.get(MINE).json() == {"invitations": []}
    # The organization no longer sees it as pending; the link is dead.
    listed = world.client("admin").get(f"{ORGS}{world.org.pk}/invitations").json()["invitations"]
    assert [i["status"] for i in listed] == ["revoked"]
    assert error_code(client.post(ORGS + "invitations/accept", {"token": token}, format="json"), 400) == "invalid_token"
    assert error_code(client.post(accept_url(invitation.pk)), 400) == "invalid_token"
    assert error_code(client.post(decline_url(invitation.pk)), 400) == "invalid_token"


@pytest.mark.parametrize("action", [accept_url, decline_url])
def test_someone_elses_invitation_is_404_and_changes_nothing(world, newcomer, action):
    invitation, _ = invite(world)
    before = state()
    for label in ("owner", "admin", "member", "outsider"):  # even the inviting organization's own people
        assert error_code(world.client(label).post(action(invitation.pk)), 404) == "not_found", label
    assert state() == before
    assert not AuditEvent.objects.filter(event__in=[EventType.ORG_INVITATION_ACCEPTED,
                                                    EventType.ORG_INVITATION_DECLINED]).exists()
    # Failed attempts are in the actor's trail, without the organization they may not learn about.
    failed = AuditEvent.objects.filter(event=EventType.ORG_INVITATION_ACCEPT_FAILED)
    assert all(row.organization_id is None and row.context["reason"] == "not_found" for row in failed)
    assert signed_in(newcomer).get(MINE).json()["invitations"][0]["id"] == str(invitation.pk)


@pytest.mark.parametrize("action", [accept_url, decline_url])
def test_expired_revoked_and_accepted_give_the_token_paths_codes(world, newcomer, action):
    client = signed_in(newcomer)
    invitation, token = invite(world)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_code(client.post(ORGS + "invitations/accept", {"token": token}, format="json"), 400) == "token_expired"
    assert error_code(client.post(action(invitation.pk)), 400) == "token_expired"
    invitation, token = invite(world)  # a new one (the expired one is replaced)
    assert world.client("admin").delete(f"{ORGS}{world.org.pk}/invitations/{invitation.pk}").status_code == 204
    assert error_code(client.post(ORGS + "invitations/accept", {"token": token}, format="json"), 400) == "invalid_token"
    assert error_code(client.post(action(invitation.pk)), 400) == "invalid_token"
    assert not Membership.objects.filter(user=newcomer).exists()


def test_already_a_member(world):
    invitation = Invitation.objects.create(organization=world.org, email="member@example.com", token_hash="m" * 64,
                                           expires_at=timezone.now() + timedelta(days=1))
    client = world.client("member")
    assert [i["id"] for i in client.get(MINE).json()["invitations"]] == [str(invitation.pk)]
    assert error_code(client.post(accept_url(invitation.pk)), 409) == "already_member"
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and Membership.objects.get(user=world.users["member"]).role == "member"
    failed = AuditEvent.objects.get(event=EventType.ORG_INVITATION_ACCEPT_FAILED)
    assert failed.context["reason"] == "already_member" and failed.organization_id == world.org.pk
    # Declining it is still possible.
    assert client.post(decline_url(invitation.pk)).status_code == 204


def test_bad_input(world, newcomer):
    invitation, _ = invite(world)
    client = signed_in(newcomer)
    before = state()
    for path in (f"{ORGS}invitations/1/accept", f"{ORGS}invitations/not-a-uuid/decline",
                 f"{ORGS}invitations/{invitation.pk}x/accept", accept_url("00000000-0000-0000-0000-000000000000"),
                 decline_url("00000000-0000-0000-0000-000000000000")):
        assert error_code(client.post(path), 404) == "not_found", path
    assert state() == before
    # Whatever the body, it is not read.
    raw = Client(HTTP_AUTHORIZATION=f"Bearer {client.pair.access_token}")
    for body, content_type in ((b"{", "application/json"), (b"[1]", "application/json"), (b"x", "text/plain")):
        assert error_code(raw.post(decline_url("00000000-0000-0000-0000-000000000000"), body,
                              content_type=content_type), 404) == "not_found"
    r = raw.post(accept_url(invitation.pk), b"{not json", content_type="application/json")
    assert r.status_code == 200 and Membership.objects.filter(user=newcomer, organization=world.org).exists()
    assert error_code(client.get(accept_url(invitation.pk)), 405) == "method_not_allowed"
    assert error_code(client.post(MINE), 405) == "method_not_allowed"


def test_anonymous_is_401(world):
    invitation, _ = invite(world)
    anonymous = APIClient()
    before = state()
    for response in (anonymous.get(MINE), anonymous.post(accept_url(invitation.pk)),
                     anonymous.post(decline_url(invitation.pk))):
        assert error_code(response, 401) == "not_authenticated"
    assert state() == before


def test_mine_is_not_taken_for_an_organization_id(world, newcomer):
    """``invitations/mine`` is routed before every ``<uuid:org_id>`` pattern."""
    from django.urls import resolve

    assert resolve(MINE).url_name == "orgs-invitations-mine"
    assert resolve(accept_url(world.org.pk)).url_name == "orgs-invitation-mine-accept"
    assert resolve(ORGS + "invitations/accept").url_name == "orgs-invitation-accept"

"""Invitations: the email and its link, accepting as the right or a wrong account, expiry, single use,
re-inviting, revoking, and the cleanup task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from notifications.models import OutboxMessage
from orgs import tasks
from orgs.models import Invitation, InvitationStatus, Membership, OrgRole
from orgs.services import invitations_cleanup
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import login, signed_in
from tests.support.errors import error_code
from tests.support.mail import last_mail_to, link_token
from tests.support.paths import ORGS

ACCEPT = ORGS + "invitations/accept"
INVITATION_KEYS = {"id", "email", "role", "invitedBy", "createdAt", "expiresAt", "status"}


def invite(world, email="new@example.com", role="member", by="admin"):
    r = world.client(by).post(f"{ORGS}{world.org.pk}/invitations", {"email": email, "role": role}, format="json")
    assert r.status_code == 201, r.content
    return r.json(), link_token(last_mail_to(email.strip().lower()))


def accept(client, token):
    return client.post(ACCEPT, {"token": token}, format="json")


def test_invitation_mail_link_and_response(world, settings):
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    mail.outbox.clear()
    body, token = invite(world, email="  New.Person@Example.COM ", role="admin")
    assert set(body) == INVITATION_KEYS
    assert body["email"] == "new.person@example.com" and body["role"] == "admin" and body["status"] == "pending"
    assert body["invitedBy"] == world.uid("admin")
    message = last_mail_to("new.person@example.com")
    assert f"https://auth.example.com/invitations/accept?token={token}" in message.body
    assert "Acme" in message.subject and "admin" in message.body and "48 hours" in message.body
    assert token not in str(body)  # the link goes to the mailbox only
    invitation = Invitation.objects.get(pk=body["id"])
    assert invitation.token_hash == hash_token(token) and token not in invitation.token_hash
    assert invitation.expires_at - invitation.created_at == timedelta(hours=48)
    assert OutboxMessage.objects.filter(kind="invitation", recipient="new.person@example.com").exists()
    row = AuditEvent.objects.get(event=EventType.ORG_INVITATION_CREATED)
    assert row.organization_id == world.org.pk and row.context["email"] == "new.person@example.com"


def test_org_names_are_not_html_escaped_in_the_plain_text_mail(world):
    world.org.name = "Smith & Sons <Ltd>"
    world.org.save()
    invite(world)
    assert "Smith & Sons <Ltd>" in last_mail_to("new@example.com").body


def test_accept_as_the_invited_account(world):
    _, token = invite(world, email="new@example.com", role="admin")
    newcomer = UserFactory(email="new@example.com")
    r = accept(signed_in(newcomer), token)
    assert r.status_code == 200, r.content
    assert r.json()["userId"] == str(newcomer.pk) and r.json()["role"] == "admin"
    assert Membership.objects.get(organization=world.org, user=newcomer).role == OrgRole.ADMIN
    invitation = Invitation.objects.get()
    assert invitation.status() == InvitationStatus.ACCEPTED
    row = AuditEvent.objects.get(event=EventType.ORG_INVITATION_ACCEPTED)
    assert row.organization_id == world.org.pk and row.actor_id == newcomer.pk
    # Single use.
    assert error_code(accept(signed_in(newcomer), token), 400) == "invalid_token"
    # The organization now shows up for the newcomer.
    assert [o["role"] for o in signed_in(newcomer).get(ORGS).json()["organizations"]] == ["admin"]


def test_accept_after_registering_with_the_invited_email(world, api):
    """Someone without an account registers with the invited address, verifies it, signs in, accepts."""
    _, token = invite(world, email="fresh@example.com")
    r = api.post("/api/v1/auth/register", {"email": "Fresh@Example.com", "password": PASSWORD, "name": "F"},
                 format="json")
    assert r.status_code == 202
    verify = link_token(last_mail_to("fresh@example.com"))
    assert api.post("/api/v1/auth/verify-email", {"token": verify, "password": PASSWORD},
                    format="json").status_code == 200
    pair = login(api, "fresh@example.com")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['accessToken']}")
    r = accept(client, token)
    assert r.status_code == 200 and r.json()["email"] == "fresh@example.com"
    assert Membership.objects.filter(organization=world.org, user__email="fresh@example.com").exists()


def test_accept_as_another_account_is_forbidden_and_keeps_the_invitation(world):
    _, token = invite(world, email="new@example.com")
    r = accept(world.client("outsider"), token)
    assert error_code(r, 403) == "invitation_email_mismatch"
    assert not Membership.objects.filter(organization=world.org, user=world.users["outsider"]).exists()
    assert Invitation.objects.get().status() == InvitationStatus.PENDING
    failed = AuditEvent.objects.get(event=EventType.ORG_INVITATION_ACCEPT_FAILED)
    assert failed.success is False and failed.context["reason"] == "invitation_email_mismatch"
    assert failed.organization_id == world.org.pk
    # The right person can still use it.
    assert accept(signed_in(UserFactory(email="new@example.com")), token).status_code == 200


def test_expired_invitation(world):
    _, token = invite(world)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    r = accept(signed_in(UserFactory(email="new@example.com")), token)
    assert error_code(r, 400) == "token_expired"
    assert not Membership.objects.filter(user__email="new@example.com").exists()
    listed = world.client("admin").get(f"{ORGS}{world.org.pk}/invitations").json()["invitations"]
    assert [i["status"] for i in listed] == ["expired"]


@pytest.mark.parametrize("token", ["", "nope", "x" * 512])
def test_unknown_token(world, token):
    r = accept(world.client("outsider"), token)
    assert r.status_code == 400
    assert r.json()["error"]["code"] in ("invalid_token", "validation_error")
    assert not Membership.objects.filter(user=world.users["outsider"], organization=world.org).exists()


def test_reinviting_replaces_the_pending_invitation(world):
    first, old_token = invite(world, email="new@example.com", role="member")
    second, new_token = invite(world, email="NEW@example.com", role="admin")
    assert first["id"] != second["id"] and old_token != new_token
    assert Invitation.objects.open().filter(organization=world.org, email="new@example.com").count() == 1
    listed = {i["id"]: i["status"] for i in world.client("admin").get(f"{ORGS}{world.org.pk}/invitations")
              .json()["invitations"]}
    assert listed == {first["id"]: "revoked", second["id"]: "pending"}
    newcomer = signed_in(UserFactory(email="new@example.com"))
    assert error_code(accept(newcomer, old_token), 400) == "invalid_token"
    r = accept(newcomer, new_token)
    assert r.status_code == 200 and r.json()["role"] == "admin"
    revoked = AuditEvent.objects.get(event=EventType.ORG_INVITATION_REVOKED)
    assert revoked.context["replaced"] is True and revoked.organization_id == world.org.pk


def test_the_database_allows_one_open_invitation_per_email(world):
    from django.db import IntegrityError, transaction

    invite(world)
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(organization=world.org, email="new@example.com", token_hash="f" * 64,
                                  created_at=now, expires_at=now + timedelta(hours=1))
    with pytest.raises(IntegrityError), transaction.atomic():  # emails are stored normalized
        Invitation.objects.create(organization=world.other, email="Upper@example.com", token_hash="e" * 64,
                                  created_at=now, expires_at=now + timedelta(hours=1))


def test_revoked_invitation_cannot_be_accepted(world):
    body, token = invite(world)
    r = world.client("admin").delete(f"{ORGS}{world.org.pk}/invitations/{body['id']}")
    assert r.status_code == 204
    assert Invitation.objects.get().status() == InvitationStatus.REVOKED
    assert error_code(accept(signed_in(UserFactory(email="new@example.com")), token), 400) == "invalid_token"
    # Revoking again, or revoking an accepted one, is a conflict.
    r = world.client("admin").delete(f"{ORGS}{world.org.pk}/invitations/{body['id']}")
    assert error_code(r, 409) == "invitation_not_pending"


def test_an_accepted_invitation_cannot_be_revoked(world):
    body, token = invite(world)
    assert accept(signed_in(UserFactory(email="new@example.com")), token).status_code == 200
    r = world.client("owner").delete(f"{ORGS}{world.org.pk}/invitations/{body['id']}")
    assert error_code(r, 409) == "invitation_not_pending"
    assert Membership.objects.filter(organization=world.org, user__email="new@example.com").exists()


def test_inviting_an_existing_member_is_a_conflict(world):
    r = world.client("admin").post(f"{ORGS}{world.org.pk}/invitations", {"email": "MEMBER@example.com"},
                                   format="json")
    assert error_code(r, 409) == "already_member"
    assert not Invitation.objects.exists()


def test_accepting_when_already_a_member_is_a_conflict(world):
    _, token = invite(world, email="outsider@example.com")
    Membership.objects.create(user=world.users["outsider"], organization=world.org, role=OrgRole.MEMBER)
    r = accept(world.client("outsider"), token)
    assert error_code(r, 409) == "already_member"
    assert Membership.objects.get(user=world.users["outsider"], organization=world.org).role == OrgRole.MEMBER


def test_role_defaults_to_member(world):
    r = world.client("admin").post(f"{ORGS}{world.org.pk}/invitations", {"email": "x@example.com"}, format="json")
    assert r.status_code == 201 and r.json()["role"] == "member"


def test_invitation_ttl_is_configurable(world, settings):
    settings.ORGS = {"INVITATION_TTL_SECONDS": 3600}
    body, _ = invite(world)
    invitation = Invitation.objects.get(pk=body["id"])
    assert invitation.expires_at - invitation.created_at == timedelta(hours=1)
    assert "expires in 1 hour." in last_mail_to("new@example.com").body


def test_cleanup_deletes_expired_invitations_only(world):
    expired, _ = invite(world, email="expired@example.com")
    revoked_expired, _ = invite(world, email="revoked@example.com")
    pending, _ = invite(world, email="pending@example.com")
    accepted, token = invite(world, email="accepted@example.com")
    accept(signed_in(UserFactory(email="accepted@example.com")), token)
    past = timezone.now() - timedelta(seconds=1)
    Invitation.objects.filter(pk__in=[expired["id"], revoked_expired["id"], accepted["id"]]).update(expires_at=past)
    Invitation.objects.filter(pk=revoked_expired["id"]).update(revoked_at=past)
    assert tasks.invitations_cleanup.delay().get() == 2
    assert set(Invitation.objects.values_list("email", flat=True)) == {"pending@example.com", "accepted@example.com"}
    assert invitations_cleanup() == 0


def test_cleanup_runs_on_the_beat_schedule(settings):
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "orgs.tasks.invitations_cleanup"]
    assert len(entries) == 1 and entries[0]["schedule"] <= timedelta(hours=1)


def test_accept_needs_a_signed_in_user(world):
    _, token = invite(world)
    assert error_code(accept(APIClient(), token), 401) == "not_authenticated"
    assert Invitation.objects.get().status() == InvitationStatus.PENDING
    assert not User.objects.filter(email="new@example.com").exists()

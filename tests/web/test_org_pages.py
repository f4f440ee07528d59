"""Issue 5's organization pages (web/views/orgs.py): the permission matrix of every role against
every page action, IDOR, CSRF, bad input and audit; and the last-owner rule on /account/delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from orgs.models import Invitation, Membership, Organization, OrgRole
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login
from tests.support.mail import last_mail_to, link_token


# --- account deletion keeps the last-owner rule -------------------------------------------------------
def test_account_delete_page_refuses_the_only_owner_and_changes_nothing(signed_in, user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    response = signed_in.post("/account/delete", {"confirm": "on"})
    body = response.content.decode()
    assert response.status_code == 409 and "only owner of Acme (acme)" in body
    assert 'href="/organizations"' in body
    assert User.objects.filter(pk=user.pk).exists() and Membership.objects.filter(user=user).exists()
    assert not AuditEvent.objects.filter(event=EventType.ACCOUNT_DELETED).exists()
    assert signed_in.get("/account/sessions").status_code == 200  # still signed in


def test_account_delete_page_lets_a_co_owner_go(signed_in, user):
    org = Organization.objects.create(name="Acme", slug="acme")
    other = UserFactory()
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    Membership.objects.create(user=other, organization=org, role=OrgRole.OWNER)
    response = signed_in.post("/account/delete", {"confirm": "on"})
    assert response.status_code == 200 and "Account deleted" in response.content.decode()
    assert list(Membership.objects.filter(organization=org).values_list("user_id", flat=True)) == [other.pk]
    assert AuditEvent.objects.filter(event=EventType.ORG_MEMBER_REMOVED, organization_id=org.pk,
                                     subject_id=user.pk).exists()


# --- the world: one organization with two people in each role, another organization ---------------------
ROLES = ("owner", "admin", "member", "outsider", "anonymous")


@dataclass
class World:
    org: Organization
    other: Organization
    users: dict
    invitation: Invitation  # pending, in org
    other_invitation: Invitation  # pending, in other

    def client(self, label, **kwargs):
        client = Client(HTTP_USER_AGENT=CHROME_LINUX, **kwargs)
        if label != "anonymous":
            assert page_login(client, self.users[label].email).status_code == 302
        return client

    def uid(self, label):
        return self.users[label].pk


def _invite(org, email, role=OrgRole.MEMBER):
    now = timezone.now()
    return Invitation.objects.create(organization=org, email=email, role=role, token_hash=hash_token(email),
                                     created_at=now, expires_at=now + timedelta(days=2))


@pytest.fixture
def world(db) -> World:
    users = {label: UserFactory(email=f"{label}@example.com", name=label.title()) for label in
             ("owner", "owner2", "admin", "admin2", "member", "member2", "outsider", "other_owner")}
    org = Organization.objects.create(name="Acme", slug="acme")
    for label in ("owner", "owner2", "admin", "admin2", "member", "member2"):
        Membership.objects.create(user=users[label], organization=org, role=label.rstrip("2"))
    other = Organization.objects.create(name="Other", slug="other")
    Membership.objects.create(user=users["other_owner"], organization=other, role=OrgRole.OWNER)
    Membership.objects.create(user=users["outsider"], organization=other, role=OrgRole.MEMBER)
    return World(org=org, other=other, users=users, invitation=_invite(org, "pending@example.com"),
                 other_invitation=_invite(other, "elsewhere@example.com"))


def snapshot():
    """Everything an organization page can change (and the audit rows of organizations)."""
    return (
        sorted(Organization.objects.values_list("id", "name", "slug", "max_session_lifetime_seconds",
                                                "idle_timeout_seconds")),
        sorted(Membership.objects.values_list("organization_id", "user_id", "role")),
        sorted(Invitation.objects.values_list("id", "organization_id", "email", "role", "accepted_at", "revoked_at")),
        AuditEvent.objects.filter(organization_id__isnull=False).count(),
    )


def role_of(world, label, org=None):
    return Membership.objects.filter(organization=org or world.org, user=world.users[label]).values_list(
        "role", flat=True).first()


def org_audit(event, org):
    return AuditEvent.objects.filter(event=event, organization_id=org.pk)


# Each action: (path template, POST data, {role: expected status}, check of the state after a success).
OK, DENIED, HIDDEN = 302, 403, 404
SIGNED_IN = {"owner": OK, "admin": OK, "member": OK, "outsider": OK}
ADMINS = {"owner": OK, "admin": OK, "member": DENIED, "outsider": HIDDEN}
OWNERS = {"owner": OK, "admin": DENIED, "member": DENIED, "outsider": HIDDEN}


def _renamed(world, actor):
    world.org.refresh_from_db()
    assert world.org.name == "Renamed Ltd"
    row = org_audit(EventType.ORG_UPDATED, world.org).get()
    assert row.actor_id == actor.pk and row.context["changed"]["name"] == {"old": "Acme", "new": "Renamed Ltd"}


def _policy_set(world, actor):
    world.org.refresh_from_db()
    assert (world.org.max_session_lifetime_seconds, world.org.idle_timeout_seconds) == (8 * 3600, 15 * 60)
    assert org_audit(EventType.ORG_UPDATED, world.org).get().actor_id == actor.pk


def _deleted(world, actor):
    assert not Organization.objects.filter(pk=world.org.pk).exists()
    assert not Membership.objects.filter(organization_id=world.org.pk).exists()
    assert org_audit(EventType.ORG_DELETED, world.org).get().actor_id == actor.pk


def _role(label, new):
    def check(world, actor):
        assert role_of(world, label) == new
        row = org_audit(EventType.ORG_MEMBER_ROLE_CHANGED, world.org).get()
        assert row.actor_id == actor.pk and row.subject_id == world.uid(label) and row.context["new_role"] == new
    return check


def _removed(label):
    def check(world, actor):
        assert role_of(world, label) is None
        row = org_audit(EventType.ORG_MEMBER_REMOVED, world.org).get()
        assert row.actor_id == actor.pk and row.subject_id == world.uid(label)
    return check


def _invited(role):
    def check(world, actor):
        invitation = Invitation.objects.get(organization=world.org, email="new@example.com")
        assert invitation.role == role and invitation.inviter_id == actor.pk
        assert org_audit(EventType.ORG_INVITATION_CREATED, world.org).get().actor_id == actor.pk
        assert last_mail_to("new@example.com").subject == "You are invited to join “Acme”"
    return check


def _revoked(world, actor):
    world.invitation.refresh_from_db()
    assert world.invitation.revoked_at is not None
    assert org_audit(EventType.ORG_INVITATION_REVOKED, world.org).get().actor_id == actor.pk


ACTIONS = {
    "rename": ("/organizations/{org}/rename", {"name": "Renamed Ltd"}, ADMINS, _renamed),
    "policy": ("/organizations/{org}/policy", {"max_lifetime_minutes": "480", "idle_timeout_minutes": "15"},
               OWNERS, _policy_set),
    "delete": ("/organizations/{org}/delete", {"confirm": "on"}, OWNERS, _deleted),
    "member->admin": ("/organizations/{org}/members/{member2}/role", {"role": "admin"}, ADMINS,
                      _role("member2", "admin")),
    "admin->member": ("/organizations/{org}/members/{admin2}/role", {"role": "member"}, ADMINS,
                      _role("admin2", "member")),
    "promote to owner": ("/organizations/{org}/members/{member2}/role", {"role": "owner"}, OWNERS,
                         _role("member2", "owner")),
    "demote an owner": ("/organizations/{org}/members/{owner2}/role", {"role": "admin"}, OWNERS,
                        _role("owner2", "admin")),
    "remove a member": ("/organizations/{org}/members/{member2}/remove", {}, ADMINS, _removed("member2")),
    "remove an admin": ("/organizations/{org}/members/{admin2}/remove", {}, ADMINS, _removed("admin2")),
    "remove an owner": ("/organizations/{org}/members/{owner2}/remove", {}, OWNERS, _removed("owner2")),
    "invite a member": ("/organizations/{org}/invitations", {"email": "new@example.com", "role": "member"}, ADMINS,
                        _invited("member")),
    "invite an admin": ("/organizations/{org}/invitations", {"email": "new@example.com", "role": "admin"}, ADMINS,
                        _invited("admin")),
    "invite an owner": ("/organizations/{org}/invitations", {"email": "new@example.com", "role": "owner"}, OWNERS,
                        _invited("owner")),
    "revoke an invitation": ("/organizations/{org}/invitations/{invitation}/revoke", {}, ADMINS, _revoked),
}


def _path(world, template):
    return template.format(org=world.org.pk, invitation=world.invitation.pk,
                           **{label: user.pk for label, user in world.users.items()})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_permission_matrix(world, action, role):
    template, data, expected, check = ACTIONS[action]
    client = world.client(role)
    path = _path(world, template)
    before = snapshot()
    response = client.post(path, data)
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/login?next=")
        assert snapshot() == before
        return
    assert response.status_code == expected[role], (action, role, response.status_code, response.content[:500])
    if expected[role] == OK:
        check(world, world.users[role])
    else:
        assert snapshot() == before, (action, role)
        body = response.content.decode()
        if expected[role] == HIDDEN:  # an outsider learns nothing about the organization
            assert "Acme" not in body and "No such organization" in body
        else:
            assert "Nothing was changed" in body


@pytest.mark.parametrize("role", ROLES)
def test_view_matrix(world, role):
    client = world.client(role)
    path = f"/organizations/{world.org.pk}"
    response = client.get(path)
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"] == f"/login?next=%2Forganizations%2F{world.org.pk}"
        return
    if role == "outsider":
        assert response.status_code == 404 and "Acme" not in response.content.decode()
        return
    body = response.content.decode()
    assert response.status_code == 200
    for label in ("owner", "owner2", "admin", "admin2", "member", "member2"):
        assert f'data-member="{label}@example.com"' in body
    assert "other_owner@example.com" not in body and "outsider@example.com" not in body
    # What the page offers follows the role (the services decide either way).
    assert ('action="/organizations/%s/invitations"' % world.org.pk in body) == (role in ("owner", "admin"))
    assert ("pending@example.com" in body) == (role in ("owner", "admin"))
    assert ('action="/organizations/%s/rename"' % world.org.pk in body) == (role in ("owner", "admin"))
    assert ('action="/organizations/%s/policy"' % world.org.pk in body) == (role == "owner")
    assert ('href="/organizations/%s/delete"' % world.org.pk in body) == (role == "owner")
    owner2_role_form = f'action="/organizations/{world.org.pk}/members/{world.uid("owner2")}/role"'
    member2_role_form = f'action="/organizations/{world.org.pk}/members/{world.uid("member2")}/role"'
    assert (owner2_role_form in body) == (role == "owner")
    assert (member2_role_form in body) == (role in ("owner", "admin"))
    assert ('<option value="owner"' in body) == (role == "owner")
    own_row = f'action="/organizations/{world.org.pk}/members/{world.uid(role)}/remove"'
    assert own_row in body  # everyone may leave
    assert f'data-my-role="{role}"' in body


@pytest.mark.parametrize("role", ROLES)
def test_delete_confirmation_page_matrix(world, role):
    response = world.client(role).get(f"/organizations/{world.org.pk}/delete")
    expected = {"owner": 200, "admin": 403, "member": 403, "outsider": 404}
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/login?next=")
    else:
        assert response.status_code == expected[role]
    assert Organization.objects.filter(pk=world.org.pk).exists()


@pytest.mark.parametrize("role", ROLES)
def test_list_and_create_matrix(world, role):
    client = world.client(role)
    listing = client.get("/organizations")
    before = Organization.objects.count()
    response = client.post("/organizations", {"name": "Brand New"})
    if role == "anonymous":
        assert listing.status_code == 302 and response.status_code == 302
        assert response["Location"].startswith("/login?next=") and Organization.objects.count() == before
        return
    body = listing.content.decode()
    assert listing.status_code == 200
    assert ("Acme" in body) == (role != "outsider") and ("Other" in body) == (role == "outsider")
    created = Organization.objects.get(name="Brand New")
    assert response.status_code == 302 and response["Location"] == f"/organizations/{created.pk}?done=created"
    assert role_of(world, role, created) == OrgRole.OWNER
    assert org_audit(EventType.ORG_CREATED, created).get().actor_id == world.uid(role)
    page = client.get(response["Location"])
    assert page.status_code == 200 and "The organization is created" in page.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_switch_matrix(world, role):
    """Members switch to the organization; an outsider gets 404 and their session keeps what it had."""
    client = world.client(role)
    response = client.post("/organizations/switch", {"organization": str(world.org.pk)})
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/login?next=")
        return
    session = DeviceSession.objects.get(user=world.users[role])
    if role == "outsider":
        assert response.status_code == 404 and session.active_organization_id is None
        return
    assert response.status_code == 302 and response["Location"] == "/organizations?done=switched"
    assert session.active_organization_id == world.org.pk
    row = AuditEvent.objects.get(event=EventType.ORGANIZATION_SWITCHED, actor_id=world.uid(role))
    assert row.organization_id == world.org.pk and row.session_id == session.pk
    listing = client.get("/organizations").content.decode()
    assert f'<tr data-org="{world.org.pk}" class="current">' in listing
    left = client.post("/organizations/switch", {"organization": ""})
    assert left.status_code == 302
    session.refresh_from_db()
    assert session.active_organization_id is None
    assert 'data-active="none"' in client.get("/organizations").content.decode()


# --- the invitation link ----------------------------------------------------------------------------------
def test_accept_get_never_uses_the_token_and_shows_the_invitation(world):
    invited = UserFactory(email="pending@example.com")
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    page_login(client, invited.email)
    before = snapshot()
    for _ in range(2):  # a mail scanner and the person: a GET changes nothing
        response = client.get("/invitations/accept?token=pending@example.com")
        body = response.content.decode()
        assert response.status_code == 200 and "join <strong>Acme</strong> as\n  member" in body
        assert 'action="/invitations/accept"' in body and 'value="pending@example.com"' in body
    assert snapshot() == before


def test_accept_matrix_by_who_is_signed_in(world):
    """The invited person joins; anyone else (a member, the owner, an outsider) is told the link is
    for another address and the invitation stays usable; anonymous visitors are sent to sign in."""
    for role in ("owner", "admin", "member", "outsider"):
        before = snapshot()
        response = world.client(role).post("/invitations/accept", {"token": "pending@example.com"})
        assert response.status_code == 403, role
        body = response.content.decode()
        assert "sent to another email address" in body and f"signed in as <strong>{role}@example.com" in body
        assert 'href="/login?add=1&amp;next=%2Finvitations%2Faccept%3Ftoken%3Dpending%2540example.com"' in body
        assert snapshot()[:3] == before[:3]
        assert AuditEvent.objects.filter(event=EventType.ORG_INVITATION_ACCEPT_FAILED, actor_id=world.uid(role),
                                         organization_id=world.org.pk).get().context["reason"] == (
            "invitation_email_mismatch")
    anonymous = Client(HTTP_USER_AGENT=CHROME_LINUX)
    for response in (anonymous.get("/invitations/accept?token=pending@example.com"),
                     anonymous.post("/invitations/accept", {"token": "pending@example.com"})):
        body = response.content.decode()
        assert response.status_code == 200 and "Sign in to accept" in body
        assert 'href="/login?next=%2Finvitations%2Faccept%3Ftoken%3Dpending%2540example.com"' in body
    world.invitation.refresh_from_db()
    assert world.invitation.accepted_at is None and world.invitation.revoked_at is None

    invited = UserFactory(email="pending@example.com")
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    # Signing in from the link comes back to it, token and all.
    login = client.post("/login", {"email": invited.email, "password": PASSWORD,
                                   "next": "/invitations/accept?token=pending%40example.com"})
    assert login["Location"] == "/invitations/accept?token=pending%40example.com"
    response = client.post("/invitations/accept", {"token": "pending@example.com"})
    assert response.status_code == 302 and response["Location"] == f"/organizations/{world.org.pk}?done=joined"
    assert Membership.objects.get(organization=world.org, user=invited).role == OrgRole.MEMBER
    row = org_audit(EventType.ORG_INVITATION_ACCEPTED, world.org).get()
    assert row.actor_id == invited.pk
    assert "You joined the organization" in client.get(response["Location"]).content.decode()
    again = client.post("/invitations/accept", {"token": "pending@example.com"})  # single use
    assert again.status_code == 400 and "invalid" in again.content.decode()


def test_accept_expired_revoked_and_unknown_links(world):
    invited = UserFactory(email="pending@example.com")
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    page_login(client, invited.email)
    Invitation.objects.filter(pk=world.invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post("/invitations/accept", {"token": "pending@example.com"})
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert client.post("/invitations/accept", {"token": "nope"}).status_code == 400
    assert client.post("/invitations/accept", {}).status_code == 400
    assert client.post("/invitations/accept", {"token": "x" * 600}).status_code == 400
    no_token = client.get("/invitations/accept")
    assert no_token.status_code == 200 and "Open the link from the invitation email" in no_token.content.decode()
    assert not Membership.objects.filter(user=invited).exists()


def test_accept_by_someone_already_a_member_is_409(world):
    _invite(world.org, "member2@example.com")
    response = world.client("member2").post("/invitations/accept", {"token": "member2@example.com"})
    assert response.status_code == 409 and role_of(world, "member2") == OrgRole.MEMBER


# --- IDOR: every id in a path is looked up inside the organization of the path -------------------------------
@pytest.mark.parametrize("path, data", [
    ("/organizations/{org}/members/{other_owner}/role", {"role": "member"}),
    ("/organizations/{org}/members/{outsider}/role", {"role": "admin"}),
    ("/organizations/{org}/members/{other_owner}/remove", {}),
    ("/organizations/{org}/members/{outsider}/remove", {}),
    ("/organizations/{org}/invitations/{other_invitation}/revoke", {}),
])
def test_ids_from_another_organization_are_404_and_change_nothing(world, path, data):
    client = world.client("owner")
    before = snapshot()
    response = client.post(path.format(org=world.org.pk, other_invitation=world.other_invitation.pk,
                                       **{label: user.pk for label, user in world.users.items()}), data)
    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("path, data", [
    ("/organizations/{other}", None),
    ("/organizations/{other}/delete", None),
    ("/organizations/{other}/rename", {"name": "Mine now"}),
    ("/organizations/{other}/rename", {"name": ""}),  # a bad form does not tell an outsider more
    ("/organizations/{other}/policy", {"idle_timeout_minutes": "15"}),
    ("/organizations/{other}/policy", {"idle_timeout_minutes": "x"}),
    ("/organizations/{other}/delete", {"confirm": "on"}),
    ("/organizations/{other}/members/{outsider}/role", {"role": "owner"}),
    ("/organizations/{other}/members/{outsider}/role", {"role": "boss"}),
    ("/organizations/{other}/members/{other_owner}/remove", {}),
    ("/organizations/{other}/invitations", {"email": "x@example.com", "role": "member"}),
    ("/organizations/{other}/invitations", {"email": "not an email"}),
    ("/organizations/{other}/invitations/{other_invitation}/revoke", {}),
    ("/organizations/00000000-0000-0000-0000-000000000000", None),
    ("/organizations/00000000-0000-0000-0000-000000000000/rename", {"name": "x"}),
])
def test_an_organization_i_am_not_in_is_404_for_every_page(world, path, data):
    client = world.client("owner")  # owner of Acme, not in Other
    before = snapshot()
    url = path.format(other=world.other.pk, other_invitation=world.other_invitation.pk,
                      **{label: user.pk for label, user in world.users.items()})
    response = client.get(url) if data is None else client.post(url, data)
    assert response.status_code == 404
    body = response.content.decode()
    assert "Other" not in body and "outsider@example.com" not in body
    assert snapshot() == before


def test_a_path_that_is_not_a_uuid_is_404(world):
    client = world.client("owner")
    for path in ("/organizations/acme", "/organizations/1/rename", f"/organizations/{world.org.pk}/members/1/role"):
        assert client.post(path, {"role": "admin", "name": "x"}).status_code == 404


# --- CSRF --------------------------------------------------------------------------------------------------
def test_every_post_needs_the_csrf_token(world):
    client = Client(HTTP_USER_AGENT=CHROME_LINUX, enforce_csrf_checks=True)
    client.get("/login")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert client.post("/login", {"email": "owner@example.com", "password": PASSWORD,
                                  "csrfmiddlewaretoken": token}).status_code == 302
    before = snapshot()
    posts = [(_path(world, template), data) for template, data, _, _ in ACTIONS.values()]
    posts += [("/organizations", {"name": "Forged"}), ("/organizations/switch", {"organization": str(world.org.pk)}),
              ("/invitations/accept", {"token": "pending@example.com"})]
    for path, data in posts:
        response = client.post(path, data)
        assert response.status_code == 403, path
    assert snapshot() == before
    assert DeviceSession.objects.get(user=world.users["owner"]).active_organization_id is None
    # The forms carry the token, and with it the same request works.
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    page = client.get(f"/organizations/{world.org.pk}").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 10
    response = client.post(f"/organizations/{world.org.pk}/rename", {"name": "Renamed Ltd", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    _renamed(world, world.users["owner"])


# --- bad input: a 4xx page, and nothing half-written ------------------------------------------------------------
@pytest.mark.parametrize("path, data, status, text", [
    ("/organizations", {}, 400, "This field is required."),
    ("/organizations", {"name": "   "}, 400, "This field is required."),
    ("/organizations", {"name": "x" * 101}, 400, "at most 100 characters"),
    ("/organizations", {"name": "x" * 100_000}, 400, "at most 100 characters"),
    ("/organizations", {"name": "Line\nbreak"}, 400, "control characters"),
    ("/organizations", {"name": "Null\x00byte"}, 400, "Null characters are not allowed."),
    ("/organizations", {"name": "Acme", "slug": "Not A Slug"}, 400, "single hyphens"),
    ("/organizations", {"name": "Acme", "slug": "acme"}, 409, "This slug is already in use."),
    ("/organizations/{org}/rename", {}, 400, "This field is required."),
    ("/organizations/{org}/rename", {"name": "x" * 5000}, 400, "at most 100 characters"),
    ("/organizations/{org}/rename", {"name": "Acme", "slug": "other"}, 409, "This slug is already in use."),
    ("/organizations/{org}/rename", {"name": "Acme", "slug": "-bad-"}, 400, "single hyphens"),
    ("/organizations/{org}/policy", {"idle_timeout_minutes": "ten"}, 400, "Enter a whole number."),
    ("/organizations/{org}/policy", {"idle_timeout_minutes": "1"}, 400, "Must be between 5 and 43200 minutes"),
    ("/organizations/{org}/policy", {"max_lifetime_minutes": "200000"}, 400, "Must be between 5 and 129600 minutes"),
    ("/organizations/{org}/policy", {"max_lifetime_minutes": "-5"}, 400, "Enter a whole number."),  # ASCII digits only
    ("/organizations/{org}/members/{member2}/role", {"role": "boss"}, 400, "Choose one of the roles"),
    ("/organizations/{org}/members/{member2}/role", {}, 400, "Choose one of the roles"),
    ("/organizations/{org}/members/{member2}/role", {"role": "ADMIN"}, 400, "Choose one of the roles"),
    ("/organizations/{org}/invitations", {"email": "not an email", "role": "member"}, 400, "valid email"),
    ("/organizations/{org}/invitations", {"email": "x@example.com", "role": "boss"}, 400, "valid choice"),
    ("/organizations/{org}/invitations", {"role": "member"}, 400, "This field is required."),
    ("/organizations/{org}/invitations", {"email": "x" * 300 + "@example.com"}, 400, "at most 254"),
    ("/organizations/{org}/invitations", {"email": "member2@example.com", "role": "member"}, 409,
     "already a member"),
    ("/organizations/{org}/delete", {}, 400, "This field is required."),
    ("/organizations/switch", {"organization": "not-a-uuid"}, 400, "Choose one of your organizations"),
])
def test_bad_input_is_a_4xx_page_and_changes_nothing(world, path, data, status, text):
    client = world.client("owner")
    before = snapshot()
    response = client.post(path.format(org=world.org.pk, **{label: u.pk for label, u in world.users.items()}), data)
    body = response.content.decode()
    assert response.status_code == status and text in body, (response.status_code, body[-3000:])
    assert "<!doctype html>" in body  # a page, not a stack trace
    assert snapshot() == before
    assert len(mail.outbox) == 0


def test_unicode_names_are_kept_and_slugged(world):
    client = world.client("member")
    response = client.post("/organizations", {"name": "  Café Zürich 🚀 "})
    org = Organization.objects.get(pk=response["Location"].split("/")[2].split("?")[0])
    assert (org.name, org.slug) == ("Café Zürich 🚀", "cafe-zurich")
    assert "Café Zürich 🚀" in client.get(f"/organizations/{org.pk}").content.decode()
    only_symbols = client.post("/organizations", {"name": "東京"})
    assert Organization.objects.get(pk=only_symbols["Location"].split("/")[2].split("?")[0]).slug == "org"


def test_html_in_names_is_escaped(world):
    client = world.client("owner")
    client.post(f"/organizations/{world.org.pk}/rename", {"name": "<script>alert(1)</script>"})
    body = client.get(f"/organizations/{world.org.pk}").content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


# --- rules the services keep, seen through the pages ---------------------------------------------------------------
def test_the_last_owner_can_neither_step_down_nor_leave(world):
    Membership.objects.filter(organization=world.org, user=world.users["owner2"]).delete()
    client = world.client("owner")
    before = snapshot()
    for path, data in ((f"/organizations/{world.org.pk}/members/{world.uid('owner')}/role", {"role": "admin"}),
                       (f"/organizations/{world.org.pk}/members/{world.uid('owner')}/remove", {})):
        response = client.post(path, data)
        assert response.status_code == 409 and "at least one owner" in response.content.decode()
    assert snapshot() == before


def test_leaving_goes_back_to_the_list(world):
    client = world.client("member")
    response = client.post(f"/organizations/{world.org.pk}/members/{world.uid('member')}/remove")
    assert response.status_code == 302 and response["Location"] == "/organizations?done=left"
    assert role_of(world, "member") is None
    row = org_audit(EventType.ORG_MEMBER_REMOVED, world.org).get()
    assert row.context["left"] is True
    assert client.get(f"/organizations/{world.org.pk}").status_code == 404


def test_removing_a_member_ends_their_active_organization(world):
    member = world.client("member2")
    member.post("/organizations/switch", {"organization": str(world.org.pk)})
    assert DeviceSession.objects.get(user=world.users["member2"]).active_organization_id == world.org.pk
    world.client("admin").post(f"/organizations/{world.org.pk}/members/{world.uid('member2')}/remove")
    assert DeviceSession.objects.get(user=world.users["member2"]).active_organization_id is None


def test_revoking_twice_is_409(world):
    client = world.client("admin")
    path = f"/organizations/{world.org.pk}/invitations/{world.invitation.pk}/revoke"
    assert client.post(path).status_code == 302
    before = snapshot()
    assert client.post(path).status_code == 409
    assert snapshot() == before


def test_policy_in_minutes_keeps_exact_seconds_set_through_the_api(world):
    Organization.objects.filter(pk=world.org.pk).update(max_session_lifetime_seconds=1000)  # 16.7 minutes
    client = world.client("owner")
    page = client.get(f"/organizations/{world.org.pk}").content.decode()
    assert 'name="max_lifetime_minutes" value="17"' in page
    client.post(f"/organizations/{world.org.pk}/policy", {"max_lifetime_minutes": "17", "idle_timeout_minutes": "30"})
    world.org.refresh_from_db()
    assert (world.org.max_session_lifetime_seconds, world.org.idle_timeout_seconds) == (1000, 1800)
    client.post(f"/organizations/{world.org.pk}/policy", {"max_lifetime_minutes": "", "idle_timeout_minutes": ""})
    world.org.refresh_from_db()
    assert not world.org.has_session_policy


def test_switching_into_an_organization_whose_policy_this_session_exceeds_is_refused(world):
    client = world.client("member")
    Organization.objects.filter(pk=world.org.pk).update(max_session_lifetime_seconds=300)
    DeviceSession.objects.filter(user=world.users["member"]).update(
        created_at=timezone.now() - timedelta(hours=1))
    response = client.post("/organizations/switch", {"organization": str(world.org.pk)})
    assert response.status_code == 403 and "Sign in again" in response.content.decode()
    assert DeviceSession.objects.get(user=world.users["member"]).active_organization_id is None


def test_switch_next_cannot_leave_the_site(world):
    response = world.client("member").post("/organizations/switch", {"organization": str(world.org.pk),
                                                                     "next": "https://evil.example/"})
    assert response["Location"] == "/organizations?done=switched"


# --- deleting an organization needs a recent password entry (step-up) ---------------------------------------------
def test_delete_needs_step_up_and_comes_back(world):
    client = world.client("owner")
    DeviceSession.objects.filter(user=world.users["owner"]).update(
        reauthenticated_at=timezone.now() - timedelta(hours=1))
    before = snapshot()
    delete = f"/organizations/{world.org.pk}/delete"
    for response in (client.get(delete), client.post(delete, {"confirm": "on"})):
        assert response.status_code == 302
        assert response["Location"] == "/account/reauthenticate?" + urlencode({"next": delete})
    assert snapshot() == before
    back = client.post("/account/reauthenticate", {"password": PASSWORD, "next": delete})
    assert back["Location"] == delete
    page = client.get(delete)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    response = client.post(delete, {"confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/organizations?done=deleted"
    _deleted(world, world.users["owner"])


# --- navigation --------------------------------------------------------------------------------------------------
def test_nav_links_the_organizations_page(signed_in):
    assert 'href="/organizations"' in signed_in.get("/account").content.decode()


# --- invitations addressed to me, on /organizations ---------------------------------------------------------
def _csrf_client(email):
    """A signed-in browser that enforces CSRF, as a real one does; returns (client, csrf token)."""
    client = Client(HTTP_USER_AGENT=CHROME_LINUX, enforce_csrf_checks=True)
    client.get("/login")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert client.post("/login", {"email": email, "password": PASSWORD, "csrfmiddlewaretoken": token}).status_code == 302
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_organizations_lists_my_pending_invitations(world):
    world.users["owner"].name = "Olga Owner"
    world.users["owner"].save()
    Invitation.objects.filter(pk=world.invitation.pk).update(inviter=world.users["owner"], role=OrgRole.ADMIN)
    expired = Invitation.objects.create(organization=world.other, email="pending@example.com", token_hash="e" * 64,
                                        expires_at=timezone.now() - timedelta(seconds=1))
    invited = UserFactory(email="pending@example.com")
    client, _ = _csrf_client(invited.email)
    body = client.get("/organizations").content.decode()
    assert "Invitations for you" in body
    assert f'<tr data-invitation="{world.invitation.pk}">' in body and f'data-invitation="{expired.pk}"' not in body
    assert "<td>Acme</td>" in body and "<td>Admin</td>" in body and "Olga Owner" in body
    assert f'action="/organizations/invitations/{world.invitation.pk}/accept"' in body
    assert f'action="/organizations/invitations/{world.invitation.pk}/decline"' in body
    assert body.count('name="csrfmiddlewaretoken"') >= 4
    # Nobody else sees it; an unverified account sees nothing.
    for label in ("owner", "outsider"):
        assert "Invitations for you" not in world.client(label).get("/organizations").content.decode()
    User.objects.filter(pk=invited.pk).update(email_verified_at=None)
    assert "Invitations for you" not in client.get("/organizations").content.decode()


def test_accept_from_the_list(world):
    invited = UserFactory(email="pending@example.com")
    client, token = _csrf_client(invited.email)
    path = f"/organizations/invitations/{world.invitation.pk}/accept"
    before = snapshot()
    assert client.post(path).status_code == 403  # no CSRF token
    assert snapshot() == before
    response = client.post(path, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == f"/organizations/{world.org.pk}?done=joined"
    assert Membership.objects.get(organization=world.org, user=invited).role == OrgRole.MEMBER
    world.invitation.refresh_from_db()
    assert world.invitation.accepted_at is not None
    assert org_audit(EventType.ORG_INVITATION_ACCEPTED, world.org).get().actor_id == invited.pk
    assert "Invitations for you" not in client.get("/organizations").content.decode()
    again = client.post(path, {"csrfmiddlewaretoken": token})
    assert again.status_code == 400 and "invalid" in again.content.decode()


def test_decline_from_the_list(world):
    invited = UserFactory(email="pending@example.com")
    client, token = _csrf_client(invited.email)
    path = f"/organizations/invitations/{world.invitation.pk}/decline"
    before = snapshot()
    assert client.post(path).status_code == 403  # no CSRF token
    assert snapshot() == before
    response = client.post(path, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/organizations?done=declined"
    world.invitation.refresh_from_db()
    assert world.invitation.revoked_at is not None and world.invitation.accepted_at is None
    assert not Membership.objects.filter(user=invited).exists()
    assert org_audit(EventType.ORG_INVITATION_DECLINED, world.org).get().actor_id == invited.pk
    page = client.get("/organizations?done=declined").content.decode()
    assert "The invitation is declined." in page and "Invitations for you" not in page
    # The organization no longer lists it as pending.
    assert str(world.invitation.pk) not in world.client("owner").get(f"/organizations/{world.org.pk}").content.decode()


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_someone_elses_invitation_id_is_404_and_changes_nothing(world, action):
    UserFactory(email="pending@example.com")  # the invited person exists, but it is not them signing in
    for label in ("owner", "admin", "member", "outsider"):
        before = snapshot()
        client = world.client(label)
        for invitation in (world.invitation, world.other_invitation):
            response = client.post(f"/organizations/invitations/{invitation.pk}/{action}")
            assert response.status_code == 404, (label, invitation)
            assert "pending@example.com" not in response.content.decode()
        assert snapshot()[:3] == before[:3]
    assert world.client("anonymous").post(f"/organizations/invitations/{world.invitation.pk}/accept").status_code == 302
    assert world.client("owner").post("/organizations/invitations/1/accept").status_code == 404
    assert world.client("owner").get(f"/organizations/invitations/{world.invitation.pk}/accept").status_code == 405


def test_invitation_link_offers_sign_in_and_sign_up_to_visitors(world):
    body = Client(HTTP_USER_AGENT=CHROME_LINUX).get("/invitations/accept?token=pending@example.com").content.decode()
    assert "Sign in to accept" in body and 'href="/register"' in body and "Create an account" in body
    assert "under <strong>Organizations</strong>" in body


def test_register_verify_sign_in_and_accept_from_the_list(world):
    """The whole way for someone without an account: the invitation mail, /register (no next=), the
    verification mail, sign in, and the invitation waits on /organizations."""
    owner, owner_csrf = _csrf_client("owner@example.com")
    response = owner.post(f"/organizations/{world.org.pk}/invitations",
                          {"email": "new@example.com", "role": "admin", "csrfmiddlewaretoken": owner_csrf})
    assert response.status_code == 302
    assert "/invitations/accept?token=" in last_mail_to("new@example.com").body

    browser = Client(HTTP_USER_AGENT=CHROME_LINUX, enforce_csrf_checks=True)
    browser.get("/register")
    csrf = browser.cookies[settings.CSRF_COOKIE_NAME].value
    response = browser.post("/register", {"name": "Nia New", "email": "New@Example.com", "password": PASSWORD,
                                          "csrfmiddlewaretoken": csrf})
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    verify = last_mail_to("new@example.com")
    token = link_token(verify)
    assert "/verify-email?token=" in verify.body
    assert browser.get(f"/verify-email?token={token}").status_code == 200
    assert browser.post("/verify-email", {"token": token, "password": PASSWORD,
                                          "csrfmiddlewaretoken": csrf}).status_code == 200
    assert browser.post("/login", {"email": "new@example.com", "password": PASSWORD,
                                   "csrfmiddlewaretoken": csrf}).status_code == 302
    csrf = browser.cookies[settings.CSRF_COOKIE_NAME].value
    page = browser.get("/organizations").content.decode()
    invitation = Invitation.objects.get(email="new@example.com")
    assert "Invitations for you" in page and f'data-invitation="{invitation.pk}"' in page and "<td>Acme</td>" in page
    response = browser.post(f"/organizations/invitations/{invitation.pk}/accept", {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"] == f"/organizations/{world.org.pk}?done=joined"
    newcomer = User.objects.get(email="new@example.com")
    assert Membership.objects.get(organization=world.org, user=newcomer).role == OrgRole.ADMIN
    assert "You joined the organization" in browser.get(response["Location"]).content.decode()

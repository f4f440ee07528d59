"""One step-up rule (security/stepup.py): every ``SensitiveAction`` is refused with a stale session on
the API (403 ``reauthentication_required``) and on the page (to /account/reauthenticate and back),
changes nothing, is audited alike, and goes through once the password was entered again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from mfa.models import TotpDevice
from oidc_provider.models import OidcClient
from oidc_provider.services.clients import oidc_client_create
from orgs.models import Invitation, Membership, Organization, OrgRole
from security.stepup import SensitiveAction
from service_accounts.models import ServiceClient
from service_accounts.services import service_account_create
from sessions_app.models import DeviceSession
from sessions_app.services import session_create
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login

NEW_PASSWORD = "A-Brand-New-Passphrase-42"
ORGS = "/api/v1/orgs/"


def stale(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=2))


def fresh(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now())


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_create(user=user).access_token}")
    return client


def bearer_stale(user) -> APIClient:
    client = bearer(user)
    stale(user)
    return client


def browser(user) -> Client:
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return client


@dataclass
class Setup:
    actor: User
    org: Organization | None = None
    owner2: User | None = None
    member: User | None = None
    client: ServiceClient | None = None


def org_setup() -> Setup:
    actor, owner2, member = UserFactory(), UserFactory(), UserFactory()
    org = Organization.objects.create(name="Acme", slug=f"acme-{Organization.objects.count()}")
    for user, role in ((actor, OrgRole.OWNER), (owner2, OrgRole.OWNER), (member, OrgRole.MEMBER)):
        Membership.objects.create(user=user, organization=org, role=role)
    return Setup(actor=actor, org=org, owner2=owner2, member=member)


def role_of(s: Setup, user) -> str | None:
    return Membership.objects.filter(organization=s.org, user=user).values_list("role", flat=True).first()


@dataclass
class Case:
    """One sensitive action done one way: ``api``/``page`` do it (None: that surface has no such
    action), ``done`` says whether it happened, ``back`` is where the page returns after re-auth."""

    action: SensitiveAction
    name: str
    setup: Callable[[], Setup]
    done: Callable[[Setup], bool]
    api: Callable | None
    page: Callable | None
    back: Callable[[Setup], str]


CASES = [
    Case(SensitiveAction.PASSWORD_CHANGE, "change-password", lambda: Setup(actor=UserFactory()),
         lambda s: User.objects.get(pk=s.actor.pk).check_password(NEW_PASSWORD),
         lambda c, s: c.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                             format="json"),
         lambda c, s: c.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
         lambda s: "/account"),
    Case(SensitiveAction.EMAIL_CHANGE, "change-email", lambda: Setup(actor=UserFactory()),
         lambda s: AccountToken.objects.filter(user=s.actor, purpose=TokenPurpose.CHANGE_EMAIL).exists(),
         lambda c, s: c.post("/api/v1/auth/change-email", {"newEmail": "moved@example.com", "password": PASSWORD},
                             format="json"),
         lambda c, s: c.post("/account/email", {"new_email": "moved@example.com", "password": PASSWORD}),
         lambda s: "/account/email"),
    Case(SensitiveAction.ACCOUNT_DELETE, "delete-me", lambda: Setup(actor=UserFactory()),
         lambda s: not User.objects.filter(pk=s.actor.pk).exists(),
         lambda c, s: c.delete("/api/v1/auth/me"),
         lambda c, s: c.post("/account/delete", {"confirm": "on"}),
         lambda s: "/account/delete"),
    Case(SensitiveAction.ORG_DELETE, "delete-organization", org_setup,
         lambda s: not Organization.objects.filter(pk=s.org.pk).exists(),
         lambda c, s: c.delete(f"{ORGS}{s.org.pk}"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/delete", {"confirm": "on"}),
         lambda s: f"/organizations/{s.org.pk}/delete"),
    Case(SensitiveAction.ORG_OWNERSHIP, "make-owner", org_setup,
         lambda s: role_of(s, s.member) == OrgRole.OWNER,
         lambda c, s: c.patch(f"{ORGS}{s.org.pk}/members/{s.member.pk}", {"role": "owner"}, format="json"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/members/{s.member.pk}/role", {"role": "owner"}),
         lambda s: f"/organizations/{s.org.pk}"),
    Case(SensitiveAction.ORG_OWNERSHIP, "demote-owner", org_setup,
         lambda s: role_of(s, s.owner2) == OrgRole.ADMIN,
         lambda c, s: c.patch(f"{ORGS}{s.org.pk}/members/{s.owner2.pk}", {"role": "admin"}, format="json"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/members/{s.owner2.pk}/role", {"role": "admin"}),
         lambda s: f"/organizations/{s.org.pk}"),
    Case(SensitiveAction.ORG_OWNERSHIP, "remove-owner", org_setup,
         lambda s: role_of(s, s.owner2) is None,
         lambda c, s: c.delete(f"{ORGS}{s.org.pk}/members/{s.owner2.pk}"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/members/{s.owner2.pk}/remove"),
         lambda s: f"/organizations/{s.org.pk}"),
    Case(SensitiveAction.ORG_OWNERSHIP, "leave-as-owner", org_setup,
         lambda s: role_of(s, s.actor) is None,
         lambda c, s: c.delete(f"{ORGS}{s.org.pk}/members/{s.actor.pk}"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/members/{s.actor.pk}/remove"),
         lambda s: f"/organizations/{s.org.pk}"),
    Case(SensitiveAction.ORG_OWNERSHIP, "invite-owner", org_setup,
         lambda s: Invitation.objects.filter(organization=s.org, role=OrgRole.OWNER).exists(),
         lambda c, s: c.post(f"{ORGS}{s.org.pk}/invitations", {"email": "heir@example.com", "role": "owner"},
                             format="json"),
         lambda c, s: c.post(f"/organizations/{s.org.pk}/invitations", {"email": "heir@example.com", "role": "owner"}),
         lambda s: f"/organizations/{s.org.pk}"),
    Case(SensitiveAction.MFA_CHANGE, "totp-setup", lambda: Setup(actor=UserFactory()),
         lambda s: TotpDevice.objects.filter(user=s.actor).exists(),
         lambda c, s: c.post("/api/v1/auth/mfa/totp/setup"),
         lambda c, s: c.post("/account/two-factor/setup"),
         lambda s: "/account/two-factor"),
    # Service accounts are managed by staff in the Django admin (and by `manage.py create_service_account`,
    # which has no session to be stale): there is no API for it, so the admin page is the one surface.
    Case(SensitiveAction.SERVICE_ACCOUNT_SECRET, "admin-create", lambda: Setup(actor=UserFactory(is_staff=True,
                                                                                                 is_superuser=True)),
         lambda s: ServiceClient.objects.filter(name="indexer").exists(),
         None,
         lambda c, s: c.post("/admin/service_accounts/serviceclient/add/", {"name": "indexer"}),
         lambda s: "/admin/service_accounts/serviceclient/add/"),
    Case(SensitiveAction.SERVICE_ACCOUNT_SECRET, "admin-rotate",
         lambda: Setup(actor=UserFactory(is_staff=True, is_superuser=True),
                       client=service_account_create(name="billing").client),
         lambda s: ServiceClient.objects.get(pk=s.client.pk).secret_version > 1,
         None,
         lambda c, s: c.post("/admin/service_accounts/serviceclient/",
                             {"action": "rotate_secret", "_selected_action": [str(s.client.pk)]}),
         lambda s: "/admin/service_accounts/serviceclient/"),
    # OpenID Connect clients likewise (issue 13): registering a confidential one, rotating its secret.
    Case(SensitiveAction.OIDC_CLIENT_SECRET, "admin-oidc-create",
         lambda: Setup(actor=UserFactory(is_staff=True, is_superuser=True)),
         lambda s: OidcClient.objects.filter(name="grafana").exists(),
         None,
         lambda c, s: c.post("/admin/oidc_provider/oidcclient/add/", {
             "name": "grafana", "redirect_uris": "https://grafana.example.com/login/generic_oauth",
             "allowed_scopes": ["openid", "email"], "id_token_alg": "RS256"}),
         lambda s: "/admin/oidc_provider/oidcclient/add/"),
    Case(SensitiveAction.OIDC_CLIENT_SECRET, "admin-oidc-rotate",
         lambda: Setup(actor=UserFactory(is_staff=True, is_superuser=True),
                       client=oidc_client_create(name="wiki", redirect_uris=["https://wiki.example.com/cb"]).client),
         lambda s: OidcClient.objects.get(pk=s.client.pk).rotated_at is not None,
         None,
         lambda c, s: c.post("/admin/oidc_provider/oidcclient/",
                             {"action": "rotate_secret", "_selected_action": [str(s.client.pk)]}),
         lambda s: "/admin/oidc_provider/oidcclient/"),
]
SURFACES = [(case, surface) for case in CASES for surface in ("api", "page") if getattr(case, surface)]


def refusals(user, action):
    return AuditEvent.objects.filter(event=EventType.REAUTHENTICATION_REQUIRED, actor_id=user.pk,
                                     context__step_up=action.value)


@pytest.mark.parametrize(("case", "surface"), SURFACES, ids=[f"{c.name}-{s}" for c, s in SURFACES])
def test_a_stale_session_is_refused_then_the_action_works_after_reauth(case, surface):
    s = case.setup()
    client = bearer(s.actor) if surface == "api" else browser(s.actor)
    act = getattr(case, surface)
    stale(s.actor)

    response = act(client, s)
    if surface == "api":
        assert response.status_code == 403, response.content
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == "reauthentication_required"
    else:
        assert response.status_code == 302, response.content[:300]
        assert response["Location"].startswith("/account/reauthenticate?next=")
        assert parse_qs(urlsplit(response["Location"]).query)["next"] == [case.back(s)]
    assert not case.done(s)
    assert refusals(s.actor, case.action).count() == 1  # audited alike, naming the action
    row = refusals(s.actor, case.action).get()
    assert not row.success and row.session_id is not None

    fresh(s.actor)  # what POST reauthenticate (or /account/reauthenticate) does
    response = act(client, s)
    assert response.status_code < 400 and not response.get("Location", "").startswith("/account/reauthenticate"), \
        (response.status_code, response.content[:300])
    assert case.done(s)


def test_every_sensitive_action_is_covered_on_every_surface_it_has():
    assert {case.action for case in CASES} == set(SensitiveAction)
    # Each one the API offers is refused there as on the page (service accounts: admin only, above).
    api_less = {case.action for case in CASES if case.api is None}
    assert api_less == {SensitiveAction.SERVICE_ACCOUNT_SECRET, SensitiveAction.OIDC_CLIENT_SECRET}
    assert all(case.page is not None for case in CASES)


def test_the_reauth_page_brings_the_browser_back_and_the_org_deletion_goes_through():
    s = org_setup()
    web = browser(s.actor)
    stale(s.actor)
    asked = web.get(f"/organizations/{s.org.pk}/delete")
    assert asked.status_code == 302
    back = web.post("/account/reauthenticate", {"password": PASSWORD, "next": f"/organizations/{s.org.pk}/delete"})
    assert back.status_code == 302 and back["Location"] == f"/organizations/{s.org.pk}/delete"
    assert web.get(back["Location"]).status_code == 200
    assert web.post(f"/organizations/{s.org.pk}/delete", {"confirm": "on"}).status_code == 302
    assert not Organization.objects.filter(pk=s.org.pk).exists()


# --- what is not sensitive, and the order of answers ----------------------------------------------------
def test_everyday_organization_work_needs_no_step_up():
    s = org_setup()
    admin = UserFactory()
    Membership.objects.create(user=admin, organization=s.org, role=OrgRole.ADMIN)
    client = bearer(s.actor)
    stale(s.actor)
    assert client.patch(f"{ORGS}{s.org.pk}", {"name": "Acme 2"}, format="json").status_code == 200
    assert client.patch(f"{ORGS}{s.org.pk}/members/{admin.pk}", {"role": "member"}, format="json").status_code == 200
    assert client.patch(f"{ORGS}{s.org.pk}/members/{admin.pk}", {"role": "admin"}, format="json").status_code == 200
    assert client.post(f"{ORGS}{s.org.pk}/invitations", {"email": "new@example.com"}, format="json").status_code == 201
    assert client.delete(f"{ORGS}{s.org.pk}/members/{s.member.pk}").status_code == 204
    assert client.post("/api/v1/auth/sessions/revoke-others").status_code == 204
    assert not AuditEvent.objects.filter(event=EventType.REAUTHENTICATION_REQUIRED).exists()


def test_outsiders_and_lower_roles_get_their_own_answer_first():
    """404 for a non-member and 403 for a role that may not act come before the step-up question,
    so a stale session learns nothing more and is not sent to re-authenticate for nothing."""
    s = org_setup()
    outsider, admin = UserFactory(), UserFactory()
    Membership.objects.create(user=admin, organization=s.org, role=OrgRole.ADMIN)
    assert bearer_stale(outsider).delete(f"{ORGS}{s.org.pk}").status_code == 404
    response = bearer_stale(admin).delete(f"{ORGS}{s.org.pk}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    response = bearer_stale(admin).patch(f"{ORGS}{s.org.pk}/members/{s.member.pk}", {"role": "owner"}, format="json")
    assert response.json()["error"]["code"] == "permission_denied"
    assert not AuditEvent.objects.filter(event=EventType.REAUTHENTICATION_REQUIRED).exists()


def test_a_last_owner_is_told_409_before_being_asked_to_reauthenticate():
    s = org_setup()
    Membership.objects.filter(organization=s.org, user=s.owner2).delete()
    response = bearer_stale(s.actor).patch(f"{ORGS}{s.org.pk}/members/{s.actor.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "last_owner"


def test_an_owner_invitation_refused_for_step_up_spends_no_invitation_budget(settings):
    s = org_setup()
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"],
                                                              "invitation_inviter": "1/h"}}
    client = bearer_stale(s.actor)
    for _ in range(3):
        response = client.post(f"{ORGS}{s.org.pk}/invitations", {"email": "heir@example.com", "role": "owner"},
                               format="json")
        assert response.json()["error"]["code"] == "reauthentication_required"
    fresh(s.actor)
    assert client.post(f"{ORGS}{s.org.pk}/invitations", {"email": "heir@example.com", "role": "owner"},
                       format="json").status_code == 201


def test_a_command_has_no_session_to_step_up():
    """Services called without a request (management commands, internal calls) are not interactive."""
    from orgs.services import organization_delete

    s = org_setup()
    organization_delete(user=s.actor, organization_id=s.org.pk)
    assert not Organization.objects.filter(pk=s.org.pk).exists()

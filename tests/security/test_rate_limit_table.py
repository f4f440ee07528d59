"""The table of every rate-limit scope (security/app_settings.py, docs/security.md "Rate limits"):
each row is driven to its limit with the production rates, through the API and, where the row has
one, the page. Over the limit: 429, ``Retry-After`` within the window, the one error envelope (or the
page), and a ``security.rate_limited`` audit row naming the scope."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent, EventType
from orgs.models import Invitation, Membership, Organization, OrgRole
from security.app_settings import DEFAULT_RATE_LIMITS
from sessions_app.services import session_create
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login
from web.app_settings import app_settings as web_settings

from .conftest import post_login

pytestmark = pytest.mark.usefixtures("real_rate_limits", "one_rate_limit_window")


@pytest.fixture
def one_rate_limit_window(monkeypatch):
    """django-ratelimit counts in fixed windows of the wall clock; a row driven slowly (101 requests on a
    loaded CI machine) could straddle a window's end and see its counter start again. Its clock stands
    still for the test, so every request of a row falls in one window (the rest of the process keeps
    the real time)."""
    import django_ratelimit.core

    frozen = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: frozen))

AUTH = "/api/v1/auth/"
WRONG = "Wrong-Password-123456"
NEW_PASSWORD = "A-Brand-New-Passphrase-42"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(rate: str) -> int:
    count, period = rate.split("/")
    number, unit = re.fullmatch(r"(\d*)([smhd])", period).groups()
    return int(number or 1) * UNITS[unit]


def bearer(user) -> APIClient:
    """A bearer client of a fresh device session (no login: the login scope is not spent)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_create(user=user).access_token}")
    return client


def page_client(user) -> Client:
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, user.email).status_code == 302
    return client


def drive(send, allowed: int):
    """``allowed`` requests that must pass the limit (whatever else they answer), then the refused one."""
    for i in range(allowed):
        response = send(i)
        assert response.status_code != 429, (i, response.status_code, response.content[:300])
    return send(allowed)


def organization(*owners_and_admins):
    org = Organization.objects.create(name="Acme", slug=f"acme-{Organization.objects.count()}")
    for user, role in owners_and_admins:
        Membership.objects.create(user=user, organization=org, role=role)
    return org


# --- one driver per row and surface: (scope, surface) -> function returning the refused response ---------
def login_api(api):
    user = UserFactory()
    return drive(lambda i: post_login(api, user.email), 5)


def login_page(api):
    user = UserFactory()
    return drive(lambda i: Client(HTTP_USER_AGENT=CHROME).post("/login", {"email": user.email, "password": PASSWORD}),
                 5)


def register_api(api):
    return drive(lambda i: api.post(AUTH + "register", {"email": f"r{i}@example.com", "password": PASSWORD},
                                    format="json"), 10)


def register_b2b_api(api):
    return drive(lambda i: api.post(AUTH + "register-b2b", {"email": f"b{i}@example.com", "password": PASSWORD,
                                                            "name": "B", "organizationName": f"Biz {i}"},
                                    format="json"), 10)


def register_page(api):
    web = Client()
    return drive(lambda i: web.post("/register", {"email": f"p{i}@example.com", "password": PASSWORD}), 10)


def register_shared_api_and_page(api):
    """One budget per client for creating accounts: register, register-b2b and the page together."""
    web = Client()
    sends = [lambda i: api.post(AUTH + "register", {"email": f"s{i}@example.com", "password": PASSWORD},
                                format="json"),
             lambda i: api.post(AUTH + "register-b2b", {"email": f"s{i}@example.com", "password": PASSWORD,
                                                        "organizationName": "Biz"}, format="json"),
             lambda i: web.post("/register", {"email": f"s{i}@example.com", "password": PASSWORD})]
    return drive(lambda i: sends[i % 3](i), 10)


def forgot_password_api(api):
    return drive(lambda i: api.post(AUTH + "forgot-password", {"email": f"f{i}@example.com"}, format="json"), 3)


def forgot_password_page(api):
    web = Client()
    return drive(lambda i: web.post("/forgot-password", {"email": f"f{i}@example.com"}), 3)


def resend_verification_api(api):
    return drive(lambda i: api.post(AUTH + "resend-verification", {"email": f"v{i}@example.com"}, format="json"), 3)


def resend_verification_page(api):
    web = Client()
    return drive(lambda i: web.post("/verify-email/resend", {"email": f"v{i}@example.com"}), 3)


def mail_address_api(api):
    """Every endpoint that mails a typed-in address spends that address's share of the network:
    register, resend-verification and forgot-password together (each from its own IP of one /24, so
    no per-IP scope is reached)."""
    paths = ["register", "resend-verification", "forgot-password"]
    return drive(lambda i: api.post(AUTH + paths[i % 3], {"email": "target@example.com", "password": PASSWORD},
                                    format="json", REMOTE_ADDR=f"198.51.100.{i + 1}"), 5)


def mail_address_page(api):
    return drive(lambda i: Client(REMOTE_ADDR=f"198.51.100.{i + 1}").post(
        "/forgot-password", {"email": "target@example.com"}), 5)


def mail_address_change_email_api(api):
    """change-email's new address is typed in too: strangers' accounts cannot flood it."""
    def send(i):
        user = UserFactory()
        return bearer(user).post(AUTH + "change-email", {"newEmail": "target@example.com"}, format="json",
                                 REMOTE_ADDR=f"198.51.100.{i + 1}")
    return drive(send, 5)


def mail_address_total_api(api):
    """25 from five networks (five each, their whole share), then a sixth network is refused."""
    return drive(lambda i: api.post(AUTH + "forgot-password", {"email": "target@example.com"}, format="json",
                                    REMOTE_ADDR=f"10.0.{i // 5}.{i % 5 + 1}"), 25)


def reset_password_api(api):
    return drive(lambda i: api.post(AUTH + "reset-password", {"token": f"bad-{i}", "password": NEW_PASSWORD},
                                    format="json"), 10)


def reset_password_page(api):
    web = Client()
    return drive(lambda i: web.post("/reset-password", {"token": f"bad-{i}", "password": NEW_PASSWORD}), 10)


def change_email_api(api):
    client = bearer(UserFactory())
    return drive(lambda i: client.post(AUTH + "change-email", {"newEmail": f"new{i}@example.com"}, format="json"), 3)


def change_email_page(api):
    web = page_client(UserFactory())
    return drive(lambda i: web.post("/account/email", {"new_email": f"new{i}@example.com"}), 3)


def change_password_api(api):
    client = bearer(UserFactory())
    return drive(lambda i: client.post(AUTH + "change-password", {"currentPassword": WRONG,
                                                                  "newPassword": NEW_PASSWORD}, format="json"), 5)


def change_password_page(api):
    web = page_client(UserFactory())
    return drive(lambda i: web.post("/account/password", {"current_password": WRONG,
                                                          "new_password": NEW_PASSWORD}), 5)


def change_password_shared_api_and_page(api):
    """The page and the API spend one per-user budget."""
    user = UserFactory()
    client, web = bearer(user), page_client(user)
    def send(i):
        if i % 2:
            return client.post(AUTH + "change-password", {"currentPassword": WRONG, "newPassword": NEW_PASSWORD},
                               format="json")
        return web.post("/account/password", {"current_password": WRONG, "new_password": NEW_PASSWORD})
    return drive(send, 5)


def reauthenticate_api(api):
    client = bearer(UserFactory())
    return drive(lambda i: client.post(AUTH + "reauthenticate", {"password": WRONG}, format="json"), 5)


def reauthenticate_page(api):
    web = page_client(UserFactory())
    return drive(lambda i: web.post("/account/reauthenticate", {"password": WRONG}), 5)


def invitation_org_api(api):
    """50 an hour per organization, whoever sends them (each inviter stays under their own 20)."""
    inviters = [UserFactory() for _ in range(3)]
    org = organization(*((u, OrgRole.ADMIN) for u in inviters))
    clients = [bearer(u) for u in inviters]
    return drive(lambda i: clients[i // 20].post(f"/api/v1/orgs/{org.pk}/invitations",
                                                 {"email": f"guest{i}@example.com"}, format="json"), 50)


def invitation_inviter_api(api):
    owner = UserFactory()
    org = organization((owner, OrgRole.OWNER))
    client = bearer(owner)
    return drive(lambda i: client.post(f"/api/v1/orgs/{org.pk}/invitations", {"email": f"guest{i}@example.com"},
                                       format="json"), 20)


def invitation_inviter_page(api):
    owner = UserFactory()
    org = organization((owner, OrgRole.OWNER))
    web = page_client(owner)
    return drive(lambda i: web.post(f"/organizations/{org.pk}/invitations",
                                    {"email": f"guest{i}@example.com", "role": "member"}), 20)


def invitation_recipient_api(api):
    """5 an hour per address, from however many organizations."""
    clients = []
    for _ in range(3):
        owner = UserFactory()
        clients.append((bearer(owner), organization((owner, OrgRole.OWNER))))
    return drive(lambda i: clients[i % 3][0].post(f"/api/v1/orgs/{clients[i % 3][1].pk}/invitations",
                                                  {"email": "popular@example.com"}, format="json"), 5)


def invitation_recipient_page(api):
    owner = UserFactory()
    org = organization((owner, OrgRole.OWNER))
    web = page_client(owner)
    return drive(lambda i: web.post(f"/organizations/{org.pk}/invitations",
                                    {"email": "popular@example.com", "role": "member"}), 5)


def service_token_api(api):
    return drive(lambda i: api.post(AUTH + "service-token", {"clientId": "svc_x", "clientSecret": f"mcs_{i}"},
                                    format="json"), 30)


def unlock_api(api):
    return drive(lambda i: api.post(AUTH + "unlock", {"token": f"bad-{i}"}, format="json"), 10)


def unlock_page(api):
    web = Client()
    return drive(lambda i: web.post("/account/unlock", {"token": f"bad-{i}"}), 10)


def not_me_api(api):
    return drive(lambda i: api.post(AUTH + "not-me", {"token": f"bad-{i}"}, format="json"), 10)


def not_me_page(api):
    web = Client()
    return drive(lambda i: web.post("/account/not-me", {"token": f"bad-{i}"}), 10)


def mfa_verify_api(api):
    return drive(lambda i: api.post(AUTH + "mfa/verify", {"mfaToken": f"mfa_bad{i}", "code": "123456"},
                                    format="json"), 10)


def mfa_verify_page(api):
    web = Client()
    web.cookies[web_settings.PENDING_COOKIE] = "mfa_bad"
    return drive(lambda i: web.post("/login/two-factor", {"code": "123456"}), 10)


def passkey_login_api(api):
    """Options and verify share the budget (a passwordless sign-in is both)."""
    def send(i):
        if i % 2:
            return api.post(AUTH + "passkeys/login/verify", {"ceremonyId": "00000000-0000-0000-0000-000000000000",
                                                             "credential": {}}, format="json")
        return api.post(AUTH + "passkeys/login/options")
    return drive(send, 20)


def passkey_login_page(api):
    web = Client()
    return drive(lambda i: web.post("/login/passkey", {"ceremony_id": "", "credential": "{}"}), 20)


def api_api(api):
    client = bearer(UserFactory())
    return drive(lambda i: client.get(AUTH + "me"), 100)


def api_page(api):
    """The organization pages' POSTs count against the API's per-client scope (the same operations)."""
    web = page_client(UserFactory())
    return drive(lambda i: web.post("/organizations/switch", {"organization": "not-a-uuid"}), 100)


def introspect_api(api):
    """6000 a minute per service account: the counter is brought to 5999 directly (the same key the
    throttle counts), then the 6000th request passes and the next one is refused."""
    from django.test import RequestFactory

    from security.ratelimit import ratelimit_hit
    from service_accounts.services import service_account_create

    created = service_account_create(name="resource-server")
    token = api.post(AUTH + "service-token", {"clientId": created.client.client_id,
                                              "clientSecret": created.client_secret}, format="json").json()
    request = RequestFactory().post("/")
    for _ in range(5999):
        ratelimit_hit(request=request, scope="introspect", value=f"service:{created.client.pk}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token['accessToken']}")
    return drive(lambda i: client.post(AUTH + "introspect", {"token": "x"}, format="json"), 1)


def _prefill(scope: str, count: int) -> None:
    """Bring the client IP's counter of ``scope`` near its limit directly (the key the endpoint counts), so the
    driven requests all fall into one fixed window however slow the machine is (as introspect_api does)."""
    from django.test import RequestFactory

    from security.ratelimit import ratelimit_hit

    request = RequestFactory().get("/")
    for _ in range(count):
        ratelimit_hit(request=request, scope=scope)


def oidc_authorize_page(api):
    """Every authorization request counts, whatever it answers (here: an unknown client's error page)."""
    _prefill("oidc_authorize", 55)
    web = Client()
    return drive(lambda i: web.get("/oidc/authorize", {"response_type": "code", "client_id": f"oidc_{i}"}), 5)


def oidc_token_api(api):
    """Token and revocation requests share one budget per client IP."""
    _prefill("oidc_token", 296)
    paths = ["/oidc/token", "/oidc/revoke"]
    return drive(lambda i: Client().post(paths[i % 2], {"grant_type": "authorization_code", "code": f"c{i}",
                                                         "token": "t", "client_id": "oidc_x",
                                                         "client_secret": f"s{i}"}), 4)


ROWS = [
    ("login", "api", login_api), ("login", "page", login_page),
    ("register", "api", register_api), ("register", "register-b2b", register_b2b_api),
    ("register", "page", register_page),
    ("register", "shared", register_shared_api_and_page),
    ("forgot_password", "api", forgot_password_api), ("forgot_password", "page", forgot_password_page),
    ("resend_verification", "api", resend_verification_api), ("resend_verification", "page", resend_verification_page),
    ("mail_address", "api", mail_address_api), ("mail_address", "page", mail_address_page),
    ("mail_address", "change-email", mail_address_change_email_api),
    ("mail_address_total", "api", mail_address_total_api),
    ("reset_password", "api", reset_password_api), ("reset_password", "page", reset_password_page),
    ("change_email", "api", change_email_api), ("change_email", "page", change_email_page),
    ("change_password", "api", change_password_api), ("change_password", "page", change_password_page),
    ("change_password", "shared", change_password_shared_api_and_page),
    ("mfa_verify", "api", mfa_verify_api), ("mfa_verify", "page", mfa_verify_page),
    ("passkey_login", "api", passkey_login_api), ("passkey_login", "page", passkey_login_page),
    ("reauthenticate", "api", reauthenticate_api), ("reauthenticate", "page", reauthenticate_page),
    ("invitation_org", "api", invitation_org_api),
    ("invitation_inviter", "api", invitation_inviter_api), ("invitation_inviter", "page", invitation_inviter_page),
    ("invitation_recipient", "api", invitation_recipient_api),
    ("invitation_recipient", "page", invitation_recipient_page),
    ("service_token", "api", service_token_api),
    ("unlock", "api", unlock_api), ("unlock", "page", unlock_page),
    ("not_me", "api", not_me_api), ("not_me", "page", not_me_page),
    ("api", "api", api_api), ("api", "page", api_page),
    ("introspect", "api", introspect_api),
    ("oidc_authorize", "page", oidc_authorize_page), ("oidc_token", "api", oidc_token_api),
]


@pytest.mark.parametrize(("scope", "surface", "driver"), ROWS, ids=[f"{s}-{w}" for s, w, _ in ROWS])
def test_every_row_refuses_over_its_limit(api, scope, surface, driver):
    response = driver(api)
    assert response.status_code == 429, (response.status_code, response.content[:500])
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= window_seconds(DEFAULT_RATE_LIMITS[scope])
    if response["Content-Type"].startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == "rate_limited"
    else:
        assert "Too many attempts" in response.content.decode()
    limited = AuditEvent.objects.filter(event=EventType.RATE_LIMITED, context__scope=scope)
    assert limited.count() == 1, [(r.context, r.ip_address) for r in AuditEvent.objects.filter(
        event=EventType.RATE_LIMITED)]
    assert not limited.get().success and limited.get().context["rate"] == DEFAULT_RATE_LIMITS[scope]


def test_the_table_covers_every_scope_here_and_in_the_docs():
    assert {scope for scope, _, _ in ROWS} == set(DEFAULT_RATE_LIMITS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    section = docs.split("## Rate limits", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 2:
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                documented[name] = cells[1].strip("`")
    assert documented == DEFAULT_RATE_LIMITS


# --- what a refusal protects ----------------------------------------------------------------------------
def test_over_the_limit_no_password_is_checked_and_nothing_changes(api):
    user = UserFactory()
    client = bearer(user)
    for _ in range(5):
        client.post(AUTH + "change-password", {"currentPassword": WRONG, "newPassword": NEW_PASSWORD}, format="json")
    response = client.post(AUTH + "change-password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                           format="json")
    assert response.status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    fails = AuditEvent.objects.filter(event=EventType.PASSWORD_CHANGE_FAILED, actor_id=user.pk).count()
    assert fails == 5  # the refused request never reached the password check
    limited = AuditEvent.objects.get(event=EventType.RATE_LIMITED, context__scope="change_password")
    assert limited.subject_id == user.pk  # per-user scopes name the user


def test_over_the_limit_nothing_is_created_or_mailed(api, mailoutbox):
    for i in range(10):
        api.post(AUTH + "register-b2b", {"email": f"b{i}@example.com", "password": PASSWORD,
                                         "organizationName": "Biz"}, format="json")
    sent = len(mailoutbox)
    response = api.post(AUTH + "register-b2b", {"email": "late@example.com", "password": PASSWORD,
                                                "organizationName": "Biz"}, format="json")
    assert response.status_code == 429
    assert not User.objects.filter(email="late@example.com").exists() and len(mailoutbox) == sent


def test_only_callers_allowed_to_invite_spend_an_organizations_budget(api):
    owner, member = UserFactory(), UserFactory()
    org = organization((owner, OrgRole.OWNER), (member, OrgRole.MEMBER))
    stranger = bearer(UserFactory())
    plain = bearer(member)
    for i in range(60):
        assert stranger.post(f"/api/v1/orgs/{org.pk}/invitations", {"email": f"x{i}@example.com"},
                             format="json").status_code == 404
        assert plain.post(f"/api/v1/orgs/{org.pk}/invitations", {"email": f"y{i}@example.com"},
                          format="json").status_code == 403
    response = bearer(owner).post(f"/api/v1/orgs/{org.pk}/invitations", {"email": "real@example.com"}, format="json")
    assert response.status_code == 201
    assert Invitation.objects.filter(organization=org).count() == 1


def test_the_lockout_mail_is_bounded_by_the_lockout(api, mailoutbox):
    """Login mails the account only when a lock starts, at most one live unlock link per lockout
    period (security/lockout.py): no scope of its own is needed for that mail."""
    user = UserFactory()
    for i in range(5):
        post_login(api, user.email, WRONG, ip=f"192.0.2.{i + 1}")  # from five addresses: no lock yet
    for ip in ("203.0.113.1", "203.0.113.2"):
        for _ in range(5):
            post_login(api, user.email, WRONG, ip=ip)
    unlock_mails = [m for m in mailoutbox if user.email in m.to and "locked" in m.subject]
    assert len(unlock_mails) == 1

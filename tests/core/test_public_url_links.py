"""Every link a mail carries is ``core.links.public_url``: ``AUTH_PUBLIC_URL`` + the path of a named page
(web/urls.py) + ``?token=...`` where the link carries one. Each mail kind is sent by its real flow with a
non-default ``AUTH_PUBLIC_URL``; each of its links must start with that base and resolve to the page it
is meant for, in the contract's shape (``{AUTH_PUBLIC_URL}/verify-email?token=<token>``)."""

import ast
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.db import transaction
from django.urls import resolve

from accounts import services as account_services
from flows import email_change
from orgs import services as orgs
from orgs.models import Membership, Organization, OrgRole
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import CHROME_WINDOWS, FIREFOX_LINUX
from tests.support.auth import login_attempt
from tests.support.mail import last_mail_to

ROOT = Path(__file__).resolve().parents[2]
# The apps that mail or show links to our pages: they build them with public_url only.
LINKING_APPS = ("accounts", "security", "orgs", "flows", "sessions_app", "web", "notifications")
BASE = "https://auth.example.com"
URL = re.compile(r"https?://\S+")
TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,}")


@pytest.fixture(autouse=True)
def public_base(settings):
    settings.AUTH_PUBLIC_URL = BASE


def links(message) -> dict[str, str]:
    """The page name of each link in the mail's body -> the link; every link is ours and well formed."""
    found = {}
    for url in (match.rstrip(".,;)") for match in URL.findall(message.body)):
        assert url.startswith(BASE + "/"), url
        parts = urlsplit(url)
        name = resolve(parts.path).url_name
        assert url == BASE + parts.path + (f"?{parts.query}" if parts.query else ""), url
        if parts.query:  # a one-time link: exactly ?token=<the raw token>
            assert parts.query.startswith("token=") and TOKEN.fullmatch(parts.query[len("token="):]), url
        found[name] = url
    return found


def assert_links(message, expected: dict[str, str]):
    """``expected``: page name -> its path (``?token=`` follows when the path ends with ``?``)."""
    found = links(message)
    assert set(found) == set(expected), (found, message.body)
    for name, path in expected.items():
        if path.endswith("?"):
            assert found[name].startswith(f"{BASE}{path}token="), found[name]
        else:
            assert found[name] == f"{BASE}{path}", found[name]


def test_verify_email_mail():
    account_services.user_register(email="new@example.com", password=PASSWORD, name="New")
    assert_links(last_mail_to("new@example.com"), {"web-verify-email": "/verify-email?"})


def test_account_exists_mail():
    user = UserFactory()
    account_services.user_register(email=user.email, password=PASSWORD, name="Again")
    assert_links(last_mail_to(user.email), {"web-login": "/login", "web-forgot-password": "/forgot-password"})


def test_password_reset_mails_for_an_account_and_for_an_unknown_address():
    user = UserFactory()
    account_services.password_forgot(email=user.email)
    assert_links(last_mail_to(user.email), {"web-reset-password": "/reset-password?"})
    account_services.password_forgot(email="nobody@example.com")
    assert_links(last_mail_to("nobody@example.com"), {"web-register": "/register"})


def test_password_changed_mail():
    user = UserFactory()
    account_services.password_changed_mail(user)
    assert_links(last_mail_to(user.email),
                 {"web-forgot-password": "/forgot-password", "web-account-sessions": "/account/sessions"})


def test_account_locked_mail(api):
    user = UserFactory()
    for _ in range(5):
        login_attempt(api, user.email, "Wrong-Password-1", ip="127.0.0.1")
    assert_links(last_mail_to(user.email),
                 {"web-account-unlock": "/account/unlock?", "web-forgot-password": "/forgot-password"})


def test_new_sign_in_mail(api):
    user = UserFactory()
    login_attempt(api, user.email, PASSWORD, ip="198.51.100.10", ua=CHROME_WINDOWS)
    login_attempt(api, user.email, PASSWORD, ip="203.0.113.5", ua=FIREFOX_LINUX)
    message = last_mail_to(user.email)
    assert message.subject == "New sign-in to your account"
    assert_links(message, {"web-account-sessions": "/account/sessions", "web-account-not-me": "/account/not-me?"})


def test_invitation_mail():
    inviter = UserFactory()
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=inviter, organization=org, role=OrgRole.OWNER)
    with transaction.atomic():
        orgs.invitation_create(user=inviter, organization_id=org.pk, email="guest@example.com", role=OrgRole.MEMBER)
    assert_links(last_mail_to("guest@example.com"), {"web-invitation-accept": "/invitations/accept?"})


def test_email_change_mails_confirm_not_me_and_revert():
    user = UserFactory(email="before@example.com")
    email_change.email_change_request(user=user, session=None, new_email="after@example.com", password=PASSWORD)
    confirm = last_mail_to("after@example.com")
    assert_links(confirm, {"web-account-email-confirm": "/account/email/confirm?"})
    assert_links(last_mail_to("before@example.com"),
                 {"web-account-not-me": "/account/not-me?", "web-account-sessions": "/account/sessions"})
    mail.outbox.clear()
    email_change.email_change_confirm(token=links(confirm)["web-account-email-confirm"].split("?token=")[1])
    assert_links(last_mail_to("before@example.com"), {"web-account-email-revert": "/account/email/revert?"})


def test_email_change_to_a_taken_address_mails_its_owner():
    owner = UserFactory(email="taken@example.com")
    user = UserFactory()
    email_change.email_change_request(user=user, session=None, new_email=owner.email, password=PASSWORD)
    assert_links(last_mail_to(owner.email), {"web-login": "/login", "web-forgot-password": "/forgot-password"})


def test_no_linking_app_reads_the_public_base_itself():
    """``AUTH_PUBLIC_URL`` is read by ``core.links.public_url`` alone: a hand-built
    ``f"{app_settings.PUBLIC_URL}/..."`` would bypass the route table."""
    offenders = []
    for package in LINKING_APPS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in ("PUBLIC_URL", "AUTH_PUBLIC_URL"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []

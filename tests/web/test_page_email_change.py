"""The email change on the pages (/account/email, /account/email/confirm), the re-auth page's own rate
limit scope, and the security activity page's labels. Every client here enforces CSRF like a browser."""

import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import CHROME_LINUX
from tests.support.mail import last_mail_to, link_token

NEW = "moved@example.org"


class CsrfClient(Client):
    """A test client that enforces CSRF and sends the token like a form would."""

    def __init__(self):
        super().__init__(enforce_csrf_checks=True, HTTP_USER_AGENT=CHROME_LINUX)

    def csrf(self) -> str:
        if django_settings.CSRF_COOKIE_NAME not in self.cookies:
            self.get("/login")
        return self.cookies[django_settings.CSRF_COOKIE_NAME].value

    def form_post(self, path, data=None, **extra):
        return self.post(path, {**(data or {}), "csrfmiddlewaretoken": self.csrf()}, **extra)


@pytest.fixture
def browser(user):
    client = CsrfClient()
    response = client.form_post("/login", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def make_stale(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))


# --- /account/email ----------------------------------------------------------------------------------
def test_account_page_links_the_email_page(browser, user):
    body = browser.get("/account").content.decode()
    assert 'href="/account/email"' in body and user.email in body


def test_email_page_shows_the_form_and_sends_the_link(browser, user):
    page = browser.get("/account/email")
    assert page.status_code == 200 and 'action="/account/email"' in page.content.decode()
    response = browser.form_post("/account/email", {"new_email": "Moved@Example.org", "password": PASSWORD})
    body = response.content.decode()
    assert response.status_code == 200 and "Check the inbox of the new address" in body and NEW in body
    assert "/account/email/confirm?token=" in last_mail_to(NEW).body
    assert last_mail_to(user.email).subject == "Your email address is being changed"
    user.refresh_from_db()
    assert user.email != NEW


def test_email_post_without_csrf_is_refused(browser, user):
    response = browser.post("/account/email", {"new_email": NEW})
    assert response.status_code == 403
    assert not AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL).exists()


def _unmasked(page: str) -> str:
    """The page without its per-render values (the masked CSRF token of the sign-out form, the CSP nonce)."""
    return re.sub(r'(value|nonce)="[A-Za-z0-9_\-]{20,}"', r'\1=""', page)


def test_taken_address_gets_the_same_page(browser, user):
    UserFactory(email="taken@example.org")
    free = browser.form_post("/account/email", {"new_email": "free@example.org", "password": PASSWORD})
    taken = browser.form_post("/account/email", {"new_email": "taken@example.org", "password": PASSWORD})
    free, taken = free.content.decode(), taken.content.decode()
    assert _unmasked(free).replace("free@", "X@") == _unmasked(taken).replace("taken@", "X@")


def test_bad_address_shows_the_error_next_to_the_field(browser, user):
    for value, message in (("not-an-email", "Enter a valid email address."),
                           (user.email, "This is already your email address.")):
        page = browser.form_post("/account/email", {"new_email": value, "password": PASSWORD}).content.decode()
        assert message in page and 'aria-invalid="true"' in page
    assert not AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_stale_session_goes_to_reauth_and_back(browser, user, method):
    make_stale(user)
    response = browser.get("/account/email") if method == "get" else \
        browser.form_post("/account/email", {"new_email": NEW, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/account/reauthenticate?next=%2Faccount%2Femail"
    assert not AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL).exists()
    back = browser.form_post("/account/reauthenticate", {"password": PASSWORD, "next": "/account/email"})
    assert back["Location"] == "/account/email"
    assert browser.form_post("/account/email", {"new_email": NEW, "password": PASSWORD}).status_code == 200
    assert AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL, new_email=NEW).exists()


def test_email_page_needs_sign_in():
    response = CsrfClient().get("/account/email")
    assert response.status_code == 302 and response["Location"].startswith("/login?")


def test_email_page_rate_limit_is_per_user(settings, browser, user):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"],
                                                               "change_email": "2/5m"}}
    for n in range(2):
        sent = browser.form_post("/account/email", {"new_email": f"n{n}@example.org", "password": PASSWORD})
        assert sent.status_code == 200
    refused = browser.form_post("/account/email", {"new_email": "n3@example.org", "password": PASSWORD})
    assert refused.status_code == 429 and "Retry-After" in refused


# --- /account/email/confirm ----------------------------------------------------------------------------
def _request_change(browser):
    browser.form_post("/account/email", {"new_email": NEW, "password": PASSWORD})
    return link_token(last_mail_to(NEW))


def test_confirm_get_only_asks(browser, user):
    token = _request_change(browser)
    page = browser.get(f"/account/email/confirm?token={token}")
    body = page.content.decode()
    assert page.status_code == 200 and 'action="/account/email/confirm"' in body and token in body
    user.refresh_from_db()
    assert user.email != NEW
    assert AccountToken.objects.get(purpose=TokenPurpose.CHANGE_EMAIL).used_at is None


def test_confirm_post_changes_keeps_this_browser_and_shows_the_new_address(browser, user):
    phone = CsrfClient()
    phone.form_post("/login", {"email": user.email, "password": PASSWORD})
    token = _request_change(browser)
    response = browser.form_post("/account/email/confirm", {"token": token})
    body = response.content.decode()
    assert response.status_code == 200 and "Email address changed" in body and NEW in body
    assert 'href="/account"' in body
    user.refresh_from_db()
    assert user.email == NEW and user.email_verified
    assert NEW in browser.get("/account").content.decode()  # not the cookie cache's old address
    assert phone.get("/account/sessions").status_code == 302  # the other session ended
    assert DeviceSession.objects.filter(user=user, revoked_reason=RevokeReason.EMAIL_CHANGED).count() == 1
    assert AuditEvent.objects.filter(event=EventType.EMAIL_CHANGED, actor_id=user.pk).exists()


def test_confirm_from_a_browser_that_is_not_signed_in(browser, user):
    token = _request_change(browser)
    stranger = CsrfClient()
    response = stranger.form_post("/account/email/confirm", {"token": token})
    assert response.status_code == 200 and 'href="/login"' in response.content.decode()
    user.refresh_from_db()
    assert user.email == NEW


def test_confirm_without_csrf_is_refused(browser, user):
    token = _request_change(browser)
    assert CsrfClient().post("/account/email/confirm", {"token": token}).status_code == 403
    user.refresh_from_db()
    assert user.email != NEW


def test_confirm_used_or_taken_link(browser, user):
    token = _request_change(browser)
    UserFactory(email=NEW)
    taken = browser.form_post("/account/email/confirm", {"token": token})
    assert taken.status_code == 409 and "belongs to another account" in taken.content.decode()
    User.objects.filter(email=NEW).delete()
    assert browser.form_post("/account/email/confirm", {"token": token}).status_code == 200
    used = browser.form_post("/account/email/confirm", {"token": token})
    assert used.status_code == 400 and "invalid or has already been used" in used.content.decode()
    assert browser.form_post("/account/email/confirm", {"token": ""}).status_code == 400


# --- the re-auth page's own rate limit scope ----------------------------------------------------------
def _limits(settings, **rates):
    # Hour windows: django-ratelimit's windows are fixed, so a minute window can end between the requests
    # of one test (a flake seen in CI); what these tests prove is whose budget is spent, not the window.
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], **rates}}


def test_reauth_attempts_do_not_spend_the_login_budget(settings, browser, user):
    _limits(settings, reauthenticate="3/h", login="3/h")
    for _ in range(3):
        wrong = browser.form_post("/account/reauthenticate", {"password": "Wrong-Password-123", "next": "/account"})
        assert wrong.status_code == 200
    refused = browser.form_post("/account/reauthenticate", {"password": PASSWORD, "next": "/account"})
    assert refused.status_code == 429 and "Retry-After" in refused
    assert AuditEvent.objects.filter(event=EventType.RATE_LIMITED, context__scope="reauthenticate").exists()
    # Same IP, the login page: its own budget is whole.
    other = UserFactory()
    for _ in range(3):
        assert CsrfClient().form_post("/login", {"email": other.email, "password": PASSWORD}).status_code == 302


def test_login_attempts_do_not_spend_the_reauth_budget(settings, browser, user):
    _limits(settings, reauthenticate="3/h", login="3/h")
    for _ in range(3):
        CsrfClient().form_post("/login", {"email": user.email, "password": "Wrong-Password-123"})
    assert CsrfClient().form_post("/login", {"email": user.email, "password": PASSWORD}).status_code == 429
    ok = browser.form_post("/account/reauthenticate", {"password": PASSWORD, "next": "/account"})
    assert ok.status_code == 302 and ok["Location"] == "/account"


def test_reauth_budget_is_per_user_not_per_address(settings, browser, user):
    _limits(settings, reauthenticate="2/h")
    for _ in range(2):
        browser.form_post("/account/reauthenticate", {"password": "Wrong-Password-123"})
    assert browser.form_post("/account/reauthenticate", {"password": PASSWORD}).status_code == 429
    other = UserFactory()
    client = CsrfClient()
    client.form_post("/login", {"email": other.email, "password": PASSWORD})
    assert client.form_post("/account/reauthenticate", {"password": PASSWORD})["Location"] == "/account"


# --- security activity labels ---------------------------------------------------------------------------
def test_security_page_shows_labels_and_the_api_keeps_codes(browser, user):
    browser.form_post("/account/reauthenticate", {"password": "Wrong-Password-123"})
    body = browser.get("/account/security").content.decode()
    assert "<h2>Password confirmation failed</h2>" in body and "<h2>Signed in</h2>" in body
    assert ">auth.login.succeeded<" not in body and ">auth.reauthentication_failed<" not in body
    assert 'data-event="auth.login.succeeded"' in body


def test_every_event_has_a_human_label():
    for event in EventType:
        assert event.label and "." not in event.label and event.label != event.name.replace("_", " ").title(), event

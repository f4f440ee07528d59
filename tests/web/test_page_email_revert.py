"""Issue 14 on the pages: /account/email asks for the current password, and /account/email/revert (the
link mailed to the old address) gives the address back on POST only. CSRF enforced like a browser."""

import pytest
from django.core import mail

from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession, RevokeReason
from tests.conftest import last_mail_to, link_token
from tests.factories import PASSWORD, UserFactory
from tests.web.test_page_email_change import CsrfClient

NEW = "thief@example.net"


@pytest.fixture
def browser(user):
    client = CsrfClient()
    assert client.form_post("/login", {"email": user.email, "password": PASSWORD}).status_code == 302
    return client


def moved(browser, user):
    """The account moved to NEW from ``browser``; returns the revert link mailed to the old address."""
    old = user.email
    assert browser.form_post("/account/email", {"new_email": NEW, "password": PASSWORD}).status_code == 200
    assert browser.form_post("/account/email/confirm", {"token": link_token(last_mail_to(NEW))}).status_code == 200
    message = last_mail_to(old)
    assert message.subject == "Your email address was changed" and "/account/email/revert?token=" in message.body
    return link_token(message)


# --- /account/email needs the current password --------------------------------------------------------
def test_email_page_has_a_current_password_field(browser):
    body = browser.get("/account/email").content.decode()
    assert 'name="password"' in body and 'autocomplete="current-password"' in body
    assert "undo the change for 7 days" in body


@pytest.mark.parametrize(("password", "message"), [("Not-The-Password-1", "The password is incorrect."),
                                                   ("", "This field is required.")])
def test_email_page_refuses_a_wrong_or_missing_password(browser, user, password, message):
    mail.outbox.clear()
    page = browser.form_post("/account/email", {"new_email": NEW, "password": password})
    body = page.content.decode()
    assert page.status_code == 200 and message in body and 'aria-invalid="true"' in body
    assert not AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL).exists() and mail.outbox == []
    if password:
        row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_FAILED)
        assert row.actor_id == user.pk and row.context["reason"] == "invalid_password" and not row.success


def test_wrong_passwords_spend_the_change_email_budget(settings, browser):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"],
                                                               "change_email": "2/5m"}}
    for _ in range(2):
        browser.form_post("/account/email", {"new_email": NEW, "password": "Not-The-Password-1"})
    refused = browser.form_post("/account/email", {"new_email": NEW, "password": PASSWORD})
    assert refused.status_code == 429 and "Retry-After" in refused


# --- /account/email/revert ---------------------------------------------------------------------------
def test_revert_get_only_asks(browser, user):
    token = moved(browser, user)
    page = CsrfClient().get(f"/account/email/revert?token={token}")
    body = page.content.decode()
    assert page.status_code == 200 and 'action="/account/email/revert"' in body and token in body
    assert "Restore my address" in body
    user.refresh_from_db()
    assert user.email == NEW
    assert AccountToken.objects.get(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).used_at is None


def test_revert_post_restores_signs_everyone_out_and_mails_the_reset(browser, user):
    old = user.email
    token = moved(browser, user)
    victim = CsrfClient()  # the owner of the old address, not signed in
    response = victim.form_post("/account/email/revert", {"token": token})
    body = response.content.decode()
    assert response.status_code == 200 and "Your email address is back" in body and old in body
    user.refresh_from_db()
    assert user.email == old and not user.has_usable_password()
    assert browser.get("/account/sessions").status_code == 302  # the taken-over browser is signed out
    assert DeviceSession.objects.filter(user=user, revoked_reason=RevokeReason.EMAIL_CHANGE_REVERTED).count() == 1
    assert "/reset-password?token=" in last_mail_to(old).body
    assert not any("/reset-password?token=" in m.body for m in mail.outbox if NEW in m.to)
    assert AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERTED).context["via"] == "revert_link"
    used = victim.form_post("/account/email/revert", {"token": token})
    assert used.status_code == 400 and "invalid or has already been used" in used.content.decode()


def test_revert_without_csrf_is_refused(browser, user):
    token = moved(browser, user)
    assert CsrfClient().post("/account/email/revert", {"token": token}).status_code == 403
    user.refresh_from_db()
    assert user.email == NEW


def test_revert_to_a_taken_address_is_409(browser, user):
    old = user.email
    token = moved(browser, user)
    UserFactory(email=old)
    response = CsrfClient().form_post("/account/email/revert", {"token": token})
    assert response.status_code == 409 and "cannot be given back" in response.content.decode()
    assert User.objects.get(pk=user.pk).email == NEW


@pytest.mark.parametrize("token", ["", "nope", "x" * 600])
def test_revert_bad_links(browser, user, token):
    moved(browser, user)
    response = CsrfClient().form_post("/account/email/revert", {"token": token})
    assert response.status_code == 400 and "This link does not work" in response.content.decode()
    assert User.objects.get(pk=user.pk).email == NEW


def test_revert_page_is_rate_limited_with_the_not_me_budget(settings, browser, user):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "not_me": "2/h"}}
    client = CsrfClient()
    for _ in range(2):
        assert client.form_post("/account/email/revert", {"token": "guess-" + "x" * 20}).status_code == 400
    refused = client.form_post("/account/email/revert", {"token": "guess-" + "y" * 20})
    assert refused.status_code == 429 and "Retry-After" in refused

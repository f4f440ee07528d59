"""Issue 14 on the pages: /verify-email asks an account that never signed in for its password (so a
password chosen by whoever registered the address does not survive), and names the organizations a
B2B sign-up creates. The clients here enforce CSRF like a browser."""

import pytest
from django.utils import timezone

from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization
from tests.conftest import last_mail_to, link_token
from tests.factories import PASSWORD, UserFactory
from tests.web.test_page_email_change import CsrfClient

VICTIM = "victim@example.org"
ATTACKER_PASSWORD = "Attacker-Chosen-Pass-99"
VICTIM_PASSWORD = "Victims-Own-Passphrase-7"


def register(client, email=VICTIM, password=ATTACKER_PASSWORD):
    page = client.form_post("/register", {"email": email, "password": password})
    assert page.status_code == 200 and "Check your inbox" in page.content.decode()
    return link_token(last_mail_to(email))


def can_log_in(email, password):
    return CsrfClient().form_post("/login", {"email": email, "password": password}).status_code == 302


@pytest.fixture
def browser(db):
    return CsrfClient()


def test_get_asks_for_the_password_and_uses_nothing(browser):
    token = register(CsrfClient())  # registered by someone else, from another browser
    page = browser.get(f"/verify-email?token={token}")
    body = page.content.decode()
    assert page.status_code == 200 and "Confirm my email" in body and f'value="{token}"' in body
    assert 'type="password"' in body and 'autocomplete="new-password"' in body
    assert "becomes its password" in body
    assert not User.objects.get(email=VICTIM).email_verified
    assert AccountToken.objects.get(purpose=TokenPurpose.VERIFY_EMAIL).used_at is None


def test_post_with_a_password_verifies_and_replaces_the_registration_password(browser):
    token = register(CsrfClient())
    done = browser.form_post("/verify-email", {"token": token, "password": VICTIM_PASSWORD})
    assert done.status_code == 200 and "Email confirmed" in done.content.decode()
    assert User.objects.get(email=VICTIM).email_verified
    assert not can_log_in(VICTIM, ATTACKER_PASSWORD)
    assert can_log_in(VICTIM, VICTIM_PASSWORD)
    assert AuditEvent.objects.get(event=EventType.EMAIL_VERIFIED).context["credentials_set"] is True
    again = browser.form_post("/verify-email", {"token": token, "password": VICTIM_PASSWORD})
    assert again.status_code == 400 and "invalid or has already been used" in again.content.decode()


@pytest.mark.parametrize(("password", "message"), [
    ("", "Choose a password for this account."),
    ("short", "This password is too short."),
    ("x" * 129, "Ensure this value has at most 128 characters"),
])
def test_a_missing_or_bad_password_is_shown_next_to_the_field_and_keeps_the_link(browser, password, message):
    token = register(CsrfClient())
    page = browser.form_post("/verify-email", {"token": token, "password": password})
    body = page.content.decode()
    assert page.status_code == 200 and message in body and 'aria-invalid="true"' in body
    assert f'value="{token}"' in body  # the form keeps its link
    user = User.objects.get(email=VICTIM)
    assert not user.email_verified and user.check_password(ATTACKER_PASSWORD)
    assert AccountToken.objects.get(purpose=TokenPurpose.VERIFY_EMAIL).used_at is None
    assert browser.form_post("/verify-email", {"token": token, "password": VICTIM_PASSWORD}).status_code == 200


def test_an_account_that_has_signed_in_gets_only_the_button(browser):
    user = UserFactory(email_verified_at=None, last_login=timezone.now())
    from accounts.services import verification_resend

    verification_resend(email=user.email)
    token = link_token(last_mail_to(user.email))
    body = browser.get(f"/verify-email?token={token}").content.decode()
    assert "Confirm my email" in body and 'type="password"' not in body
    assert browser.form_post("/verify-email", {"token": token}).status_code == 200
    user.refresh_from_db()
    assert user.email_verified and user.check_password(PASSWORD)


@pytest.mark.parametrize("token", ["", "nope", "x" * 600])
def test_bad_links(browser, token):
    register(CsrfClient())
    before = list(AccountToken.objects.values_list("pk", "used_at"))
    response = browser.form_post("/verify-email", {"token": token, "password": VICTIM_PASSWORD})
    assert response.status_code == 400 and "This link does not work" in response.content.decode()
    assert list(AccountToken.objects.values_list("pk", "used_at")) == before
    assert not User.objects.get(email=VICTIM).email_verified
    assert "Open the link from the email" in browser.get("/verify-email").content.decode()


def test_post_without_csrf_is_refused(browser):
    token = register(CsrfClient())
    assert CsrfClient().post("/verify-email", {"token": token, "password": VICTIM_PASSWORD}).status_code == 403
    assert not User.objects.get(email=VICTIM).email_verified


def test_b2b_sign_up_names_the_organization_and_creates_it_once_the_password_is_set(browser, api):
    response = api.post("/api/v1/auth/register-b2b", {"email": VICTIM, "password": ATTACKER_PASSWORD, "name": "Fay",
                                                      "organizationName": "Acme <GmbH>"}, format="json")
    assert response.status_code == 202
    token = link_token(last_mail_to(VICTIM))
    body = browser.get(f"/verify-email?token={token}").content.decode()
    assert "<strong>Acme &lt;GmbH&gt;</strong>" in body and "with you as owner" in body  # escaped
    refused = browser.form_post("/verify-email", {"token": token})
    assert "Choose a password for this account." in refused.content.decode()
    assert not Organization.objects.exists()
    assert browser.form_post("/verify-email", {"token": token, "password": VICTIM_PASSWORD}).status_code == 200
    assert Membership.objects.get(organization__name="Acme <GmbH>").user.email == VICTIM
    assert not can_log_in(VICTIM, ATTACKER_PASSWORD)

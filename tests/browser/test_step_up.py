"""Step-up and the email change in headless Chromium: a stale session is sent to the re-auth page,
comes back to the action and completes it; the email change runs end to end through the mailed link."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import browser_sign_in
from tests.support.mail import last_mail_to, link_token

NEW_PASSWORD = "A-Brand-New-Passphrase-42"


def make_stale(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))


def reauthenticate(page, site, next_path):
    page.wait_for_url(f"{site}/account/reauthenticate?next=" + next_path.replace("/", "%2F"))
    assert page.get_by_role("heading", name="Confirm your password").is_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{site}{next_path}")


def test_stale_password_change_reauthenticates_and_comes_back(site, new_page):
    user = UserFactory()
    _, page = new_page()
    browser_sign_in(page, site, user.email)
    make_stale(user)

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    reauthenticate(page, site, "/account")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # nothing changed on the stale attempt

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert page.get_by_text("Your password is changed").is_visible()
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_email_change_end_to_end_with_step_up(site, new_page):
    user = UserFactory(name="Ada")
    old = user.email
    _, page = new_page()
    _, other_device = new_page()
    browser_sign_in(page, site, user.email)
    browser_sign_in(other_device, site, user.email)
    make_stale(user)

    page.get_by_role("link", name="Change email address").click()
    reauthenticate(page, site, "/account/email")
    page.get_by_label("New email address").fill("Ada.New@Example.org")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Send confirmation link").click()
    assert page.get_by_role("heading", name="Check the inbox of the new address").is_visible()
    assert "n***@example.org" not in last_mail_to(old).body  # masked from the first letter
    assert "a***@example.org" in last_mail_to(old).body

    # The link from the new address's mail: the GET only asks, the button applies it.
    token = link_token(last_mail_to("ada.new@example.org"))
    page.goto(f"{site}/account/email/confirm?token={token}")
    assert User.objects.get(pk=user.pk).email == old
    page.get_by_role("button", name="Confirm new address").click()
    assert page.get_by_role("heading", name="Email address changed").is_visible()
    assert User.objects.get(pk=user.pk).email == "ada.new@example.org"
    assert last_mail_to(old).subject == "Your email address was changed"

    page.get_by_role("link", name="Your account").click()
    page.wait_for_url(f"{site}/account")
    assert page.get_by_text("Signed in as ada.new@example.org").is_visible()
    other_device.goto(f"{site}/account/sessions")
    assert other_device.url.startswith(f"{site}/login")  # the other session ended

    page.goto(f"{site}/account/security")
    assert page.get_by_role("heading", name="Email address changed").is_visible()
    assert page.get_by_role("heading", name="Email change requested").is_visible()

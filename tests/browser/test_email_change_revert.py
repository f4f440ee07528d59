"""Issue 14 in headless Chromium: the owner of the old address takes a hijacked account back through the
mailed link, and a person verifying an address someone else registered chooses the password there."""

from accounts.models import User
from tests.support.auth import browser_sign_in as sign_in
from tests.conftest import last_mail_to, link_token
from tests.factories import PASSWORD, UserFactory


def test_the_old_address_takes_the_account_back(transactional_db, site, new_page):
    user = UserFactory(name="Ada")
    old = user.email
    _, thief = new_page()
    sign_in(thief, site, user.email)
    thief.goto(f"{site}/account/email")
    thief.get_by_label("New email address").fill("thief@example.net")
    thief.get_by_label("Current password").fill(PASSWORD)
    thief.get_by_role("button", name="Send confirmation link").click()
    thief.goto(f"{site}/account/email/confirm?token={link_token(last_mail_to('thief@example.net'))}")
    thief.get_by_role("button", name="Confirm new address").click()
    assert thief.get_by_role("heading", name="Email address changed").is_visible()

    _, owner = new_page()
    owner.goto(f"{site}/account/email/revert?token={link_token(last_mail_to(old))}")
    assert User.objects.get(pk=user.pk).email == "thief@example.net"  # the GET only asks
    owner.get_by_role("button", name="Restore my address").click()
    assert owner.get_by_role("heading", name="Your email address is back").is_visible()
    assert User.objects.get(pk=user.pk).email == old
    assert "/reset-password?token=" in last_mail_to(old).body
    thief.goto(f"{site}/account")
    assert thief.url.startswith(f"{site}/login")  # the thief's session ended


def test_verifying_an_address_someone_else_registered_sets_the_password(transactional_db, site, new_page):
    _, stranger = new_page()
    stranger.goto(f"{site}/register")
    stranger.get_by_label("Email").fill("victim@example.org")
    stranger.get_by_label("Password").fill("Attacker-Chosen-Pass-99")
    stranger.get_by_role("button", name="Create account").click()
    assert stranger.get_by_role("heading", name="Check your inbox").is_visible()

    _, victim = new_page()
    victim.goto(f"{site}/verify-email?token={link_token(last_mail_to('victim@example.org'))}")
    victim.get_by_role("button", name="Confirm my email").click()  # without a password: asked again
    assert victim.get_by_text("Choose a password for this account.").is_visible()
    victim.get_by_label("Password").fill("Victims-Own-Passphrase-7")
    victim.get_by_role("button", name="Confirm my email").click()
    assert victim.get_by_role("heading", name="Email confirmed").is_visible()
    user = User.objects.get(email="victim@example.org")
    assert user.email_verified and user.check_password("Victims-Own-Passphrase-7")
    assert not user.check_password("Attacker-Chosen-Pass-99")

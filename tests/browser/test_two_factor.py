"""Two-factor in headless Chromium (issue 11): enrol from the account page by reading the secret from
the page, sign out, sign in with password and code, trust the browser, sign in again without a code,
change the password, and see the code asked for again."""

import pyotp

from tests.factories import PASSWORD, UserFactory
from tests.mfa.support import away_from_step_end, code_at

NEW_PASSWORD = "A-Brand-New-Passphrase-42"


def sign_in(page, site, email, password=PASSWORD):
    page.goto(f"{site}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page, site):
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(f"{site}/login")


def test_enrol_sign_in_with_a_code_trust_the_browser_and_lose_the_trust_with_the_password(site, new_page):
    user = UserFactory()
    _, page = new_page()
    sign_in(page, site, user.email)
    page.wait_for_url(f"{site}/account")

    # Enrol: the QR code is drawn by the server (inline SVG); an app that cannot scan types the key.
    page.get_by_role("link", name="Two-factor sign-in").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_url(f"{site}/account/two-factor")
    assert page.locator(".qr svg").is_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert len(secret) >= 16 and pyotp.TOTP(secret).now()
    away_from_step_end(margin=15)
    page.get_by_label("Code shown by the app").fill(code_at(secret, -1))
    page.get_by_role("button", name="Turn on two-factor").click()
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    assert page.locator("ul.codes li").count() == 10
    sign_out(page, site)

    # Password, then the code; trust this browser.
    sign_in(page, site, user.email)
    page.wait_for_url(f"{site}/login/two-factor?next=%2Faccount")
    assert page.get_by_role("heading", name="Enter your code").is_visible()
    page.get_by_label("Code from your authenticator app").fill(code_at(secret))
    page.get_by_label("Trust this browser for 30 days").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{site}/account")
    sign_out(page, site)

    # A trusted browser: no code.
    sign_in(page, site, user.email)
    page.wait_for_url(f"{site}/account")

    # A new password ends every trusted browser, this one too.
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert page.get_by_text("Your password is changed").is_visible()
    sign_out(page, site)
    sign_in(page, site, user.email, NEW_PASSWORD)
    page.wait_for_url(f"{site}/login/two-factor?next=%2Faccount")
    assert page.get_by_role("heading", name="Enter your code").is_visible()

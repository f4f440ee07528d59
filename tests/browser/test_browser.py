"""Sign-in, "where you're signed in", revocation and account switching in headless Chromium."""

import os
import time
from pathlib import Path

from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import FIREFOX_LINUX, IPHONE_SAFARI
from tests.support.auth import browser_sign_in

DOCS = Path(__file__).resolve().parents[2] / "docs"


def session_cookie(context):
    return next(c for c in context.cookies() if c["name"] == "mca_session")


def test_sign_in_without_stay_signed_in_is_a_browser_session_cookie(site, new_page):
    user = UserFactory()
    context, page = new_page()
    browser_sign_in(page, site, user.email)
    assert page.get_by_text(f"Signed in as {user.email}").is_visible()
    cookie = session_cookie(context)
    assert cookie["expires"] == -1 and cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_sign_in_with_stay_signed_in_is_persistent_for_30_days(site, new_page):
    user = UserFactory()
    context, page = new_page()
    browser_sign_in(page, site, user.email, remember=True)
    cookie = session_cookie(context)
    assert abs(cookie["expires"] - (time.time() + 30 * 86400)) < 120
    assert DeviceSession.objects.get(user=user).remember_me


def test_sessions_page_revoke_from_a_second_browser_and_sign_out_everywhere_else(site, new_page, tmp_path):
    user = UserFactory(email="ada@example.com", name="Ada")
    laptop_context, laptop = new_page()
    phone_context, phone = new_page(user_agent=IPHONE_SAFARI)
    tablet_context, tablet = new_page(user_agent=FIREFOX_LINUX)
    browser_sign_in(laptop, site, user.email)
    browser_sign_in(phone, site, user.email)
    browser_sign_in(tablet, site, user.email)

    phone.goto(f"{site}/account/sessions")
    rows = phone.locator("li.session")
    assert rows.count() == 3
    current = phone.locator("li.session.current")
    assert current.get_by_text("This device").is_visible() and "Mobile Safari" in current.inner_text()
    phone.set_viewport_size({"width": 900, "height": 900})
    # The picture in docs/ is refreshed only on request (it changes with every run's timestamps).
    shot = DOCS / "sessions-page.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "sessions-page.png"
    phone.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    # Revoke the laptop from the phone.
    laptop_row = DeviceSession.objects.get(user=user, user_agent__contains="HeadlessChrome")
    phone.locator(f'li[data-session="{laptop_row.pk}"]').get_by_role("button", name="Revoke").click()
    phone.wait_for_url(f"{site}/account/sessions?done=revoked")
    assert phone.locator("li.session").count() == 2
    laptop.goto(f"{site}/account/sessions")
    assert laptop.url.startswith(f"{site}/login")
    assert DeviceSession.objects.get(pk=laptop_row.pk).revoked_reason == RevokeReason.USER_REVOKED

    # Sign out everywhere else from the phone: the tablet goes too.
    phone.get_by_role("button", name="Sign out everywhere else").click()
    phone.wait_for_url(f"{site}/account/sessions?done=others")
    assert phone.locator("li.session").count() == 1
    tablet.goto(f"{site}/account/sessions")
    assert tablet.url.startswith(f"{site}/login")


def test_switch_accounts(site, new_page):
    first, second = UserFactory(email="first@example.com"), UserFactory(email="second@example.com")
    context, page = new_page()
    browser_sign_in(page, site, first.email)
    page.goto(f"{site}/accounts")
    page.get_by_role("link", name="Add another account").click()
    page.get_by_label("Email").fill(second.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{site}/account")
    assert page.get_by_text("Signed in as second@example.com").is_visible()

    page.goto(f"{site}/accounts")
    page.get_by_role("button", name="Switch to first@example.com").click()
    page.wait_for_url(f"{site}/account")
    assert page.get_by_text("Signed in as first@example.com").is_visible()
    body = page.evaluate("async () => (await fetch('/api/v1/auth/session')).json()")
    assert body["user"]["email"] == "first@example.com"
    token = page.evaluate("async () => (await fetch('/api/v1/auth/token')).json()")
    assert token["expiresIn"] == 900 and token["accessToken"].count(".") == 2

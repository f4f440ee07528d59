"""Issue 14, item 1 in a real browser: two tabs of one Chromium profile, several accounts. A form
left open in one tab after the other tab switched accounts changes nothing and says why."""

from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession
from sessions_app.services import session_create
from tests.support.auth import browser_sign_in as sign_in
from tests.factories import UserFactory


def switch_in(page, site, email):
    page.goto(f"{site}/accounts")
    page.get_by_role("button", name=f"Switch to {email}").click()
    page.wait_for_url(f"{site}/account")


def test_a_tab_left_on_account_a_cannot_act_as_b_after_the_other_tab_switched(site, new_page):
    ann = UserFactory(email="ann@example.com")
    bob = UserFactory(email="bob@example.com")
    session_create(user=ann)  # Ann's phone: "sign out everywhere else" has something to end
    session_create(user=bob)  # Bob's phone
    context, first = new_page()
    sign_in(first, site, ann.email)
    sign_in(first, site, bob.email, add=True)
    switch_in(first, site, ann.email)
    first.goto(f"{site}/account/sessions")  # tab 1: Ann's sessions, Ann's forms
    assert first.get_by_role("button", name="Sign out everywhere else").is_visible()

    second = context.new_page()  # tab 2, same cookies
    switch_in(second, site, bob.email)

    live = set(DeviceSession.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    first.get_by_role("button", name="Sign out everywhere else").click()
    first.wait_for_load_state()
    text = first.locator("main").inner_text()
    assert "This page is out of date" in first.title() or "This page is out of date" in text
    assert "ann@example.com" in text and "bob@example.com" in text and "Nothing was changed." in text
    assert set(DeviceSession.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True)) == live
    assert AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH, actor=bob, subject=ann).exists()

    # "Load the page again" shows the page as the account signed in now, whose forms work.
    first.get_by_role("link", name="Load the page again").click()
    first.wait_for_url(f"{site}/account/sessions")
    assert first.locator("nav").get_by_text("bob@example.com").is_visible()
    first.get_by_role("button", name="Sign out everywhere else").click()
    first.wait_for_url(f"{site}/account/sessions?done=others")
    assert DeviceSession.objects.filter(user=bob, revoked_at__isnull=True).count() == 1
    assert DeviceSession.objects.filter(user=ann, revoked_at__isnull=True).count() == 2  # untouched

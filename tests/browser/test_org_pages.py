"""Organizations in headless Chromium: create one, invite someone by email, the invitee signs in from
the link in another browser and accepts, the owner changes their role and removes them, and switching
the active organization changes the ``org`` claim of ``GET /api/v1/auth/token``. No page may trip
the Content Security Policy."""

import base64
import json
import re

from orgs.models import Membership, Organization, OrgRole
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import browser_sign_in
from tests.support.mail import last_mail_to


CSP_LISTENER = """window.addEventListener("securitypolicyviolation", (e) => {
    window.__cspViolations = window.__cspViolations || [];
    window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});"""


def watch_console(page):
    """Collect what the page reports as broken: console errors (Chromium logs a blocked inline script
    or style as one) except the status line of an intended 4xx answer, uncaught page errors, and
    every ``securitypolicyviolation`` event (checked by ``csp_violations`` after each page)."""
    problems = []
    page.add_init_script(CSP_LISTENER)
    page.on("console", lambda message: problems.append(message.text) if message.type == "error"
            and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def csp_violations(page) -> list:
    return page.evaluate("() => window.__cspViolations || []")


def claims(page) -> dict:
    token = page.evaluate("async () => (await fetch('/api/v1/auth/token')).json()")["accessToken"]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_create_invite_accept_change_role_remove_and_switch(site, new_page):
    UserFactory(email="olga@example.com", name="Olga")
    invitee = UserFactory(email="ivan@example.com", name="Ivan")
    _, owner = new_page()
    owner_problems = watch_console(owner)
    browser_sign_in(owner, site, "olga@example.com")

    # Create an organization from the list page (linked from the navigation).
    owner.get_by_role("link", name="Organizations").click()
    owner.wait_for_url(f"{site}/organizations")
    owner.get_by_label("Name", exact=True).fill("Acme Browser")
    owner.get_by_role("button", name="Create organization").click()
    owner.wait_for_url(re.compile(r".*/organizations/[0-9a-f-]{36}\?done=created$"))
    org = Organization.objects.get(name="Acme Browser")
    assert owner.get_by_text("The organization is created").is_visible()

    # Invite Ivan as a member; the link comes by email.
    owner.get_by_label("Email").fill("ivan@example.com")
    owner.get_by_label("Role", exact=True).select_option("member")
    owner.get_by_role("button", name="Send invitation").click()
    owner.wait_for_url(f"{site}/organizations/{org.pk}?done=invited")
    assert owner.locator('tr[data-invitation="ivan@example.com"]').is_visible()
    link = re.search(r"http\S+/invitations/accept\?token=\S+", last_mail_to("ivan@example.com").body).group(0)
    link = site + link[link.index("/invitations/"):]

    # Ivan opens the link in his own browser: signs in from it, comes back, accepts.
    _, guest = new_page()
    guest_problems = watch_console(guest)
    guest.goto(link)
    guest.get_by_role("link", name="Sign in to accept").click()
    guest.get_by_label("Email").fill("ivan@example.com")
    guest.get_by_label("Password").fill(PASSWORD)
    guest.get_by_role("button", name="Sign in", exact=True).click()
    guest.wait_for_url(link)
    assert guest.get_by_text("Acme Browser").is_visible()
    assert not Membership.objects.filter(user=invitee).exists()  # the GETs used nothing
    guest.get_by_role("button", name="Accept the invitation").click()
    guest.wait_for_url(f"{site}/organizations/{org.pk}?done=joined")
    assert Membership.objects.get(organization=org, user=invitee).role == OrgRole.MEMBER
    assert guest.locator('strong[data-my-role="member"]').is_visible()

    # The owner makes Ivan an admin, then removes him.
    owner.goto(f"{site}/organizations/{org.pk}")
    row = owner.locator('tr[data-member="ivan@example.com"]')
    row.get_by_label("Role of ivan@example.com", exact=True).select_option("admin")
    row.get_by_role("button", name="Change the role of ivan@example.com").click()
    owner.wait_for_url(f"{site}/organizations/{org.pk}?done=role")
    assert Membership.objects.get(organization=org, user=invitee).role == OrgRole.ADMIN
    guest.goto(f"{site}/organizations/{org.pk}")
    assert guest.locator('strong[data-my-role="admin"]').is_visible()
    owner.locator('tr[data-member="ivan@example.com"]').get_by_role("button", name="Remove ivan@example.com").click()
    owner.wait_for_url(f"{site}/organizations/{org.pk}?done=removed")
    assert not Membership.objects.filter(organization=org, user=invitee).exists()
    assert owner.locator('tr[data-member="ivan@example.com"]').count() == 0
    guest.goto(f"{site}/organizations/{org.pk}")
    assert guest.get_by_text("No such organization.").is_visible()

    # Switching the active organization changes what GET /api/v1/auth/token says.
    assert "org" not in claims(owner)
    owner.goto(f"{site}/organizations")
    owner.get_by_role("button", name="Make Acme Browser active").click()
    owner.wait_for_url(f"{site}/organizations?done=switched")
    assert owner.locator(f'tr[data-org="{org.pk}"]').get_by_text("Active").is_visible()
    token = claims(owner)
    assert token["org"] == str(org.pk) and token["orgRole"] == "owner"
    owner.get_by_role("button", name="Use no organization").click()
    owner.wait_for_url(f"{site}/organizations?done=switched")
    assert "org" not in claims(owner) and "orgRole" not in claims(owner)

    assert csp_violations(owner) == [] and csp_violations(guest) == []
    assert owner_problems == [] and guest_problems == [], (owner_problems, guest_problems)


def test_pages_render_without_csp_violations(site, new_page):
    """Every organization page, on a narrow screen too, with nothing blocked by the policy."""
    user = UserFactory(email="olga@example.com")
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    _, page = new_page()
    problems = watch_console(page)
    browser_sign_in(page, site, user.email)
    for path in ("/organizations", f"/organizations/{org.pk}", f"/organizations/{org.pk}/delete",
                 "/invitations/accept?token=abc", "/invitations/accept"):
        for width in (1200, 380):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{site}{path}")
            assert page.locator("h1").first.is_visible()
            assert csp_violations(page) == [], path
    assert problems == [], problems

    # The watch works: an inline style added by a script is refused and reported.
    page.evaluate("""() => { const s = document.createElement('style'); s.textContent = 'body{color:red}';
                             document.head.appendChild(s); }""")
    page.wait_for_function("() => (window.__cspViolations || []).length > 0")
    assert any("style-src" in v for v in csp_violations(page))
    assert any("Content Security Policy" in p for p in problems)

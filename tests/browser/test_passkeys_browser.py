"""Passkeys in headless Chromium with a virtual authenticator (DevTools protocol: WebAuthn.enable,
WebAuthn.addVirtualAuthenticator, ctap2 over the internal transport, resident keys, user verification):
add a passkey on the account page, sign out, "Sign in with a passkey", see it listed with its last use,
remove it (after a step-up with the passkey). The relying party is the live server: AUTH_PUBLIC_URL is its URL (rp id "localhost")."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent, EventType
from passkeys.models import Passkey
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import browser_sign_in


def virtual_authenticator(context, page) -> tuple:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def test_add_a_passkey_sign_out_sign_in_with_it_and_remove_it(site, new_page, settings):
    settings.AUTH_PUBLIC_URL = site
    user = UserFactory()
    context, page = new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    cdp, authenticator = virtual_authenticator(context, page)

    browser_sign_in(page, site, user.email)
    page.goto(f"{site}/account/two-factor")
    page.get_by_label("Name").fill("Test laptop")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_text("Passkey \u201cTest laptop\u201d added").wait_for()
    assert page.locator(".passkey-name").all_inner_texts() == ["Test laptop"]
    assert page.locator(".passkey-last-used").inner_text() == "Never used"
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"] is True
    passkey = Passkey.objects.get(user=user)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site}/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{site}/account")
    assert page.get_by_role("link", name=user.email).is_visible()
    assert DeviceSession.objects.filter(user=user, revoked_at__isnull=True, amr=["hwk", "user", "mfa"]).count() == 1

    page.goto(f"{site}/account/two-factor")
    assert page.locator(".passkey-last-used").inner_text().startswith("Last used")
    passkey.refresh_from_db()
    assert passkey.last_used_at is not None and passkey.sign_count >= 1

    # step-up with the passkey: a stale session is sent to /account/reauthenticate, which offers it
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    page.get_by_role("button", name="Remove Test laptop").click()
    page.wait_for_url(f"{site}/account/reauthenticate*")
    page.get_by_role("button", name="Use a passkey instead").click()
    page.wait_for_url(f"{site}/account/two-factor")
    assert Passkey.objects.filter(user=user).exists()  # the refused removal did nothing; now fresh
    page.get_by_role("button", name="Remove Test laptop").click()
    page.get_by_text("Passkey removed.").wait_for()
    assert page.get_by_text("You have no passkeys yet.").is_visible()
    assert not Passkey.objects.filter(user=user).exists()
    assert {EventType.PASSKEY_ADDED, EventType.PASSKEY_USED, EventType.PASSKEY_REMOVED} <= set(
        AuditEvent.objects.filter(actor_id=user.pk).values_list("event", flat=True))
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_password_then_the_passkey_as_the_second_step(site, new_page, settings):
    settings.AUTH_PUBLIC_URL = site
    user = UserFactory()
    context, page = new_page()
    virtual_authenticator(context, page)
    browser_sign_in(page, site, user.email)
    page.goto(f"{site}/account/two-factor")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_text("added. You can sign in with it now").wait_for()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site}/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{site}/login/two-factor*")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{site}/account")
    assert DeviceSession.objects.filter(user=user, revoked_at__isnull=True,
                                        amr=["pwd", "hwk", "user", "mfa"]).count() == 1

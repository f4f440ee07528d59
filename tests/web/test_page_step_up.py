"""Issue 4 on the pages: step-up, account deletion, security activity, the mailed links' landing pages,
and the known-device cookie of the login page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent, EventType
from audit.services import audit_record
from security.models import SecurityTokenPurpose
from security.services import security_token_issue
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login
from web.app_settings import app_settings as web_settings

NEW_PASSWORD = "A-Brand-New-Passphrase-42"


def _make_stale(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=2))


def _change_password(client):
    return client.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})


# --- step-up -----------------------------------------------------------------------------------------
def test_password_change_with_a_fresh_sign_in_works(signed_in, user):
    response = _change_password(signed_in)
    assert response.status_code == 200 and "Your password is changed" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_stale_password_change_goes_to_reauth_and_changes_nothing(signed_in, user):
    _make_stale(user)
    response = _change_password(signed_in)
    assert response.status_code == 302
    assert response["Location"] == "/account/reauthenticate?next=%2Faccount"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_ordinary_activity_does_not_make_a_stale_session_fresh(signed_in, user):
    _make_stale(user)
    for path in ("/account", "/account/sessions", "/account/security"):
        assert signed_in.get(path).status_code == 200
    assert _change_password(signed_in).status_code == 302


def test_reauth_returns_to_the_action_and_then_the_change_works(signed_in, user):
    _make_stale(user)
    page = signed_in.get("/account/reauthenticate?next=/account")
    assert page.status_code == 200 and 'name="next" value="/account"' in page.content.decode()
    response = signed_in.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account"})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert AuditEvent.objects.filter(event=EventType.REAUTHENTICATED, actor_id=user.pk).exists()
    assert _change_password(signed_in).status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_reauth_with_a_wrong_password_stays_and_is_audited(signed_in, user):
    _make_stale(user)
    response = signed_in.post("/account/reauthenticate", {"password": "Wrong-Password-1234", "next": "/account"})
    assert response.status_code == 200
    assert "The password is incorrect." in response.content.decode()
    assert AuditEvent.objects.filter(event=EventType.REAUTHENTICATION_FAILED, actor_id=user.pk).count() == 1
    assert _change_password(signed_in).status_code == 302  # still stale


def test_reauth_next_cannot_leave_the_site(signed_in):
    response = signed_in.post("/account/reauthenticate", {"password": PASSWORD, "next": "https://evil.example/x"})
    assert response.status_code == 302 and response["Location"] == "/account"


def test_reauth_needs_a_signed_in_browser(web):
    response = web.get("/account/reauthenticate?next=/account")
    assert response.status_code == 302 and response["Location"].startswith("/login?")


# --- deletion ----------------------------------------------------------------------------------------
def test_delete_needs_step_up(signed_in, user):
    _make_stale(user)
    for response in (signed_in.get("/account/delete"), signed_in.post("/account/delete", {"confirm": "on"})):
        assert response.status_code == 302
        assert response["Location"] == "/account/reauthenticate?next=%2Faccount%2Fdelete"
    assert User.objects.filter(pk=user.pk).exists()


def test_delete_get_only_asks_and_post_needs_the_confirmation(signed_in, user):
    page = signed_in.get("/account/delete")
    assert page.status_code == 200 and 'action="/account/delete"' in page.content.decode()
    unconfirmed = signed_in.post("/account/delete", {})
    assert unconfirmed.status_code == 200
    assert User.objects.filter(pk=user.pk).exists()


def test_delete_deletes_audits_and_signs_the_browser_out(signed_in, user):
    response = signed_in.post("/account/delete", {"confirm": "on"})
    assert response.status_code == 200 and "Account deleted" in response.content.decode()
    assert not User.objects.filter(pk=user.pk).exists()
    assert AuditEvent.objects.filter(event=EventType.ACCOUNT_DELETED, actor_id=user.pk).exists()
    after = signed_in.get("/account")
    assert after.status_code == 302 and after["Location"].startswith("/login")


def test_delete_after_reauth_of_a_stale_session(signed_in, user):
    _make_stale(user)
    back = signed_in.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account/delete"})
    assert back["Location"] == "/account/delete"
    assert signed_in.post("/account/delete", {"confirm": "on"}).status_code == 200
    assert not User.objects.filter(pk=user.pk).exists()


# --- security activity ------------------------------------------------------------------------------
def test_security_page_shows_own_events_newest_first(signed_in, user, settings):
    other = UserFactory(email="other@example.com")
    audit_record(event=EventType.LOGIN_FAILED, actor=other, subject=other, success=False,
                 reason="other-users-secret")
    signed_in.post("/account/reauthenticate", {"password": "Wrong-Password-1234"})
    body = signed_in.get("/account/security").content.decode()
    assert "other-users-secret" not in body
    assert body.index(EventType.REAUTHENTICATION_FAILED) < body.index(EventType.LOGIN_SUCCEEDED)


def test_account_page_links_the_new_pages(signed_in):
    body = signed_in.get("/account").content.decode()
    for path in ("/account/security", "/account/delete", "/account/sessions"):
        assert f'href="{path}"' in body


# --- mailed links ----------------------------------------------------------------------------------
def _token(user, purpose):
    return security_token_issue(user=user, purpose=purpose, ttl=timedelta(hours=1))


def test_mail_templates_link_to_the_landing_pages(settings):
    """The mails' links are ``public_url`` of these routes (every mail kind is sent and its links
    checked in tests/core/test_public_url_links.py)."""
    from pathlib import Path

    from core.links import public_url

    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    assert public_url("web-account-unlock", token="t") == "https://auth.example.com/account/unlock?token=t"
    assert public_url("web-account-not-me", token="t") == "https://auth.example.com/account/not-me?token=t"
    root = Path(settings.BASE_DIR) / "templates" / "emails"
    assert "{{ link }}" in (root / "account_locked.txt").read_text()
    assert "{{ not_me_link }}" in (root / "new_sign_in.txt").read_text()


def test_unlock_get_does_nothing_post_unlocks_and_trusts_the_browser(user, settings):
    attacker = Client(HTTP_USER_AGENT=CHROME_LINUX)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page_login(attacker, user.email, password="Wrong-Password-1234")
    assert page_login(attacker, user.email).status_code == 429
    token = _token(user, SecurityTokenPurpose.UNLOCK)
    owner = Client(HTTP_USER_AGENT=CHROME_LINUX)
    page = owner.get(f"/account/unlock?token={token}")
    assert page.status_code == 200 and 'action="/account/unlock"' in page.content.decode()
    assert not AuditEvent.objects.filter(event=EventType.ACCOUNT_UNLOCKED).exists()
    assert page_login(Client(HTTP_USER_AGENT=CHROME_LINUX), user.email).status_code == 429  # still locked
    done = owner.post("/account/unlock", {"token": token})
    assert done.status_code == 200 and "Sign-in unlocked" in done.content.decode()
    assert AuditEvent.objects.filter(event=EventType.ACCOUNT_UNLOCKED, actor_id=user.pk).exists()
    assert done.cookies[web_settings.DEVICE_COOKIE]["httponly"]
    assert owner.post("/account/unlock", {"token": token}).status_code == 400  # single use


def test_not_me_get_does_nothing_post_secures_the_account(signed_in, user):
    token = _token(user, SecurityTokenPurpose.NOT_ME)
    landing = Client(HTTP_USER_AGENT=CHROME_LINUX)
    page = landing.get(f"/account/not-me?token={token}")
    assert page.status_code == 200 and 'action="/account/not-me"' in page.content.decode()
    user.refresh_from_db()
    assert user.has_usable_password()
    assert DeviceSession.objects.filter(user=user, revoked_at__isnull=True).exists()
    done = landing.post("/account/not-me", {"token": token})
    assert done.status_code == 200
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert not DeviceSession.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert AuditEvent.objects.filter(event=EventType.NOT_ME_REPORTED, actor_id=user.pk).exists()
    assert signed_in.get("/account/sessions").status_code == 302  # the signed-in browser is out


@pytest.mark.parametrize("path", ["/account/unlock", "/account/not-me"])
def test_bad_link_tokens_are_a_page_not_an_error(web, path):
    assert web.post(path, {"token": "nope"}).status_code == 400
    assert web.post(path, {}).status_code == 400


# --- the known-device cookie ----------------------------------------------------------------------
def test_login_sets_a_long_lived_httponly_device_cookie(web, user):
    response = page_login(web, user.email)
    cookie = response.cookies[web_settings.DEVICE_COOKIE]
    assert cookie["httponly"] and int(cookie["max-age"]) >= 30 * 24 * 3600
    assert cookie.value


def test_known_browser_signs_in_while_strangers_are_locked_out(user, settings):
    known = Client(HTTP_USER_AGENT=CHROME_LINUX)
    assert page_login(known, user.email).status_code == 302  # gets the device cookie
    # Its session ends on its own (signing out would end the exemption too: tests/security/test_known_devices.py).
    DeviceSession.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(minutes=1))
    stranger = Client(HTTP_USER_AGENT=CHROME_LINUX)  # same IP (the test client's 127.0.0.1)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page_login(stranger, user.email, password="Wrong-Password-1234")
    locked = page_login(stranger, user.email)
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert "Try again in about" in locked.content.decode()
    assert page_login(known, user.email).status_code == 302
    assert page_login(Client(HTTP_USER_AGENT=CHROME_LINUX), user.email).status_code == 429  # the lock stays

"""Two-factor on the pages: /login continues to /login/two-factor with no session before the code,
"trust this browser", the settings page (QR code, recovery codes once, new codes, off), step-up with a
code, trusted devices on the sessions page, and staff removing a user's factors in the admin."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from mfa.models import MfaChallenge, TotpDevice, TrustedDevice
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.mfa.support import code_at, enrol
from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login, session_cookie
from web.app_settings import app_settings as web_settings


def browser() -> Client:
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    client.get("/login")
    return client


def test_the_password_step_sets_no_session_cookie_and_continues_to_the_code(db):
    user = UserFactory()
    secret, _ = enrol(user)
    sessions_before = DeviceSession.objects.filter(user=user).count()
    client = browser()
    response = page_login(client, user.email, next="/account/sessions")
    assert response.status_code == 302 and response["Location"].startswith("/login/two-factor?")
    assert session_cookie(client) is None or not session_cookie(client).value
    assert DeviceSession.objects.filter(user=user).count() == sessions_before
    pending = response.cookies[web_settings.PENDING_COOKIE]
    assert pending["httponly"] and pending["path"] == "/login" and int(pending["max-age"]) == 300
    assert client.get("/account").status_code == 302  # not signed in
    form = client.get(response["Location"])
    assert form.status_code == 200 and b"Enter your code" in form.content
    code = code_at(secret)
    done = client.post("/login/two-factor", {"code": f" {code[:3]} {code[3:]} ", "next": "/account/sessions"})
    assert done.status_code == 302 and done["Location"] == "/account/sessions"
    assert session_cookie(client).value
    assert client.get("/account").status_code == 200
    row = DeviceSession.objects.filter(user=user).order_by("-created_at").first()
    assert row.amr == ["pwd", "otp", "mfa"]
    assert done.cookies[web_settings.PENDING_COOKIE].value == ""  # cleared


def test_a_wrong_code_stays_on_the_page_and_an_api_mfa_token_is_no_page_cookie(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    wrong = client.post("/login/two-factor", {"code": "000000" if code_at(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and b"The code is not valid" in wrong.content
    assert not (session_cookie(client) and session_cookie(client).value)
    # A challenge opened by the API cannot be answered on the page (and the other way round).
    from rest_framework.test import APIClient
    from tests.mfa.support import password_step
    api_token = password_step(APIClient(), user)["mfaToken"]
    other = browser()
    other.cookies[web_settings.PENDING_COOKIE] = api_token
    refused = other.post("/login/two-factor", {"code": code_at(secret)})
    assert refused.status_code == 401 and b"Sign in again" in refused.content


def test_no_pending_sign_in_goes_back_to_login(db):
    assert browser().get("/login/two-factor")["Location"] == "/login"


def test_trust_this_browser_skips_the_code_until_the_password_changes(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    done = client.post("/login/two-factor", {"code": code_at(secret), "trust": "on"})
    assert done.status_code == 302
    trusted = done.cookies[web_settings.TRUSTED_COOKIE]
    assert trusted["httponly"] and trusted.value.startswith(f"{user.pk}.mtd_")
    assert client.post("/logout").status_code == 302
    again = page_login(client, user.email)
    assert again.status_code == 302 and not again["Location"].startswith("/login/two-factor")
    sessions = client.get("/account/sessions")
    assert b"Trusted for two-factor sign-in" in sessions.content
    # A password change ends every trusted device, this browser's too.
    new = "A-Brand-New-Passphrase-42"
    assert client.post("/account/password", {"current_password": PASSWORD, "new_password": new}).status_code == 200
    client.post("/logout")
    assert page_login(client, user.email, new)["Location"].startswith("/login/two-factor")


def test_stop_trusting_a_device_from_the_sessions_page(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    client.post("/login/two-factor", {"code": code_at(secret), "trust": "on"})
    device = TrustedDevice.objects.get(user=user)
    assert client.post(f"/account/trusted-devices/{device.pk}/revoke")["Location"] == "/account/sessions?done=untrusted"
    assert TrustedDevice.objects.get(pk=device.pk).revoked_at is not None
    assert client.post(f"/account/trusted-devices/{device.pk}/revoke").status_code == 404


def test_the_settings_page_sets_up_with_a_qr_code_and_shows_the_codes_once(db):
    user = UserFactory()
    client = browser()
    page_login(client, user.email)
    assert b"Set up an authenticator app" in client.get("/account/two-factor").content
    assert client.post("/account/two-factor/setup")["Location"] == "/account/two-factor"
    shown = client.get("/account/two-factor")
    assert b"<svg" in shown.content and b'id="totp-secret"' in shown.content
    from mfa.services import totp_secret
    secret = totp_secret(TotpDevice.objects.get(user=user))
    assert secret.encode() in shown.content
    confirmed = client.post("/account/two-factor/confirm", {"code": code_at(secret)})
    assert confirmed.status_code == 200 and b"Your recovery codes" in confirmed.content
    assert confirmed.content.count(b"<li><code>") == 10
    later = client.get("/account/two-factor")
    assert b"Your recovery codes" not in later.content and b"<svg" not in later.content
    assert b'id="codes-left">10<' in later.content
    regenerated = client.post("/account/two-factor/recovery-codes")
    assert regenerated.content.count(b"<li><code>") == 10
    off = client.post("/account/two-factor/disable")
    assert b"Two-factor sign-in is off" in off.content and not TotpDevice.objects.filter(user=user).exists()


def test_setup_pages_need_a_fresh_session_and_reauthentication_takes_a_code(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    client.post("/login/two-factor", {"code": code_at(secret)})
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    asked = client.post("/account/two-factor/disable")
    assert asked["Location"].startswith("/account/reauthenticate?")
    form = client.get(asked["Location"])
    assert b"authenticator app" in form.content
    back = client.post("/account/reauthenticate", {"code": code_at(secret, 1), "next": "/account/two-factor"})
    assert back.status_code == 302 and back["Location"] == "/account/two-factor"
    assert client.post("/account/two-factor/disable").status_code == 200
    assert not TotpDevice.objects.filter(user=user).exists()


def test_staff_remove_a_users_factors_in_the_admin(db):
    user = UserFactory()
    enrol(user)
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = browser()
    page_login(client, staff.email)
    mail.outbox.clear()
    device = TotpDevice.objects.get(user=user)
    response = client.post("/admin/mfa/totpdevice/", {"action": "remove_factors", "_selected_action": [str(device.pk)]})
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(event=EventType.MFA_REMOVED_BY_STAFF, actor_id=staff.pk, subject_id=user.pk).exists()
    assert [m.to for m in mail.outbox] == [[user.email]] and "administrator" in mail.outbox[0].body
    page = client.get("/admin/mfa/totpdevice/")
    assert page.status_code == 200


def test_the_security_activity_page_says_it_in_words(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    client.post("/login/two-factor", {"code": code_at(secret), "trust": "on"})
    activity = client.get("/account/security").content.decode()
    for words in ("Two-factor authentication turned on", "Second step of sign-in passed",
                  "Browser or device trusted for two-factor"):
        assert words in activity, words


def test_this_wasnt_me_ends_trusted_devices(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    client.post("/login/two-factor", {"code": code_at(secret), "trust": "on"})
    from security.models import SecurityTokenPurpose
    from security.services import security_token_issue
    user.refresh_from_db()  # enrolling moved the security version
    raw = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=1),
                               email=user.email)
    assert Client().post("/account/not-me", {"token": raw}).status_code == 200
    user.refresh_from_db()
    from mfa.services import trusted_devices_of
    assert not trusted_devices_of(user).exists()


def test_expired_challenges_and_ended_trusted_devices_are_cleaned_up(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = browser()
    page_login(client, user.email)
    MfaChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    TrustedDevice.objects.create(user=user, token_hash="x" * 64, security_version=0, expires_at=timezone.now())
    from mfa.tasks import mfa_cleanup
    assert mfa_cleanup() == 2
    assert not MfaChallenge.objects.exists() and not TrustedDevice.objects.exists()


def test_adding_an_account_with_two_factor_keeps_the_first_one_signed_in(db):
    first, second = UserFactory(), UserFactory()
    secret, _ = enrol(second)
    client = browser()
    assert page_login(client, first.email).status_code == 302
    asked = client.post("/login", {"email": second.email, "password": PASSWORD, "add": "1", "next": "/accounts"})
    assert asked["Location"].startswith("/login/two-factor?")
    assert client.get("/account").context["user"] == first  # still the first account until the code
    done = client.post("/login/two-factor", {"code": code_at(secret), "next": "/accounts"})
    assert done["Location"] == "/accounts"
    listed = client.get("/accounts").content.decode()
    assert first.email in listed and second.email in listed


def test_staff_remove_every_factor_from_the_user_list_passkeys_too(db):
    from passkeys.models import Passkey

    user = UserFactory()
    enrol(user)
    user.refresh_from_db()
    Passkey.objects.create(user=user, credential_id=b"cred-1", public_key=b"key", sign_count=0, name="Phone")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = browser()
    page_login(client, staff.email)
    response = client.post("/admin/accounts/user/", {"action": "remove_two_factor", "_selected_action": [str(user.pk)]})
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists() and not Passkey.objects.filter(user=user).exists()
    row = AuditEvent.objects.get(event=EventType.MFA_REMOVED_BY_STAFF, subject_id=user.pk)
    assert row.actor_id == staff.pk and row.context["credentials_removed"] == 1

"""Issue 14: a known-device token (the lockout exemption, security/lockout.py) dies with the password
(change, reset, staff or a script), with "this wasn't me", with the user signing that device's session
out, and works only for the device that received it."""

from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User, hash_token
from audit.models import AuditEvent, EventType
from security.app_settings import app_settings as security_settings
from security.lockout import KNOWN_DEVICE_SALT, known_devices_cleanup
from security.models import KnownDevice, SecurityTokenPurpose
from security.services import security_token_issue
from sessions_app.models import DeviceSession
from tests.conftest import last_mail_to, link_token
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import page_login
from web.app_settings import app_settings as web_settings

from .conftest import CHROME, FIREFOX, post_login

WRONG = "Wrong-Password-123456"
NEW_PASSWORD = "A-Brand-New-Passphrase-42"
STRANGER_IP = "127.0.0.1"  # the address the owner's devices share with the stranger (office NAT, café)


def lock_out(email, ip=STRANGER_IP):
    """A stranger on the shared address locks the (account, address) pair."""
    for _ in range(5):
        post_login(APIClient(), email, WRONG, ip=ip)
    assert post_login(APIClient(), email, PASSWORD, ip=ip).status_code == 429


def device_login(email, device_id="phone-1", password=PASSWORD, token="", ua=""):
    """A login from an app with a deviceId; returns (status, body)."""
    body = {"deviceId": device_id} if device_id else {}
    if token:
        body["deviceToken"] = token
    response = post_login(APIClient(), email, password, ua=ua, **body)
    return response.status_code, response.json()


def exempt(email, token, device_id="phone-1", password=PASSWORD, ua=""):
    """Does the token still let its device sign in while the pair is locked?"""
    status, _ = device_login(email, device_id=device_id, password=password, token=token, ua=ua)
    assert status in (200, 429), status
    return status == 200


def bearer(access_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def refusal_reasons(user):
    return list(AuditEvent.objects.filter(event=EventType.KNOWN_DEVICE_REFUSED, subject_id=user.pk)
                .order_by("id").values_list("context__reason", flat=True))


def sessions_expire(user):
    """The sessions end on their own (not signed out): the exemption outlives them."""
    DeviceSession.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(minutes=1))


@pytest.fixture
def phone(user):
    """The owner's phone signed in once: its session and its deviceToken."""
    status, body = device_login(user.email)
    assert status == 200
    return body


# --- a live token exempts, stored as a hash, bound and rotated ---------------------------------------------
def test_a_known_device_is_exempt_and_only_its_hash_is_stored(user, phone):
    row = KnownDevice.objects.get(user=user)
    assert row.token_hash == hash_token(phone["deviceToken"]) and str(row.session_id) == phone["session"]["id"]
    assert phone["deviceToken"] not in str(list(KnownDevice.objects.values()))
    lock_out(user.email)
    assert exempt(user.email, phone["deviceToken"])


def test_each_login_answers_a_new_token_and_ends_the_one_it_was_sent(user, phone):
    status, again = device_login(user.email, token=phone["deviceToken"])
    assert status == 200 and again["deviceToken"] != phone["deviceToken"]
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"])
    assert exempt(user.email, again["deviceToken"])
    assert "replaced" in refusal_reasons(user)


def test_a_token_from_before_known_devices_had_rows_no_longer_exempts(user):
    old_style = signing.dumps({"u": str(user.pk)}, salt=KNOWN_DEVICE_SALT, compress=True)
    lock_out(user.email)
    assert not exempt(user.email, old_style)
    assert refusal_reasons(user) == ["unknown"]


# --- bound to the device that received it ----------------------------------------------------------------
def test_a_token_lifted_to_another_device_does_not_exempt(user, phone):
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"], device_id="attackers-phone")
    assert not exempt(user.email, phone["deviceToken"], device_id="")
    assert refusal_reasons(user) == ["other_device", "other_device"]
    assert exempt(user.email, phone["deviceToken"], device_id="phone-1")  # still good on the phone


def test_a_browser_token_lifted_to_another_browser_does_not_exempt(user):
    status, body = device_login(user.email, device_id="", ua=CHROME)
    assert status == 200
    lock_out(user.email)
    assert not exempt(user.email, body["deviceToken"], device_id="", ua=FIREFOX)
    assert refusal_reasons(user) == ["other_device"]
    assert exempt(user.email, body["deviceToken"], device_id="", ua=CHROME)


def test_a_page_cookie_lifted_into_another_browser_does_not_exempt(user):
    browser = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(browser, user.email).status_code == 302
    cookie = browser.cookies[web_settings.DEVICE_COOKIE].value
    assert KnownDevice.objects.get(user=user).session_id is not None
    sessions_expire(user)
    lock_out(user.email)
    other = Client(HTTP_USER_AGENT=FIREFOX)
    other.cookies[web_settings.DEVICE_COOKIE] = cookie
    assert page_login(other, user.email).status_code == 429
    assert page_login(browser, user.email).status_code == 302  # the browser that received it


def test_the_unlock_link_binds_its_token_to_the_device_that_opens_it(user):
    lock_out(user.email)
    raw = link_token(last_mail_to(user.email))
    response = APIClient().post("/api/v1/auth/unlock", {"token": raw, "deviceId": "tablet-7"}, format="json",
                                REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 200
    token = response.json()["deviceToken"]
    assert KnownDevice.objects.get(user=user).session_id is None
    assert not exempt(user.email, token, device_id="phone-1")
    assert exempt(user.email, token, device_id="tablet-7")


# --- dies with the password and with "this wasn't me" -----------------------------------------------------
def test_a_password_change_elsewhere_ends_the_exemption(user, phone):
    laptop = bearer(device_login(user.email, device_id="laptop-1")[1]["accessToken"])
    response = laptop.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                           format="json")
    assert response.status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"], password=NEW_PASSWORD)
    assert refusal_reasons(user) == ["superseded"]


def test_the_device_that_changed_the_password_stays_known(user, phone):
    me = bearer(phone["accessToken"])
    response = me.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                       format="json")
    assert response.status_code == 204
    lock_out(user.email)
    assert exempt(user.email, phone["deviceToken"], password=NEW_PASSWORD)


def test_a_password_reset_ends_the_exemption(user, phone):
    assert APIClient().post("/api/v1/auth/forgot-password", {"email": user.email}, format="json").status_code == 202
    reset = link_token(last_mail_to(user.email))
    assert APIClient().post("/api/v1/auth/reset-password", {"token": reset, "password": NEW_PASSWORD},
                            format="json").status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"], password=NEW_PASSWORD)


def test_this_wasnt_me_ends_the_exemption(user, phone):
    raw = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=security_settings.NOT_ME_TTL)
    assert APIClient().post("/api/v1/auth/not-me", {"token": raw}, format="json").status_code == 204
    reset = link_token(last_mail_to(user.email))  # the owner sets a new password from the mailed link
    assert APIClient().post("/api/v1/auth/reset-password", {"token": reset, "password": NEW_PASSWORD},
                            format="json").status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"], password=NEW_PASSWORD)


@pytest.mark.parametrize("how", ["shell", "admin"])
def test_a_password_set_by_staff_or_a_script_ends_the_exemption(how, user, phone):
    if how == "shell":
        someone = User.objects.get(pk=user.pk)
        someone.set_password(NEW_PASSWORD)
        someone.save()
    else:
        staff = Client()
        staff.force_login(UserFactory(is_staff=True, is_superuser=True, role="admin"))
        response = staff.post(f"/admin/accounts/user/{user.pk}/password/",
                              {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
        assert response.status_code == 302
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"], password=NEW_PASSWORD)


# --- dies with the user's sign-out of that device -----------------------------------------------------------
def test_signing_the_device_out_ends_its_exemption_and_no_other(user, phone):
    tablet = device_login(user.email, device_id="tablet-7")[1]
    assert bearer(phone["accessToken"]).post("/api/v1/auth/logout").status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"])
    assert refusal_reasons(user) == ["logout"]
    assert exempt(user.email, tablet["deviceToken"], device_id="tablet-7")


def test_signing_a_device_out_from_the_sessions_list_ends_its_exemption(user, phone):
    laptop = bearer(device_login(user.email, device_id="laptop-1")[1]["accessToken"])
    assert laptop.delete(f"/api/v1/auth/sessions/{phone['session']['id']}").status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"])
    assert refusal_reasons(user) == ["user_revoked"]


def test_sign_out_everywhere_else_keeps_only_this_devices_exemption(user, phone):
    laptop_login = device_login(user.email, device_id="laptop-1")[1]
    assert bearer(laptop_login["accessToken"]).post("/api/v1/auth/sessions/revoke-others").status_code == 204
    lock_out(user.email)
    assert not exempt(user.email, phone["deviceToken"])
    assert exempt(user.email, laptop_login["deviceToken"], device_id="laptop-1")


def test_a_page_sign_out_ends_the_browsers_exemption(user):
    browser = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(browser, user.email).status_code == 302
    browser.post("/logout")
    lock_out(user.email)
    assert page_login(browser, user.email).status_code == 429
    assert refusal_reasons(user) == ["logout"]


def test_a_page_revoking_another_browser_ends_its_exemption(user):
    other = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(other, user.email).status_code == 302
    lost = DeviceSession.objects.get(user=user)
    mine = Client(HTTP_USER_AGENT=FIREFOX)
    assert page_login(mine, user.email).status_code == 302
    assert mine.post(f"/account/sessions/{lost.pk}/revoke").status_code == 302
    lock_out(user.email)
    assert page_login(other, user.email).status_code == 429
    assert page_login(mine, user.email).status_code == 302  # this browser's session and exemption stay


def test_an_expired_session_keeps_its_device_exempt(user, phone):
    sessions_expire(user)
    lock_out(user.email)
    assert exempt(user.email, phone["deviceToken"])


# --- housekeeping ------------------------------------------------------------------------------------------
def test_cleanup_deletes_known_devices_that_ended(user, phone):
    status, tablet = device_login(user.email, device_id="tablet-7")
    bearer(tablet["accessToken"]).post("/api/v1/auth/logout")  # revoked now: kept a day
    assert known_devices_cleanup() == 0
    assert known_devices_cleanup(now=timezone.now() + timedelta(days=2)) == 1
    User.objects.filter(pk=user.pk).update(security_version=1)  # superseded: gone at once
    assert known_devices_cleanup() == 1
    assert not KnownDevice.objects.exists()

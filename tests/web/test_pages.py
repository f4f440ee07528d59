"""Every page and its rules, through Django's test client."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent, EventType
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import PASSWORD, UserFactory
from tests.support.agents import IPHONE_SAFARI
from tests.support.auth import login, page_login
from tests.support.mail import last_mail_to, link_token

NEW_PASSWORD = "Another-Long-Passphrase-77"


# --- login -------------------------------------------------------------------------------------------
def test_login_page_is_an_accessible_form(web):
    page = web.get("/login").content.decode()
    for field, label in [("email", "Email"), ("password", "Password"), ("remember_me", "Stay signed in")]:
        assert f'<label for="id_{field}">{label}</label>' in page
        assert f'id="id_{field}"' in page
    assert 'name="csrfmiddlewaretoken"' in page and '/static/web/site.css' in page
    assert 'name="viewport"' in page


def test_wrong_password_and_unknown_email_get_the_same_answer(web, user):
    wrong = page_login(web, user.email, password="Wrong-Password-1234")
    unknown = page_login(web, "nobody@example.com", password="Wrong-Password-1234")
    assert wrong.status_code == unknown.status_code == 200
    message = "The email or password is incorrect."
    assert message in wrong.content.decode() and message in unknown.content.decode()
    assert AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).count() == 2
    assert not DeviceSession.objects.exists()


def test_unverified_account_is_told_only_after_the_right_password(web):
    user = UserFactory(email_verified_at=None)
    page = page_login(web, user.email).content.decode()
    assert "Verify your email address" in page and "/verify-email/resend" in page
    assert not DeviceSession.objects.exists()


def test_safe_next_redirects(web, user, settings):
    assert page_login(web, user.email, next="/account/sessions")["Location"] == "/account/sessions"
    for bad in ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "http:///evil.example"]:
        fresh = Client()
        assert page_login(fresh, user.email, next=bad)["Location"] == "/account", bad
    settings.WEB = {**settings.WEB, "NEXT_ALLOWED_HOSTS": ["app.example.com"]}
    assert page_login(Client(), user.email, next="https://app.example.com/home")["Location"] == \
        "https://app.example.com/home"


def test_signed_in_visitor_on_login_goes_on(signed_in):
    assert signed_in.get("/login?next=/account/sessions")["Location"] == "/account/sessions"


def test_page_forms_need_csrf(user):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login", {"email": user.email, "password": PASSWORD}).status_code == 403


# --- register and verify ------------------------------------------------------------------------------
def test_register_weak_password_shows_the_error_next_to_the_field(web):
    page = web.post("/register", {"email": "new@example.com", "password": "short", "name": "N"}).content.decode()
    assert 'id="id_password-error"' in page and 'aria-invalid="true"' in page
    assert 'aria-describedby="id_password-error"' in page
    assert not User.objects.filter(email="new@example.com").exists()


def test_register_common_password_is_refused_like_the_api(web):
    page = web.post("/register", {"email": "new@example.com", "password": "password1234"}).content.decode()
    assert "too common" in page
    assert not User.objects.filter(email="new@example.com").exists()


def test_register_answers_the_same_for_a_taken_email(web, user):
    new = web.post("/register", {"email": "fresh@example.com", "password": PASSWORD, "name": "F"})
    taken = web.post("/register", {"email": user.email, "password": PASSWORD, "name": "F"})
    assert new.status_code == taken.status_code == 200
    assert "Check your inbox" in new.content.decode() and "Check your inbox" in taken.content.decode()
    assert last_mail_to("fresh@example.com").subject == "Confirm your email address"
    assert last_mail_to(user.email).subject == "You already have an account"
    assert AuditEvent.objects.filter(event=EventType.REGISTER_EXISTING).exists()


def test_verify_email_get_never_uses_the_token(web):
    web.post("/register", {"email": "fresh@example.com", "password": PASSWORD})
    token = link_token(last_mail_to("fresh@example.com"))
    page = web.get(f"/verify-email?token={token}")
    assert page.status_code == 200 and "Confirm my email" in page.content.decode()
    assert f'value="{token}"' in page.content.decode()
    assert User.objects.get(email="fresh@example.com").email_verified_at is None  # a scanner's GET does nothing
    done = web.post("/verify-email", {"token": token, "password": PASSWORD})
    assert done.status_code == 200 and "Email confirmed" in done.content.decode()
    assert User.objects.get(email="fresh@example.com").email_verified_at is not None
    again = web.post("/verify-email", {"token": token})
    assert again.status_code == 400
    assert AuditEvent.objects.filter(event=EventType.EMAIL_VERIFICATION_FAILED).exists()


def test_resend_verification_answers_the_same(web):
    UserFactory(email="unverified@example.com", email_verified_at=None)
    for email in ["unverified@example.com", "nobody@example.com"]:
        assert "we have sent an email" in web.post("/verify-email/resend", {"email": email}).content.decode()
    assert last_mail_to("unverified@example.com")


# --- passwords ------------------------------------------------------------------------------------------
def test_forgot_password_answers_the_same_for_unknown_addresses(web, user):
    known = web.post("/forgot-password", {"email": user.email}).content.decode()
    unknown = web.post("/forgot-password", {"email": "nobody@example.com"}).content.decode()
    assert "we have sent an email" in known and "we have sent an email" in unknown
    assert last_mail_to(user.email).subject == "Reset your password"
    assert last_mail_to("nobody@example.com").subject == "Password reset requested"


def test_reset_password_page(web, user):
    page_login(web, user.email)
    web.post("/forgot-password", {"email": user.email})
    token = link_token(last_mail_to(user.email))
    assert f'value="{token}"' in web.get(f"/reset-password?token={token}").content.decode()
    weak = web.post("/reset-password", {"token": token, "password": "short"}).content.decode()
    assert 'id="id_password-error"' in weak
    done = web.post("/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert "Password changed" in done.content.decode()
    assert not DeviceSession.objects.alive().filter(user=user).exists()  # every session ended
    assert web.post("/reset-password", {"token": token, "password": NEW_PASSWORD}).status_code == 400
    assert page_login(Client(), user.email, password=NEW_PASSWORD).status_code == 302


# --- logout -------------------------------------------------------------------------------------------------
def test_logout_is_post_only(signed_in, user):
    assert signed_in.get("/logout").status_code == 405
    response = signed_in.post("/logout")
    assert response.status_code == 302 and response["Location"] == "/login"
    row = DeviceSession.objects.get(user=user)
    assert row.revoked_reason == RevokeReason.LOGOUT
    assert AuditEvent.objects.filter(event=EventType.LOGOUT, session_id=row.pk).exists()
    assert response.cookies[app_settings.SESSION_COOKIE].value == ""
    assert signed_in.get("/account")["Location"].startswith("/login")


# --- account ------------------------------------------------------------------------------------------------
def test_account_needs_a_sign_in(web):
    response = web.get("/account")
    assert response.status_code == 302 and response["Location"] == "/login?next=%2Faccount"
    assert web.post("/account/profile", {"name": "x"})["Location"].startswith("/login")


def test_profile_update(signed_in, user):
    page = signed_in.post("/account/profile", {"name": "Ada Lovelace"}).content.decode()
    assert "Your profile is saved." in page
    user.refresh_from_db()
    assert user.name == "Ada Lovelace"


def test_change_password_wrong_current_is_shown_next_to_the_field(signed_in, user):
    page = signed_in.post("/account/password", {"current_password": "Wrong-Password-123",
                                                "new_password": NEW_PASSWORD}).content.decode()
    assert 'id="id_current_password-error"' in page and "The current password is incorrect." in page
    assert AuditEvent.objects.filter(event=EventType.PASSWORD_CHANGE_FAILED).exists()


def test_change_password_policy_and_other_sessions_end(signed_in, user, api):
    tokens = login(api, user.email)
    weak = signed_in.post("/account/password", {"current_password": PASSWORD, "new_password": "short"})
    assert 'id="id_new_password-error"' in weak.content.decode()
    done = signed_in.post("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert "Every other session was signed out." in done.content.decode()
    assert DeviceSession.objects.get(pk=tokens["session"]["id"]).revoked_reason == RevokeReason.PASSWORD_CHANGED
    assert signed_in.get("/account/sessions").status_code == 200  # this browser stays signed in
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert mail.outbox[-1].subject == "Your password was changed"


# --- where you're signed in -------------------------------------------------------------------------------
def test_sessions_page_lists_devices_readably(signed_in, user):
    phone = Client(HTTP_USER_AGENT=IPHONE_SAFARI, REMOTE_ADDR="203.0.113.9")
    page_login(phone, user.email)
    page = signed_in.get("/account/sessions").content.decode()
    assert "Where you&#x27;re signed in" in page or "Where you're signed in" in page
    assert page.count('class="session card') == 2
    assert "Mobile Safari" in page and "iOS 17.5" in page and "Chrome 126" in page and "Linux" in page
    assert "203.0.113.9" in page
    assert page.count("This device") == 1
    current = re.search(r'<li class="session card current" data-session="([^"]+)"', page).group(1)
    assert DeviceSession.objects.get(pk=current).device_name == "Chrome on Linux"
    assert "Sign out everywhere else" in page


def test_revoke_another_device(signed_in, user):
    phone = Client(HTTP_USER_AGENT=IPHONE_SAFARI)
    page_login(phone, user.email)
    other = DeviceSession.objects.get(user=user, device_name="Mobile Safari on iOS")
    response = signed_in.post(f"/account/sessions/{other.pk}/revoke")
    assert response.status_code == 302 and response["Location"] == "/account/sessions?done=revoked"
    other.refresh_from_db()
    assert other.revoked_reason == RevokeReason.USER_REVOKED
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, session_id=other.pk, actor=user).exists()
    assert phone.get("/account/sessions").status_code == 302


def test_revoke_is_post_only_and_only_for_my_sessions(signed_in, user):
    stranger = UserFactory()
    page_login(Client(), stranger.email)
    theirs = DeviceSession.objects.get(user=stranger)
    assert signed_in.get(f"/account/sessions/{theirs.pk}/revoke").status_code == 405
    assert signed_in.post(f"/account/sessions/{theirs.pk}/revoke").status_code == 404
    assert DeviceSession.objects.get(pk=theirs.pk).revoked_at is None


def test_sign_out_everywhere_else(signed_in, user, api):
    tokens = login(api, user.email)
    page_login(Client(HTTP_USER_AGENT=IPHONE_SAFARI), user.email)
    response = signed_in.post("/account/sessions/revoke-others")
    assert response["Location"] == "/account/sessions?done=others"
    alive = DeviceSession.objects.alive().filter(user=user)
    assert alive.count() == 1 and alive.get().device_name == "Chrome on Linux"
    assert DeviceSession.objects.get(pk=tokens["session"]["id"]).revoked_reason == RevokeReason.OTHERS_REVOKED


def test_revoking_this_device_signs_out(signed_in, user):
    row = DeviceSession.objects.get(user=user)
    assert signed_in.post(f"/account/sessions/{row.pk}/revoke")["Location"] == "/login"
    assert DeviceSession.objects.get(pk=row.pk).revoked_at is not None


@pytest.mark.parametrize("path", ["/login", "/register", "/verify-email", "/forgot-password", "/reset-password?token=x"])
def test_public_pages_render(web, path):
    response = web.get(path)
    assert response.status_code == 200 and b"<main" in response.content and b'lang="en"' in response.content


def test_stylesheet_is_served(web):
    response = web.get("/static/web/site.css")
    assert response.status_code == 200 and b"--accent" in b"".join(response.streaming_content)

from django.core import mail

from accounts.models import AccountToken, User
from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession
from tests.support.auth import login
from tests.support.mail import last_mail_to, link_token

REG = "/api/v1/auth/register"


def test_register_verify_login(api, db):
    r = api.post(REG, {"email": "New@Example.com", "password": "a-long-enough-pass", "name": "Nia"}, format="json")
    assert r.status_code == 202
    assert set(r.json()) == {"detail"}
    user = User.objects.get()
    assert user.email == "new@example.com" and not user.email_verified
    r = api.post("/api/v1/auth/login", {"email": "new@example.com", "password": "a-long-enough-pass"}, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "email_not_verified"
    token = link_token(last_mail_to("new@example.com"))
    assert not AccountToken.objects.filter(token_hash=token).exists()  # stored only as a hash
    r = api.post("/api/v1/auth/verify-email", {"token": token, "password": "a-long-enough-pass"}, format="json")
    assert r.status_code == 200
    assert r.json()["user"]["emailVerified"] is True
    assert set(r.json()["user"]) == {"id", "email", "name", "role", "emailVerified", "createdAt"}
    r = api.post("/api/v1/auth/verify-email", {"token": token}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_token"
    pair = login(api, "NEW@example.com", "a-long-enough-pass")
    assert pair["tokenType"] == "Bearer" and pair["expiresIn"] == 900
    assert set(pair) == {"accessToken", "refreshToken", "tokenType", "expiresIn", "refreshExpiresAt", "user", "session",
                         "deviceToken"}  # deviceToken: issue 4, known devices (docs/security.md)
    events = set(AuditEvent.objects.values_list("event", flat=True))
    assert {EventType.USER_REGISTERED, EventType.EMAIL_VERIFIED, EventType.LOGIN_SUCCEEDED,
            EventType.LOGIN_FAILED} <= events


def test_register_is_non_enumerating(api, user):
    mail.outbox.clear()
    fresh = api.post(REG, {"email": "someone@example.com", "password": "a-long-enough-pass"}, format="json")
    taken = api.post(REG, {"email": user.email.upper(), "password": "a-long-enough-pass"}, format="json")
    assert fresh.status_code == taken.status_code == 202
    assert fresh.json() == taken.json()
    notice = last_mail_to(user.email)
    assert "you already have" in notice.body and "login" in notice.body
    assert User.objects.filter(email=user.email).count() == 1


def test_login_failures_look_alike(api, user):
    unknown = api.post("/api/v1/auth/login", {"email": "nobody@example.com", "password": "whatever-password"},
                       format="json")
    wrong = api.post("/api/v1/auth/login", {"email": user.email, "password": "whatever-password"}, format="json")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    failed = AuditEvent.objects.filter(event=EventType.LOGIN_FAILED, success=False)
    assert failed.count() == 2
    assert failed.filter(subject=user).count() == 1


def test_unknown_email_costs_a_hash(api, db, monkeypatch):
    """Login for an unknown email runs the same argon2 work as a wrong password."""
    from tests.hashers import FastArgon2PasswordHasher

    calls = []
    original = FastArgon2PasswordHasher.encode
    monkeypatch.setattr(FastArgon2PasswordHasher, "encode",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    api.post("/api/v1/auth/login", {"email": "nobody@example.com", "password": "whatever-password"}, format="json")
    assert calls == [1]


def test_forgot_and_reset_password(api, user, password):
    other = login(api, user.email)
    r = api.post("/api/v1/auth/forgot-password", {"email": user.email}, format="json")
    assert r.status_code == 202
    token = link_token(last_mail_to(user.email))
    weak = api.post("/api/v1/auth/reset-password", {"token": token, "password": "short"}, format="json")
    assert weak.status_code == 400 and "password" in weak.json()["error"]["fields"]
    r = api.post("/api/v1/auth/reset-password", {"token": token, "password": "brand-new-password-1"}, format="json")
    assert r.status_code == 204
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    r = api.post("/api/v1/auth/refresh", {"refreshToken": other["refreshToken"]}, format="json")
    assert r.status_code == 401
    again = api.post("/api/v1/auth/reset-password", {"token": token, "password": "another-password-22"},
                     format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    login(api, user.email, "brand-new-password-1")
    assert last_mail_to(user.email).subject == "Your password was changed"


def test_forgot_password_unknown_email_same_answer(api, user):
    known = api.post("/api/v1/auth/forgot-password", {"email": user.email}, format="json")
    unknown = api.post("/api/v1/auth/forgot-password", {"email": "ghost@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202 and known.json() == unknown.json()


def test_change_password_revokes_other_sessions(api, user, password):
    first = login(api, user.email)
    second = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {first['accessToken']}")
    wrong = api.post("/api/v1/auth/change-password",
                     {"currentPassword": "not-the-password", "newPassword": "a-new-long-password"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_password"
    r = api.post("/api/v1/auth/change-password",
                 {"currentPassword": password, "newPassword": "a-new-long-password"}, format="json")
    assert r.status_code == 204
    assert api.get("/api/v1/auth/me").status_code == 200  # this session lives on
    assert DeviceSession.objects.get(pk=second["session"]["id"]).revoked_reason == "password_changed"


def test_me_read_and_update(authed, user):
    r = authed.get("/api/v1/auth/me")
    assert r.status_code == 200 and r.json()["email"] == user.email
    r = authed.patch("/api/v1/auth/me", {"name": "Zoë 名前"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "Zoë 名前"
    assert AuditEvent.objects.filter(event=EventType.PROFILE_UPDATED, actor=user).exists()


def test_reauthenticate(authed, user, password, tokens):
    bad = authed.post("/api/v1/auth/reauthenticate", {"password": "wrong-password-123"}, format="json")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_credentials"
    r = authed.post("/api/v1/auth/reauthenticate", {"password": password}, format="json")
    assert r.status_code == 200 and {"reauthenticatedAt", "freshUntil"} <= set(r.json())
    assert AuditEvent.objects.filter(event=EventType.REAUTHENTICATED).count() == 1

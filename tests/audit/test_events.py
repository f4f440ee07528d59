"""Every event the issue names writes one row, with who, whom, which session, where from and how it
went; failures are recorded even though the request failed; and the row shares the transaction of
the change it describes (if either fails, neither exists)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AccountToken, User
from audit import services as audit_services
from audit.models import AuditEvent, EventType
from identity.models import SigningKey
from notifications.models import OutboxMessage
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import login
from tests.support.mail import last_mail_to, link_token

UA = "AuditTest/1.0 (tests)"
IP = "198.51.100.23"
META = {"HTTP_USER_AGENT": UA, "REMOTE_ADDR": IP}


def post(api, path, body=None, **extra):
    return api.post(f"/api/v1/auth/{path}", body or {}, format="json", **META, **extra)


def bearer(pair):
    return {"HTTP_AUTHORIZATION": f"Bearer {pair['accessToken']}"}


def only(event, **filters):
    rows = list(AuditEvent.objects.filter(event=event, **filters))
    assert len(rows) == 1, (event, [(r.event, r.context) for r in AuditEvent.objects.all()])
    row = rows[0]
    assert row.created_at is not None and abs(timezone.now() - row.created_at) < timedelta(minutes=1)
    return row


def assert_request_meta(row):
    assert row.ip_address == IP and row.user_agent == UA


# --- success paths -----------------------------------------------------------------------------------

def test_registration_and_verification(api, db):
    assert post(api, "register", {"email": "ada@example.com", "password": "a-long-enough-pass"}).status_code == 202
    user = User.objects.get()
    row = only(EventType.USER_REGISTERED)
    assert row.actor_id == row.subject_id == user.pk and row.success and row.session_id is None
    assert_request_meta(row)
    token = link_token(last_mail_to(user.email))
    assert post(api, "verify-email", {"token": token, "password": "a-long-enough-pass"}).status_code == 200
    row = only(EventType.EMAIL_VERIFIED)
    assert row.actor_id == user.pk and row.success
    assert_request_meta(row)
    assert token not in str(row.context)


def test_login_logout_refresh_and_session_revoke(api, user):
    pair = login(api, user.email, ip=IP, ua=UA)
    sid = pair["session"]["id"]
    row = only(EventType.LOGIN_SUCCEEDED)
    assert (row.actor_id, row.subject_id, str(row.session_id), row.success) == (user.pk, user.pk, sid, True)
    assert_request_meta(row)

    r = post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    assert r.status_code == 200
    # A routine refresh is session activity, not an audit row (docs/audit.md "What is recorded").
    assert not AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED).exists()
    assert DeviceSession.objects.get(pk=sid).refresh_count == 1

    other = login(api, user.email, ip=IP, ua=UA)
    r = api.delete(f"/api/v1/auth/sessions/{other['session']['id']}", **META, **bearer(r.json()))
    assert r.status_code == 204
    row = only(EventType.SESSION_REVOKED, session_id=other["session"]["id"])
    assert row.actor_id == user.pk and row.subject_id == user.pk and row.context["reason"] == "user_revoked"
    assert_request_meta(row)

    mine = login(api, user.email, ip=IP, ua=UA)
    assert post(api, "logout", **bearer(mine)).status_code == 204
    row = only(EventType.LOGOUT)
    assert row.actor_id == user.pk and str(row.session_id) == mine["session"]["id"]
    assert_request_meta(row)
    assert only(EventType.SESSION_REVOKED, session_id=mine["session"]["id"]).context["reason"] == "logout"


def test_refresh_reuse_detected(api, user, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    pair = login(api, user.email, ip=IP, ua=UA)
    assert post(api, "refresh", {"refreshToken": pair["refreshToken"]}).status_code == 200
    r = post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_token_reused"
    row = only(EventType.REFRESH_REUSE_DETECTED)
    assert row.subject_id == user.pk and str(row.session_id) == pair["session"]["id"] and not row.success
    assert_request_meta(row)
    revoked = only(EventType.SESSION_REVOKED)
    assert revoked.context["reason"] == "refresh_token_reused"


def test_password_reset_requested_and_completed(api, user):
    assert post(api, "forgot-password", {"email": user.email}).status_code == 202
    row = only(EventType.PASSWORD_RESET_REQUESTED)
    assert row.subject_id == user.pk and row.success
    assert_request_meta(row)
    token = link_token(last_mail_to(user.email))
    assert post(api, "reset-password", {"token": token, "password": "brand-new-password-1"}).status_code == 204
    row = only(EventType.PASSWORD_RESET_COMPLETED)
    assert row.actor_id == user.pk and row.success
    assert_request_meta(row)
    assert "brand-new-password-1" not in str(list(AuditEvent.objects.values_list("context", flat=True)))


def test_password_reset_requested_for_an_unknown_address(api, db):
    post(api, "forgot-password", {"email": "ghost@example.com"})
    row = only(EventType.PASSWORD_RESET_REQUESTED)
    assert row.subject_id is None and not row.success and row.context["reason"] == "unknown_email"


def test_password_changed_and_reauthenticated(api, user):
    pair = login(api, user.email, ip=IP, ua=UA)
    r = post(api, "change-password", {"currentPassword": PASSWORD, "newPassword": "a-new-long-password"},
             **bearer(pair))
    assert r.status_code == 204
    row = only(EventType.PASSWORD_CHANGED)
    assert row.actor_id == user.pk and str(row.session_id) == pair["session"]["id"]
    assert_request_meta(row)
    r = post(api, "reauthenticate", {"password": "a-new-long-password"}, **bearer(pair))
    assert r.status_code == 200
    row = only(EventType.REAUTHENTICATED)
    assert row.actor_id == user.pk and str(row.session_id) == pair["session"]["id"] and row.success
    assert_request_meta(row)


def test_key_rotation(db, capsys):
    call_command("rotate_signing_key")
    call_command("rotate_signing_key")
    rows = AuditEvent.objects.filter(event=EventType.SIGNING_KEY_ROTATED)
    assert rows.count() == 2
    newest = SigningKey.objects.order_by("-created_at").first()
    assert rows.filter(context__kid=newest.kid).exists()
    assert all("private" not in str(r.context) for r in rows)


# --- failure paths write their row although the request fails ------------------------------------------

def test_login_failures_with_reason(api, user):
    assert post(api, "login", {"email": user.email, "password": "wrong-password-1"}).status_code == 401
    assert post(api, "login", {"email": "nobody@example.com", "password": "wrong-password-1"}).status_code == 401
    unverified = UserFactory(email_verified_at=None)
    assert post(api, "login", {"email": unverified.email, "password": PASSWORD}).status_code == 403
    rows = AuditEvent.objects.filter(event=EventType.LOGIN_FAILED, success=False)
    assert {(r.subject_id, r.context["reason"]) for r in rows} == {
        (user.pk, "invalid_credentials"), (None, "invalid_credentials"), (unverified.pk, "email_not_verified")}
    for row in rows:
        assert_request_meta(row)
        assert "wrong-password-1" not in str(row.context) and PASSWORD not in str(row.context)


def test_verification_failed(api, db):
    post(api, "register", {"email": "ada@example.com", "password": "a-long-enough-pass"})
    token = link_token(last_mail_to("ada@example.com"))
    assert post(api, "verify-email", {"token": "not-a-real-token"}).status_code == 400
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert post(api, "verify-email", {"token": token}).status_code == 400
    rows = AuditEvent.objects.filter(event=EventType.EMAIL_VERIFICATION_FAILED, success=False)
    assert sorted(r.context["reason"] for r in rows) == ["invalid_token", "token_expired"]
    for row in rows:
        assert_request_meta(row)
        assert token not in str(row.context)


def test_reset_failed(api, user):
    assert post(api, "reset-password", {"token": "nope", "password": "brand-new-password-1"}).status_code == 400
    post(api, "forgot-password", {"email": user.email})
    token = link_token(last_mail_to(user.email))
    assert post(api, "reset-password", {"token": token, "password": "short"}).status_code == 400
    rows = AuditEvent.objects.filter(event=EventType.PASSWORD_RESET_FAILED, success=False)
    assert sorted(r.context["reason"] for r in rows) == ["invalid_token", "validation_error"]
    for row in rows:
        assert_request_meta(row)
        assert "short" not in str(row.context)


def test_refresh_failed(api, db):
    assert post(api, "refresh", {"refreshToken": "mrt_unknown"}).status_code == 401
    row = only(EventType.TOKEN_REFRESH_FAILED)
    assert not row.success and row.context["reason"] == "unknown"
    assert_request_meta(row)
    assert "mrt_unknown" not in str(row.context)


def test_reauthentication_failed(api, user):
    pair = login(api, user.email, ip=IP, ua=UA)
    assert post(api, "reauthenticate", {"password": "wrong-password-1"}, **bearer(pair)).status_code == 401
    row = only(EventType.REAUTHENTICATION_FAILED)
    assert row.actor_id == user.pk and str(row.session_id) == pair["session"]["id"] and not row.success
    assert row.context["reason"] == "invalid_password"
    assert_request_meta(row)


@pytest.mark.parametrize("body, reason", [
    ({"currentPassword": "wrong-password-1", "newPassword": "a-new-long-password"}, "invalid_password"),
    ({"currentPassword": PASSWORD, "newPassword": "short"}, "password_policy"),
])
def test_change_password_failed(api, user, body, reason):
    pair = login(api, user.email, ip=IP, ua=UA)
    assert post(api, "change-password", body, **bearer(pair)).status_code == 400
    row = only(EventType.PASSWORD_CHANGE_FAILED)
    assert row.actor_id == user.pk and str(row.session_id) == pair["session"]["id"] and not row.success
    assert row.context["reason"] == reason
    assert_request_meta(row)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


# --- the row and the change share one transaction --------------------------------------------------------

class AuditDown(Exception):
    pass


@pytest.fixture
def audit_fails(monkeypatch):
    """From now on, writing an audit row fails."""
    def arm():
        def boom(row, **kwargs):
            raise AuditDown()
        monkeypatch.setattr(audit_services._INSERT, "execute", boom)  # the one writer of audit rows
    return arm


def test_no_registration_without_its_audit_row(api, db, audit_fails):
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "register", {"email": "ada@example.com", "password": "a-long-enough-pass"})
    assert not User.objects.exists() and not AccountToken.objects.exists() and not OutboxMessage.objects.exists()


def test_no_verification_without_its_audit_row(api, db, audit_fails):
    post(api, "register", {"email": "ada@example.com", "password": "a-long-enough-pass"})
    token = link_token(last_mail_to("ada@example.com"))
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "verify-email", {"token": token, "password": "a-long-enough-pass"})
    assert not User.objects.get().email_verified
    assert AccountToken.objects.get().used_at is None


def test_no_login_without_its_audit_row(api, user, audit_fails):
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "login", {"email": user.email, "password": PASSWORD})
    assert not DeviceSession.objects.exists()


def test_no_logout_or_revoke_without_its_audit_row(api, user, audit_fails):
    pair = login(api, user.email, ip=IP, ua=UA)
    other = login(api, user.email, ip=IP, ua=UA)
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "logout", **bearer(pair))
    with pytest.raises(AuditDown):
        api.delete(f"/api/v1/auth/sessions/{other['session']['id']}", **bearer(pair))
    assert DeviceSession.objects.alive().count() == 2


def test_no_refresh_without_its_audit_row(api, user, audit_fails, settings):
    settings.AUDIT = {**settings.AUDIT, "RECORD_REFRESHES": True}  # a routine refresh writes none by default
    pair = login(api, user.email, ip=IP, ua=UA)
    session = DeviceSession.objects.get()
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    assert DeviceSession.objects.get().refresh_secret_hash == session.refresh_secret_hash


def test_no_reuse_revocation_without_its_audit_row(api, user, settings, audit_fails):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    pair = login(api, user.email, ip=IP, ua=UA)
    post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    assert DeviceSession.objects.get().revoked_at is None


def test_no_password_reset_without_its_audit_rows(api, user, audit_fails):
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "forgot-password", {"email": user.email})
    assert not AccountToken.objects.exists() and not OutboxMessage.objects.exists()


def test_no_password_reset_completed_without_its_audit_row(api, user, monkeypatch):
    post(api, "forgot-password", {"email": user.email})
    token = link_token(last_mail_to(user.email))
    login(api, user.email, ip=IP, ua=UA)
    real_insert = audit_services._INSERT.execute

    def fail_on_completion(row, **kwargs):
        if row.event == EventType.PASSWORD_RESET_COMPLETED:
            raise AuditDown()
        return real_insert(row, **kwargs)

    monkeypatch.setattr(audit_services._INSERT, "execute", fail_on_completion)
    with pytest.raises(AuditDown):
        post(api, "reset-password", {"token": token, "password": "brand-new-password-1"})
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert AccountToken.objects.get().used_at is None
    assert DeviceSession.objects.alive().count() == 1
    assert not AuditEvent.objects.filter(event=EventType.SESSION_REVOKED).exists()


def test_no_password_change_or_reauthentication_without_its_audit_row(api, user, audit_fails):
    pair = login(api, user.email, ip=IP, ua=UA)
    other = login(api, user.email, ip=IP, ua=UA)
    before = DeviceSession.objects.get(pk=pair["session"]["id"]).reauthenticated_at
    audit_fails()
    with pytest.raises(AuditDown):
        post(api, "change-password", {"currentPassword": PASSWORD, "newPassword": "a-new-long-password"},
             **bearer(pair))
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert DeviceSession.objects.get(pk=other["session"]["id"]).revoked_at is None
    with pytest.raises(AuditDown):
        post(api, "reauthenticate", {"password": PASSWORD}, **bearer(pair))
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).reauthenticated_at == before


def test_no_key_rotation_without_its_audit_row(db, audit_fails):
    from identity.services.keys import signing_key_current

    signing_key_current()  # the first key
    keys = set(SigningKey.objects.values_list("kid", flat=True))
    audit_fails()
    with pytest.raises(AuditDown):
        call_command("rotate_signing_key")
    assert set(SigningKey.objects.values_list("kid", flat=True)) == keys
    assert SigningKey.objects.get().retires_at is None


def test_no_audit_row_when_the_change_fails_later_in_the_transaction(api, db, monkeypatch):
    """The other direction: the row is not committed on its own before the change is."""
    def mail_fails(**kwargs):
        raise AuditDown()

    monkeypatch.setattr("accounts.services.outbox_enqueue", mail_fails)
    with pytest.raises(AuditDown):
        post(api, "register", {"email": "ada@example.com", "password": "a-long-enough-pass"})
    assert not User.objects.exists()
    assert not AuditEvent.objects.filter(event=EventType.USER_REGISTERED).exists()


def test_routine_refreshes_are_written_when_the_operator_asks(api, user, settings):
    settings.AUDIT = {**settings.AUDIT, "RECORD_REFRESHES": True}
    pair = login(api, user.email, ip=IP, ua=UA)
    r = post(api, "refresh", {"refreshToken": pair["refreshToken"]})
    assert r.status_code == 200
    row = only(EventType.TOKEN_REFRESHED)
    assert row.actor_id == user.pk and str(row.session_id) == pair["session"]["id"]
    assert_request_meta(row)
    assert pair["refreshToken"] not in str(row.context)
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).refresh_count == 1

"""Step-up: change-password and DELETE me need a password entry within AUTH_REAUTH_MAX_AGE_SECONDS."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession
from tests.support.auth import login

NEW = "Another-Long-Passphrase-77"


def make_stale(tokens, minutes=11):
    DeviceSession.objects.all().update(reauthenticated_at=timezone.now() - timedelta(minutes=minutes))


def change_password(authed, password):
    return authed.post("/api/v1/auth/change-password", {"currentPassword": password, "newPassword": NEW},
                       format="json")


def test_change_password_needs_a_fresh_session(authed, tokens, user, password):
    make_stale(tokens)
    response = change_password(authed, password)
    assert response.status_code == 403 and response.json()["error"]["code"] == "reauthentication_required"
    user.refresh_from_db()
    assert user.check_password(password)
    row = AuditEvent.objects.get(event=EventType.REAUTHENTICATION_REQUIRED)
    assert row.actor_id == user.pk and not row.success
    assert authed.post("/api/v1/auth/reauthenticate", {"password": password}, format="json").status_code == 200
    assert change_password(authed, password).status_code == 204


def test_a_login_counts_as_fresh(authed, password):
    assert change_password(authed, password).status_code == 204


def test_freshness_is_not_bumped_by_activity_or_refresh(api, authed, tokens, settings, password):
    settings.SESSIONS = {**settings.SESSIONS, "ACTIVITY_RESOLUTION_SECONDS": 0}
    make_stale(tokens)
    before = DeviceSession.objects.get().reauthenticated_at
    assert authed.get("/api/v1/auth/me").status_code == 200
    refreshed = api.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert refreshed.status_code == 200
    assert DeviceSession.objects.get().reauthenticated_at == before
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['accessToken']}")
    assert change_password(client, password).status_code == 403


def test_max_age_is_the_contract_variable(settings, authed, tokens, password):
    settings.AUTH_REAUTH_MAX_AGE_SECONDS = 3600
    make_stale(tokens, minutes=30)
    assert change_password(authed, password).status_code == 204


def test_delete_me_needs_step_up_then_deletes_the_account_and_keeps_its_trail(api, authed, tokens, user, password):
    make_stale(tokens)
    response = authed.delete("/api/v1/auth/me")
    assert response.status_code == 403 and response.json()["error"]["code"] == "reauthentication_required"
    assert User.objects.filter(pk=user.pk).exists()
    second = login(api, user.email)  # another device, fresh
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {second['accessToken']}")
    trail_before = AuditEvent.objects.filter(subject_id=user.pk).count()
    assert client.delete("/api/v1/auth/me").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert not DeviceSession.objects.filter(user_id=user.pk).exists()
    # Every session was revoked (audited) before the account went; the trail survives the account.
    revoked = AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, subject_id=user.pk)
    assert revoked.count() == 2
    assert AuditEvent.objects.filter(event=EventType.ACCOUNT_DELETED, actor_id=user.pk).exists()
    assert AuditEvent.objects.filter(subject_id=user.pk).count() > trail_before
    assert authed.get("/api/v1/auth/me").status_code == 401
    assert api.post("/api/v1/auth/login", {"email": user.email, "password": password},
                    format="json").status_code == 401
    from audit.chain import chain_verify

    assert chain_verify().ok


def test_get_and_patch_me_need_no_step_up(authed, tokens):
    make_stale(tokens)
    assert authed.get("/api/v1/auth/me").status_code == 200
    assert authed.patch("/api/v1/auth/me", {"name": "New"}, format="json").status_code == 200


def test_the_permission_and_the_page_check_are_one_piece(rf, user):
    from security.stepup import PAGE_SESSION_KEY, reauth_is_fresh

    request = rf.get("/account/delete")
    request.session = {PAGE_SESSION_KEY: timezone.now().isoformat()}
    assert reauth_is_fresh(request)
    request.session = {PAGE_SESSION_KEY: (timezone.now() - timedelta(minutes=11)).isoformat()}
    assert not reauth_is_fresh(request)
    request.session = {}
    assert not reauth_is_fresh(request)

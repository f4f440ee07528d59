"""Listing and revoking sessions, logout, device replacement, constraints and cleanup."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from sessions_app import tasks
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken
from sessions_app.services import session_refresh, sessions_cleanup
from tests.factories import UserFactory
from tests.support.auth import bearer, login
from tests.support.errors import error_code

BASE = "/api/v1/auth/"
SESSION_KEYS = {"id", "deviceId", "deviceName", "ipAddress", "userAgent", "createdAt", "lastActivityAt",
                "expiresAt", "rememberMe", "amr", "current"}


@pytest.fixture
def three(api, user):
    """Three sessions of ``user`` (two devices and a browser) and one of someone else."""
    phone = login(api, user.email, deviceId="phone-1", deviceName="Pixel", rememberMe=True)
    laptop = login(api, user.email, deviceId="laptop-1", deviceName="ThinkPad")
    browser = APIClient(HTTP_USER_AGENT="Firefox/140")
    web = login(browser, user.email)
    stranger = UserFactory()
    theirs = login(api, stranger.email)
    return phone, laptop, web, theirs


def test_active_sessions_lists_only_the_callers_live_sessions(three, user):
    phone, laptop, web, theirs = three
    DeviceSession.objects.create(user=user, expires_at=timezone.now() - timedelta(seconds=1),
                                 absolute_expires_at=timezone.now())  # expired: not listed
    r = bearer(laptop).get(BASE + "sessions/active")
    assert r.status_code == 200
    sessions = r.json()["sessions"]
    assert {s["id"] for s in sessions} == {phone["session"]["id"], laptop["session"]["id"], web["session"]["id"]}
    for s in sessions:
        assert set(s) == SESSION_KEYS
        assert s["current"] is (s["id"] == laptop["session"]["id"])
    by_id = {s["id"]: s for s in sessions}
    assert by_id[phone["session"]["id"]]["deviceId"] == "phone-1"
    assert by_id[phone["session"]["id"]]["deviceName"] == "Pixel"
    assert by_id[phone["session"]["id"]]["rememberMe"] is True
    assert by_id[web["session"]["id"]]["userAgent"] == "Firefox/140"
    assert by_id[web["session"]["id"]]["ipAddress"] == "127.0.0.1"
    # The caller's own view from another session marks that one.
    r = bearer(phone).get(BASE + "sessions/active")
    assert [s["id"] for s in r.json()["sessions"] if s["current"]] == [phone["session"]["id"]]


def test_revoke_one_session(three):
    phone, laptop, web, theirs = three
    r = bearer(laptop).delete(BASE + f"sessions/{phone['session']['id']}")
    assert r.status_code == 204
    assert error_code(bearer(phone).get(BASE + "me"), 401) == "session_revoked"
    assert error_code(APIClient().post(BASE + "refresh", {"refreshToken": phone["refreshToken"]}, format="json"),
                401) == "session_revoked"
    assert bearer(laptop).get(BASE + "me").status_code == 200
    session = DeviceSession.objects.get(pk=phone["session"]["id"])
    assert session.revoked_reason == RevokeReason.USER_REVOKED
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, session_id=session.pk).exists()
    # Already revoked: not found any more.
    assert error_code(bearer(laptop).delete(BASE + f"sessions/{phone['session']['id']}"), 404) == "not_found"


def test_revoke_what_is_not_yours_is_404(three):
    phone, laptop, web, theirs = three
    for path in ["sessions/{theirs}", "sessions/{random}", "sessions/not-a-uuid", "sessions/{theirs}x",
                 "sessions/%00", "sessions/{theirs}/"]:
        url = BASE + path.format(theirs=theirs["session"]["id"], random=uuid.uuid4())
        response = bearer(laptop).delete(url)
        assert error_code(response, 404) == "not_found", path
        assert set(response.json()) == {"error"}
    assert bearer(theirs).get(BASE + "me").status_code == 200
    assert DeviceSession.objects.alive().count() == 4


def test_revoke_needs_authentication(three):
    phone, *_ = three
    assert error_code(APIClient().delete(BASE + f"sessions/{phone['session']['id']}"), 401) == "not_authenticated"
    assert error_code(APIClient().get(BASE + "sessions/active"), 401) == "not_authenticated"
    assert error_code(APIClient().post(BASE + "sessions/revoke-others"), 401) == "not_authenticated"


def test_revoke_others_keeps_the_current_one(three, user):
    phone, laptop, web, theirs = three
    assert bearer(web).post(BASE + "sessions/revoke-others").status_code == 204
    alive = DeviceSession.objects.alive()
    assert set(alive.filter(user=user).values_list("pk", flat=True)) == {uuid.UUID(web["session"]["id"])}
    assert alive.filter(pk=theirs["session"]["id"]).exists()  # nobody else's
    assert error_code(bearer(phone).get(BASE + "me"), 401) == "session_revoked"
    assert set(DeviceSession.objects.filter(revoked_at__isnull=False).values_list("revoked_reason", flat=True)) \
        == {RevokeReason.OTHERS_REVOKED}
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, context__reason="others_revoked").count() == 2


def test_logout(tokens, authed):
    assert authed.post(BASE + "logout").status_code == 204
    assert error_code(authed.get(BASE + "me"), 401) == "session_revoked"
    assert error_code(APIClient().post(BASE + "refresh", {"refreshToken": tokens["refreshToken"]}, format="json"),
                401) == "session_revoked"
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.revoked_reason == RevokeReason.LOGOUT
    assert AuditEvent.objects.filter(event=EventType.LOGOUT, session_id=session.pk).exists()
    assert error_code(APIClient().post(BASE + "logout"), 401) == "not_authenticated"


def test_login_with_the_same_device_replaces_its_session(api, user):
    first = login(api, user.email, deviceId="phone-1")
    other_device = login(api, user.email, deviceId="tablet-1")
    second = login(api, user.email, deviceId="phone-1")
    assert second["session"]["id"] != first["session"]["id"]
    assert error_code(bearer(first).get(BASE + "me"), 401) == "session_revoked"
    assert DeviceSession.objects.get(pk=first["session"]["id"]).revoked_reason == RevokeReason.DEVICE_REPLACED
    assert bearer(other_device).get(BASE + "me").status_code == 200
    listed = bearer(second).get(BASE + "sessions/active").json()["sessions"]
    assert sorted(s["deviceId"] for s in listed) == ["phone-1", "tablet-1"]
    # Another user's session on a device with the same id is not touched.
    stranger = UserFactory()
    theirs = login(api, stranger.email, deviceId="phone-1")
    assert bearer(second).get(BASE + "me").status_code == 200 and bearer(theirs).get(BASE + "me").status_code == 200


def test_login_without_device_id_never_replaces(api, user):
    a, b = login(api, user.email), login(api, user.email)
    assert bearer(a).get(BASE + "me").status_code == bearer(b).get(BASE + "me").status_code == 200


def test_one_current_refresh_hash_per_session_is_a_database_constraint(tokens, user):
    """A session has one column for its current refresh token. A token names its session (found by
    primary key), so it is live in that session only; one of the earlier format (found by its hash) is
    unique across all sessions. Either way a token can never be live in two places."""
    now = timezone.now()
    taken = DeviceSession.objects.get(pk=tokens["session"]["id"]).refresh_secret_hash
    other = DeviceSession.objects.create(user=user, expires_at=now + timedelta(days=1),
                                         absolute_expires_at=now + timedelta(days=1), refresh_secret_hash=taken)
    assert session_refresh(raw_token=tokens["refreshToken"]).session.pk == uuid.UUID(tokens["session"]["id"])
    assert DeviceSession.objects.get(pk=other.pk).refresh_secret_hash == taken  # not the token's session: untouched
    DeviceSession.objects.filter(pk=other.pk).update(refresh_token_hash="e" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceSession.objects.create(user=user, expires_at=now, absolute_expires_at=now, refresh_token_hash="e" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        SpentRefreshToken.objects.bulk_create([
            SpentRefreshToken(token_hash="a" * 64, session_id=tokens["session"]["id"], successor_hash="b"),
            SpentRefreshToken(token_hash="a" * 64, session_id=tokens["session"]["id"], successor_hash="c"),
        ])
    with pytest.raises(IntegrityError), transaction.atomic():  # expiry beyond the absolute cap
        DeviceSession.objects.create(user=user, expires_at=now + timedelta(days=2),
                                     absolute_expires_at=now + timedelta(days=1))


# --- cleanup -----------------------------------------------------------------------------------------------------

def _session(user, *, expired_ago=None, revoked_ago=None):
    now = timezone.now()
    expires = now - expired_ago if expired_ago else now + timedelta(days=1)
    session = DeviceSession.objects.create(
        user=user, created_at=now - timedelta(days=100), expires_at=expires, absolute_expires_at=expires,
        revoked_at=now - revoked_ago if revoked_ago else None,
        refresh_token_hash=hash_token(uuid.uuid4().hex))
    SpentRefreshToken.objects.create(token_hash=hash_token(uuid.uuid4().hex), session=session, successor_hash="x")
    return session


def test_cleanup_deletes_long_ended_sessions_with_their_spent_tokens(user, settings):
    settings.SESSIONS = {"CLEANUP_BATCH_SIZE": 2}  # several batches
    live = _session(user)
    recently_expired = _session(user, expired_ago=timedelta(days=29))
    recently_revoked = _session(user, revoked_ago=timedelta(days=29))
    old = [_session(user, expired_ago=timedelta(days=31)) for _ in range(3)] + \
          [_session(user, revoked_ago=timedelta(days=31)) for _ in range(3)]
    assert sessions_cleanup() == 6
    kept = {live.pk, recently_expired.pk, recently_revoked.pk}
    assert set(DeviceSession.objects.values_list("pk", flat=True)) == kept
    assert set(SpentRefreshToken.objects.values_list("session_id", flat=True)) == kept
    assert not DeviceSession.objects.filter(pk__in=[s.pk for s in old]).exists()
    assert sessions_cleanup() == 0


def test_cleanup_task_and_retention_setting(user, settings):
    settings.SESSIONS = {"REVOKED_RETENTION_SECONDS": 3600}
    live = _session(user)
    _session(user, revoked_ago=timedelta(hours=2))
    assert tasks.sessions_cleanup.delay().get() == 1
    assert list(DeviceSession.objects.values_list("pk", flat=True)) == [live.pk]

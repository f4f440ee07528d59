"""A spent refresh token is judged by the one rule (sessions_app.policy) before anything else: a session that
is not usable answers its refusal, with the refusal's reason and ``spent: true`` in the audit row, and is
never treated as a reuse (nor replays its successor pair)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession, RevokeReason

REFRESH = "/api/v1/auth/refresh"


def refresh(token):
    return APIClient().post(REFRESH, {"refreshToken": token}, format="json")


def refused(response, code):
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == code


def failures(session_id) -> list[dict]:
    return [e.context for e in AuditEvent.objects.filter(event=EventType.TOKEN_REFRESH_FAILED, session_id=session_id)]


def test_a_spent_token_of_an_idle_session_is_refused_as_idle_not_as_reuse(tokens, settings):
    settings.SESSIONS = {**settings.SESSIONS, "IDLE_TIMEOUT_MINUTES": 30}
    settings.AUTH_REFRESH_GRACE_SECONDS = 0  # outside any grace window: before, this was reuse detection
    pair = refresh(tokens["refreshToken"]).json()
    sid = pair["session"]["id"]
    DeviceSession.objects.filter(pk=sid).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    refused(refresh(tokens["refreshToken"]), "session_revoked")
    row = DeviceSession.objects.get(pk=sid)
    assert row.revoked_reason == RevokeReason.IDLE_TIMEOUT
    assert failures(sid) == [{**failures(sid)[0], "reason": "idle_timeout", "spent": True}]
    assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED, session_id=sid).exists()


def test_a_spent_token_of_an_expired_session_names_the_reason(tokens):
    pair = refresh(tokens["refreshToken"]).json()
    sid = pair["session"]["id"]
    DeviceSession.objects.filter(pk=sid).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused(refresh(tokens["refreshToken"]), "session_expired")
    [context] = failures(sid)
    assert context["reason"] == "expired" and context["spent"] is True
    assert DeviceSession.objects.get(pk=sid).revoked_at is None  # an expiry writes nothing

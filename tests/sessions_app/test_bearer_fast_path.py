"""Bearer GETs answered before the rest of the middleware and DRF (sessions_app.middleware.BearerFastPathMiddleware):
the same body and headers as the view, one statement, and everything unusual left to the view."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import UserFactory
from tests.support.auth import bearer, login
from tests.support.fast_path import drf_views_reached, without_middleware

pytestmark = pytest.mark.django_db

ME, SESSIONS = "/api/v1/auth/me", "/api/v1/auth/sessions/active"
FAST = "sessions_app.middleware.BearerFastPathMiddleware"
HEADERS = ("Content-Type", "Content-Length", "Allow", "X-Frame-Options", "Content-Security-Policy", "X-Content-Type-Options",
           "Referrer-Policy", "Cross-Origin-Opener-Policy", "Vary")


@pytest.fixture
def drf_seen(monkeypatch):
    """The requests that reached a DRF view."""
    return drf_views_reached(monkeypatch)


@pytest.fixture
def phone(user):
    client = APIClient()
    login(client, user.email, deviceId="laptop-1")
    return bearer(login(client, user.email, deviceId="phone-1", deviceName="Pixel"))


def csp_directives(value):
    return sorted(part.strip() for part in value.split(";"))


@pytest.mark.parametrize("path", [ME, SESSIONS])
def test_the_fast_path_answers_what_the_view_answers(phone, drf_seen, path):
    fast = phone.get(path)
    assert fast.status_code == 200 and drf_seen == []
    with without_middleware(FAST):
        whole_way = APIClient()  # a new client: a client's handler loads MIDDLEWARE once
        whole_way.credentials(**phone._credentials)
        view = whole_way.get(path)
    assert drf_seen == [path]
    assert fast.content == view.content
    for name in HEADERS:
        if name == "Content-Security-Policy":
            assert csp_directives(fast[name]) == csp_directives(view[name])
        else:
            assert fast.get(name) == view.get(name), name


def test_get_me_is_one_statement(phone, django_assert_num_queries):
    phone.get(ME)  # the signing keys are in the process's cache
    with django_assert_num_queries(1):
        assert phone.get(ME).status_code == 200


def test_the_session_list_marks_the_callers_session(phone, drf_seen):
    sessions = phone.get(SESSIONS).json()["sessions"]
    assert drf_seen == []
    assert [s["deviceId"] for s in sessions if s["current"]] == ["phone-1"]
    assert len(sessions) == 2


def test_activity_is_recorded_as_by_the_view(phone, user, drf_seen):
    old = timezone.now() - app_settings.ACTIVITY_RESOLUTION - timedelta(seconds=5)
    DeviceSession.objects.filter(user=user, device_id="phone-1").update(last_activity_at=old)
    assert phone.get(ME).status_code == 200 and drf_seen == []
    assert DeviceSession.objects.get(user=user, device_id="phone-1").last_activity_at > old


def test_a_revoked_session_is_refused_by_the_view(phone, user, drf_seen):
    DeviceSession.objects.filter(user=user, device_id="phone-1").update(revoked_at=timezone.now(),
                                                                         revoked_reason=RevokeReason.LOGOUT)
    response = phone.get(ME)
    assert response.status_code == 401 and drf_seen == [ME]
    assert response.json()["error"]["code"] == "session_revoked"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_an_idle_session_is_ended_and_audited_by_the_view(phone, user, settings, drf_seen):
    settings.SESSIONS = {**getattr(settings, "SESSIONS", {}), "IDLE_TIMEOUT_MINUTES": 10}
    DeviceSession.objects.filter(user=user, device_id="phone-1").update(
        last_activity_at=timezone.now() - timedelta(seconds=601))
    response = phone.get(ME)
    assert response.status_code == 401 and drf_seen == [ME]
    row = DeviceSession.objects.get(user=user, device_id="phone-1")
    assert row.revoked_reason == RevokeReason.IDLE_TIMEOUT
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, session_id=row.pk).count() == 1


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"])
def test_a_bad_or_other_authorization_is_left_to_the_view(header, drf_seen):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert response.status_code == 401 and drf_seen == [ME]
    assert set(response.json()) == {"error"}


def test_a_query_string_or_a_body_goes_the_whole_way(phone, drf_seen):
    assert phone.get(ME + "?x=1").status_code == 200
    assert phone.generic("GET", ME, "{}", content_type="application/json").status_code == 200
    assert drf_seen == [ME, ME]


def test_other_views_and_methods_are_left_to_drf(phone, drf_seen):
    assert phone.get("/api/v1/auth/me/security-events").status_code == 200
    assert phone.patch(ME, {"name": "New"}, format="json").status_code == 200
    assert drf_seen == ["/api/v1/auth/me/security-events", ME]


def test_over_the_api_rate_limit_the_view_answers_429(phone, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "3/m"}}
    statuses = [phone.get(ME).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    response = phone.get(ME)
    assert response.json()["error"]["code"] == "rate_limited" and int(response["Retry-After"]) >= 1


def test_another_users_session_id_in_a_forged_sub_is_not_answered(phone, user, drf_seen):
    """A token is only ever the session's own user's (``sub`` must match): the lookup checks it."""
    stranger = UserFactory()
    other = bearer(login(APIClient(), stranger.email))
    assert other.get(ME).json()["email"] == stranger.email
    assert phone.get(ME).json()["email"] == user.email


def _view_answer(phone, path):
    with without_middleware(FAST):
        whole_way = APIClient()
        whole_way.credentials(**phone._credentials)
        return whole_way.get(path)


def test_the_session_list_is_one_statement(phone, django_assert_num_queries):
    """The caller's session and the list come from one statement (selectors.session_and_live_sessions_for_claims)."""
    phone.get(SESSIONS)
    with django_assert_num_queries(1):
        assert len(phone.get(SESSIONS).json()["sessions"]) == 2


def test_the_one_statement_list_leaves_out_what_the_view_leaves_out(phone, user, drf_seen):
    """Ended sessions of the user and every session of another user are not listed, as by the view."""
    client = APIClient()
    login(client, user.email, deviceId="tablet-1")
    login(client, user.email, deviceId="old-1")
    DeviceSession.objects.filter(user=user, device_id="tablet-1").update(revoked_at=timezone.now(),
                                                                          revoked_reason=RevokeReason.LOGOUT)
    DeviceSession.objects.filter(user=user, device_id="old-1").update(expires_at=timezone.now() - timedelta(seconds=1))
    login(APIClient(), UserFactory().email, deviceId="stranger-1")
    drf_seen.clear()  # the sign-ins above
    fast = phone.get(SESSIONS)
    assert drf_seen == []
    assert sorted(s["deviceId"] for s in fast.json()["sessions"]) == ["laptop-1", "phone-1"]
    assert fast.content == _view_answer(phone, SESSIONS).content


def test_a_list_read_before_the_activity_touch_is_read_again(phone, user, drf_seen, django_assert_num_queries):
    """When the request records activity (once per ACTIVITY_RESOLUTION), the caller's row changes after the
    one statement read it: the list is read again, so it shows the new activity and order, as the view."""
    old = timezone.now() - app_settings.ACTIVITY_RESOLUTION - timedelta(seconds=5)
    DeviceSession.objects.filter(user=user, device_id="phone-1").update(last_activity_at=old)
    phone.get(ME)  # warm: the signing keys are cached
    DeviceSession.objects.filter(user=user, device_id="phone-1").update(last_activity_at=old)
    with django_assert_num_queries(3):  # the statement, the touch, the list again
        fast = phone.get(SESSIONS)
    assert drf_seen == []
    sessions = fast.json()["sessions"]
    assert [s["deviceId"] for s in sessions] == ["phone-1", "laptop-1"]
    assert fast.content == _view_answer(phone, SESSIONS).content


def test_the_combined_lookup_names_no_session_for_bad_or_foreign_claims(phone, user):
    from sessions_app.selectors import session_and_live_sessions_for_claims

    row = DeviceSession.objects.get(user=user, device_id="phone-1")
    now = timezone.now()
    assert session_and_live_sessions_for_claims({"sid": "nope", "sub": str(user.pk)}, now) == (None, [])
    assert session_and_live_sessions_for_claims({"sid": str(row.pk)}, now) == (None, [])
    stranger = UserFactory()
    assert session_and_live_sessions_for_claims({"sid": str(row.pk), "sub": str(stranger.pk)}, now) == (None, [])
    session, rows = session_and_live_sessions_for_claims({"sid": str(row.pk), "sub": str(user.pk)}, now)
    assert session.pk == row.pk and session in rows and len(rows) == 2

"""GET /api/v1/auth/session without a usable cookie cache (off, missing, stale) answered from the row before
DRF (sessions_app.middleware.SessionFastPathMiddleware): one statement, the view's JSON, headers and cookies,
and everything unusual left to the view."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.tokens import hash_token
from sessions_app import cookie_cache
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason
from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login
from tests.support.fast_path import drf_views_reached, without_middleware

SESSION = "/api/v1/auth/session"
FAST = "sessions_app.middleware.SessionFastPathMiddleware"
HEADERS = ("Content-Type", "Content-Length", "Allow", "X-Frame-Options", "Cache-Control", "Expires", "Vary")


@pytest.fixture
def drf_seen(monkeypatch):
    """The requests that reached a DRF view."""
    return drf_views_reached(monkeypatch)


@pytest.fixture
def cache_off(settings):
    settings.SESSIONS = {**getattr(settings, "SESSIONS", {}), "COOKIE_CACHE_SECONDS": 0}


def test_cache_off_the_row_answers_before_drf_in_one_statement(signed_in, cache_off, drf_seen,
                                                                 django_assert_num_queries):
    signed_in.cookies.pop(app_settings.CACHE_COOKIE, None)
    signed_in.get(SESSION)
    with django_assert_num_queries(1):
        fast = signed_in.get(SESSION)
    assert fast.status_code == 200 and drf_seen == []
    assert fast.json()["session"]["current"] is True
    assert app_settings.CACHE_COOKIE not in fast.cookies

    with without_middleware(FAST):
        whole_way = Client(HTTP_USER_AGENT=CHROME_LINUX)  # a new client: a handler loads MIDDLEWARE once
        whole_way.cookies = signed_in.cookies
        view = whole_way.get(SESSION)
    assert drf_seen == [SESSION]
    assert fast.content == view.content
    for name in HEADERS:
        if name != "Expires":
            assert fast.get(name) == view.get(name), name
    assert set(fast.cookies) == set(view.cookies)


def test_a_missing_cache_cookie_is_reissued_from_the_row(signed_in, drf_seen):
    signed_in.cookies.pop(app_settings.CACHE_COOKIE, None)
    response = signed_in.get(SESSION)
    assert response.status_code == 200 and drf_seen == []
    raw = signed_in.cookies[app_settings.SESSION_COOKIE].value
    snapshot = cookie_cache.snapshot_decode(response.cookies[app_settings.CACHE_COOKIE].value,
                                            key_hash=hash_token(raw))
    assert snapshot["user"] == response.json()["user"]


def test_a_remembered_session_slides_its_cookie(web, user, cache_off, drf_seen):
    assert page_login(web, user.email, remember=True).status_code == 302
    row = DeviceSession.objects.get(user=user)
    lifetime = app_settings.REMEMBER_ME_LIFETIME
    old_expiry = timezone.now() - app_settings.UPDATE_AGE - timedelta(minutes=1) + lifetime
    DeviceSession.objects.filter(pk=row.pk).update(
        expires_at=old_expiry, last_activity_at=timezone.now() - app_settings.ACTIVITY_RESOLUTION - timedelta(seconds=5))
    response = web.get(SESSION)
    assert response.status_code == 200 and drf_seen == []
    assert DeviceSession.objects.get(pk=row.pk).expires_at > old_expiry
    assert int(response.cookies[app_settings.SESSION_COOKIE]["max-age"]) > lifetime.total_seconds() - 60


def test_a_revoked_session_is_answered_by_the_view_and_forgotten(signed_in, user, cache_off, drf_seen):
    DeviceSession.objects.filter(user=user).update(revoked_at=timezone.now(), revoked_reason=RevokeReason.LOGOUT)
    response = signed_in.get(SESSION)
    assert response.status_code == 401 and drf_seen == [SESSION]
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.cookies[app_settings.SESSION_COOKIE].value == ""


def test_over_the_api_rate_limit_the_view_answers_429(signed_in, settings, cache_off):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "3/m"}}
    statuses = [signed_in.get(SESSION).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


def test_a_query_string_goes_the_whole_way(signed_in, cache_off, drf_seen):
    assert signed_in.get(SESSION + "?x=1").status_code == 200
    assert drf_seen == [SESSION]

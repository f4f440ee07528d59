"""POST /api/v1/auth/refresh answered before the rest of the middleware and DRF
(sessions_app.middleware.RefreshFastPathMiddleware): what the view answers, refusals in the one envelope."""

import pytest
from rest_framework.test import APIClient

from sessions_app.models import DeviceSession, RevokeReason
from tests.support.auth import login
from tests.support.fast_path import drf_views_reached, without_middleware

pytestmark = pytest.mark.django_db

REFRESH = "/api/v1/auth/refresh"
FAST = "sessions_app.middleware.RefreshFastPathMiddleware"
HEADERS = ("Content-Type", "Content-Length", "Allow", "X-Frame-Options", "Cache-Control", "WWW-Authenticate", "Retry-After",
           "X-Content-Type-Options", "Referrer-Policy")


@pytest.fixture
def drf_seen(monkeypatch):
    """The refreshes that reached the view."""
    return drf_views_reached(monkeypatch, prefix=REFRESH)


def whole_way():
    """A client whose requests take the view (a client's handler loads MIDDLEWARE once: make it inside)."""
    with without_middleware(FAST):
        client = APIClient()
        client.get("/healthz")
    return client


def post(client, body, content_type="application/json"):
    return client.generic("POST", REFRESH, body, content_type=content_type)


def same_answer(fast, view, *, body=True):
    assert fast.status_code == view.status_code, (fast.content, view.content)
    if body:
        assert fast.json() == view.json()
    for name in HEADERS:
        assert fast.get(name) == view.get(name), name


def test_a_refresh_is_answered_as_the_view_answers_it(user, drf_seen):
    api = APIClient()
    first, second = login(api, user.email, deviceId="a"), login(api, user.email, deviceId="b")
    fast = post(api, f'{{"refreshToken": "{first["refreshToken"]}"}}')
    assert fast.status_code == 200 and drf_seen == []
    with without_middleware(FAST):
        view = post(whole_way(), f'{{"refreshToken": "{second["refreshToken"]}"}}')
    assert drf_seen == [REFRESH]
    same_answer(fast, view, body=False)
    assert set(fast.json()) == set(view.json()) and fast.json()["session"]["current"] is True
    assert fast.json()["refreshToken"] != first["refreshToken"]
    assert post(api, f'{{"refreshToken": "{fast.json()["refreshToken"]}"}}').status_code == 200  # the new one works


@pytest.mark.parametrize("body", [
    '{"refreshToken": "mrt_unknown"}',  # 401 invalid_refresh_token, with the challenge
    '{"refreshToken": 5}',  # 400 validation_error
    '{"refresh": "x"}',  # 400 validation_error (missing)
    '{"refreshToken": "' + "x" * 600 + '"}',  # 400 validation_error (too long)
    '{"refreshToken": ',  # 400 malformed_request
    '[1, 2]',
    '"text"',
    '\xff\xfe',
])
def test_refusals_are_the_views_refusals(body, drf_seen):
    fast = post(APIClient(), body.encode("latin-1"))
    assert drf_seen == []
    with without_middleware(FAST):
        view = post(whole_way(), body.encode("latin-1"))
    assert 400 <= fast.status_code < 500 and set(fast.json()) == {"error"}
    same_answer(fast, view)


def test_a_reused_token_ends_the_session_from_the_fast_path(user, settings, drf_seen):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    api = APIClient()
    pair = login(api, user.email)
    assert post(api, f'{{"refreshToken": "{pair["refreshToken"]}"}}').status_code == 200
    reused = post(api, f'{{"refreshToken": "{pair["refreshToken"]}"}}')
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "refresh_token_reused"
    assert DeviceSession.objects.get(user=user).revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert drf_seen == []


def test_over_the_api_rate_limit_the_answer_is_429(user, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "3/m"}}
    api = APIClient()
    statuses = [post(api, '{"refreshToken": "mrt_unknown"}').status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    limited = post(api, '{"refreshToken": "mrt_unknown"}')
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited["Retry-After"]) >= 1


@pytest.mark.parametrize("kwargs", [
    {"content_type": "application/x-www-form-urlencoded", "body": "refreshToken=x"},
    {"content_type": "text/plain", "body": '{"refreshToken": "x"}'},
    {"content_type": "application/json", "body": ""},
])
def test_other_bodies_go_the_whole_way(kwargs, drf_seen):
    response = post(APIClient(), kwargs["body"], content_type=kwargs["content_type"])
    assert drf_seen == [REFRESH] and 400 <= response.status_code < 500


def test_a_query_string_goes_the_whole_way(drf_seen):
    APIClient().generic("POST", REFRESH + "?a=1", '{"refreshToken": "x"}', content_type="application/json")
    assert drf_seen == [REFRESH]

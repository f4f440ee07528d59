"""Rate limits with their production values (the suite raises them; real_rate_limits restores them)."""

import time

import pytest

from audit.models import AuditEvent, EventType
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import login_attempt

pytestmark = pytest.mark.usefixtures("real_rate_limits")


def limited(response):
    return response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"


def test_login_5_per_minute_per_ip_then_429_with_retry_after(api, user, password):
    for _ in range(5):
        assert login_attempt(api, user.email, password).status_code == 200
    response = login_attempt(api, user.email, password)
    assert limited(response) and 1 <= int(response["Retry-After"]) <= 60
    assert login_attempt(api, user.email, password, ip="198.51.100.9").status_code == 200  # other clients go on
    rows = AuditEvent.objects.filter(event=EventType.RATE_LIMITED)
    assert limited(login_attempt(api, user.email, password))
    assert rows.count() == 1 and rows.get().context["scope"] == "login"  # once per window, not per request


def test_register_10_per_hour(api):
    codes = [api.post("/api/v1/auth/register", {"email": f"r{i}@example.com", "password": PASSWORD},
                      format="json").status_code for i in range(11)]
    assert codes == [202] * 10 + [429]


@pytest.mark.parametrize("path", ["/api/v1/auth/forgot-password", "/api/v1/auth/resend-verification"])
def test_mail_sending_endpoints_3_per_5_minutes_per_ip_and_per_address_and_network(api, path):
    codes = [api.post(path, {"email": f"m{i}@example.com"}, format="json").status_code for i in range(4)]
    assert codes == [202, 202, 202, 429]
    # One address asked for from many clients of one network is limited too (no mail bombing): the
    # network's share of the address (mail_address, 5/h); other networks have their own (docs/security.md).
    codes = [api.post(path, {"email": "victim@example.com"}, format="json", REMOTE_ADDR=f"198.51.100.{i}").status_code
             for i in range(6)]
    assert codes == [202] * 5 + [429]
    response = api.post(path, {"email": "victim@example.com"}, format="json", REMOTE_ADDR="198.51.100.77")
    assert limited(response) and 1 <= int(response["Retry-After"]) <= 3600
    assert api.post(path, {"email": "victim@example.com"}, format="json",
                    REMOTE_ADDR="203.0.113.9").status_code == 202


def test_100_per_minute_per_client_for_the_rest_of_the_api(settings, authed):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {"api": "5/m"}}  # the same code path, fewer requests
    codes = [authed.get("/api/v1/auth/me").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    from security.app_settings import DEFAULT_RATE_LIMITS

    assert DEFAULT_RATE_LIMITS["api"] == "100/m"


def test_the_client_cannot_pick_its_ip_with_a_header(settings, api, user, password):
    for i in range(5):
        login_attempt(api, user.email, password, meta={"HTTP_X_FORWARDED_FOR": f"10.0.0.{i}"})
    assert limited(login_attempt(api, user.email, password, meta={"HTTP_X_FORWARDED_FOR": "10.9.9.9"}))
    # Behind one trusted proxy the address it saw counts (and each client has its own budget).
    settings.AUTH_TRUSTED_PROXY_COUNT = 1
    response = login_attempt(api, user.email, password, meta={"HTTP_X_FORWARDED_FOR": "10.9.9.9"})
    assert response.status_code == 200, response.content


def test_limits_are_configurable(settings, api):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {"forgot_password": "1/h"}}
    codes = [api.post("/api/v1/auth/forgot-password", {"email": "a@example.com"}, format="json").status_code
             for _ in range(2)]
    assert codes == [202, 429]
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMIT_ENABLED": False}
    assert api.post("/api/v1/auth/forgot-password", {"email": "a@example.com"}, format="json").status_code == 202


def test_redis_down_login_still_works_and_lockout_still_holds(settings, api, password):
    """Faults: the cache points at a closed port (the service is down). Rate limits fail open (a
    warning is logged), lockouts keep working (django-axes keeps them in the database), never a 500."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    user = UserFactory()
    for _ in range(7):
        assert login_attempt(api, user.email, password).status_code == 200
    codes = [login_attempt(api, user.email, "Wrong-Password-123456").status_code for _ in range(5)]
    assert codes == [401] * 4 + [429]
    assert login_attempt(api, user.email, password).json()["error"]["code"] == "account_locked"


def test_a_view_can_name_its_own_per_client_scope(settings, rf):
    from rest_framework.views import APIView

    from security.ratelimit import ApiRateThrottle, RateLimited

    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {"api": "1/m", "introspect": "3/m"}}

    class Heavy(APIView):
        api_rate_scope = "introspect"

    throttle = ApiRateThrottle()
    results = []
    for _ in range(4):
        try:
            results.append(throttle.allow_request(rf.get("/"), Heavy()))
        except RateLimited:
            results.append("429")
    assert results == [True, True, True, "429"]


@pytest.mark.redis
def test_redis_hung_limits_fail_open_quickly_and_lockout_still_holds(settings, api, password):
    """Faults (issue 17): Redis accepts and never answers. The first limit that asks waits for the socket
    timeout (1 s), then the limits are left alone for a second: sign-in stays fast and open, and the
    lockout (in the database) still locks."""
    from urllib.parse import urlsplit

    from tests.support.forwarder import Forwarder

    real = urlsplit(settings.REDIS_URL)
    hung = Forwarder((real.hostname or "127.0.0.1", real.port or 6379))
    hung.hang()
    try:
        settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                       "LOCATION": f"redis://127.0.0.1:{hung.port}/0",
                                       "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}}
        user = UserFactory()
        started = time.monotonic()
        for _ in range(7):
            assert login_attempt(api, user.email, password).status_code == 200
        assert time.monotonic() - started < 7  # not 7 logins x 2 scopes x 1 s (room for a busy machine)
        codes = [login_attempt(api, user.email, "Wrong-Password-123456").status_code for _ in range(5)]
        assert codes == [401] * 4 + [429]
    finally:
        hung.close()

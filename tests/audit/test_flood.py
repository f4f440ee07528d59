"""Flood control of the audit trail (audit/services.py): unauthenticated garbage cannot write a
hash-chained row per request, no refusal goes uncounted, and every refusal that concerns a known
user, session or service account is still written in full, each time."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit.chain import chain_verify
from audit.models import AuditEvent, EventType
from audit.services import audit_record, audit_refusals_flush
from tests.conftest import login

REFRESH = "/api/v1/auth/refresh"
SERVICE_TOKEN = "/api/v1/auth/service-token"


@pytest.fixture
def hour_windows(settings):
    """One window of an hour, so a test never straddles two (the rule is the same for any length)."""
    settings.AUDIT = {**settings.AUDIT, "FLOOD_WINDOW_SECONDS": 3600}


def later(hours=2):
    return timezone.now() + timedelta(hours=hours)


def rows(event, **filters):
    return AuditEvent.objects.filter(event=event, **filters)


def counted(event):
    """What the summary rows say was counted for ``event`` (after a flush)."""
    return sum(r.context["count"] for r in rows(EventType.AUDIT_REFUSALS_COUNTED) if r.context["event"] == event)


def test_a_thousand_unknown_refresh_tokens_write_two_rows_and_lose_no_count(api, hour_windows):
    codes = {api.post(REFRESH, {"refreshToken": f"mrt_garbage_{i}"}, format="json").status_code for i in range(1000)}
    assert codes == {401}
    failed = rows(EventType.TOKEN_REFRESH_FAILED)
    assert failed.count() == 1  # the first one, in full (ip, agent, reason)
    assert failed.get().context["reason"] == "unknown" and failed.get().ip_address == "127.0.0.1"
    assert audit_refusals_flush(now=later()) == 1
    summary = rows(EventType.AUDIT_REFUSALS_COUNTED).get()
    assert summary.context["event"] == EventType.TOKEN_REFRESH_FAILED
    assert summary.context["count"] == 999 and summary.context["networks"] == 1
    assert summary.context["window_start"] < summary.context["window_end"]
    assert failed.count() + counted(EventType.TOKEN_REFRESH_FAILED) == 1000  # every refusal accounted for
    assert AuditEvent.objects.count() == 2
    assert chain_verify().ok  # the summary is a link of the chain like any row
    assert audit_refusals_flush(now=later()) == 0  # summarised once


def test_a_thousand_networks_write_at_most_the_cap_per_window(api, settings, hour_windows):
    settings.AUDIT = {**settings.AUDIT, "FLOOD_ROWS_PER_WINDOW": 10}
    for i in range(1000):  # 1,000 different /24 networks, unknown client ids
        response = api.post(SERVICE_TOKEN, {"clientId": f"svc_nobody_{i}", "clientSecret": "mcs_garbage"},
                            format="json", REMOTE_ADDR=f"10.{i // 250}.{i % 250}.7")
        assert response.status_code == 401
    written = rows(EventType.SERVICE_TOKEN_FAILED)
    assert written.count() == 10 and len({r.ip_address for r in written}) == 10
    audit_refusals_flush(now=later())
    summary = rows(EventType.AUDIT_REFUSALS_COUNTED).get()
    assert summary.context["count"] == 990 and summary.context["networks"] == 1000
    assert AuditEvent.objects.count() == 11


def test_each_refused_event_keeps_its_own_count(api, hour_windows):
    for i in range(50):
        api.post(REFRESH, {"refreshToken": f"mrt_x{i}"}, format="json")
        api.post("/api/v1/auth/verify-email", {"token": f"bad-{i}"}, format="json")
        api.post("/api/v1/auth/reset-password", {"token": f"bad-{i}", "password": "Long-Enough-Password-1"},
                 format="json")
    audit_refusals_flush(now=later())
    for event in (EventType.TOKEN_REFRESH_FAILED, EventType.EMAIL_VERIFICATION_FAILED,
                  EventType.PASSWORD_RESET_FAILED):
        assert rows(event).count() == 1 and counted(event) == 49


def test_refusals_about_a_known_session_are_written_every_time(api, user, settings, hour_windows):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0  # every replay is a refusal (no same-pair answer)
    tokens = login(api, user.email)
    assert api.post(REFRESH, {"refreshToken": tokens["refreshToken"]}, format="json").status_code == 200
    codes = [api.post(REFRESH, {"refreshToken": tokens["refreshToken"]}, format="json").status_code
             for _ in range(30)]
    assert codes == [401] * 30
    # The first replay revokes the session as a reuse; each later one is a refusal on that (now
    # revoked) session: all 30 are in the trail, attributed to it.
    session_id = tokens["session"]["id"]
    assert rows(EventType.REFRESH_REUSE_DETECTED, session_id=session_id).count() == 1
    assert rows(EventType.TOKEN_REFRESH_FAILED, session_id=session_id).count() == 29
    audit_refusals_flush(now=later())
    assert not rows(EventType.AUDIT_REFUSALS_COUNTED).exists()


def test_refusals_about_a_known_account_are_written_every_time(api, hour_windows):
    from service_accounts.services import service_account_create

    created = service_account_create(name="billing")
    for _ in range(25):  # a real client id with wrong secrets: someone is trying that account
        response = api.post(SERVICE_TOKEN, {"clientId": created.client.client_id, "clientSecret": "mcs_wrong"},
                            format="json")
        assert response.status_code == 401
    assert rows(EventType.SERVICE_TOKEN_FAILED, subject_id=created.client.user_id).count() == 25


def test_refused_link_tokens_of_a_known_account_are_attributed_and_written(api, user, hour_windows):
    from accounts.models import AccountToken, TokenPurpose, hash_token

    for i in range(5):
        raw = f"expired-{i}"
        AccountToken.objects.create(user=user, purpose=TokenPurpose.RESET_PASSWORD, token_hash=hash_token(raw),
                                    expires_at=timezone.now() - timedelta(minutes=1))
        response = api.post("/api/v1/auth/reset-password", {"token": raw, "password": "Long-Enough-Password-1"},
                            format="json")
        assert response.json()["error"]["code"] == "token_expired"
    assert rows(EventType.PASSWORD_RESET_FAILED, subject_id=user.pk).count() == 5


def test_kinds_of_one_event_are_told_apart_by_their_code(db, rf, hour_windows):
    """A rate limit of one scope does not hide another's, and the summary says which was counted."""
    request = rf.post("/", REMOTE_ADDR="192.0.2.1")
    for scope in ("login", "mail_address"):
        for _ in range(3):
            audit_record(event=EventType.RATE_LIMITED, request=request, success=False, scope=scope, rate="5/m")
    assert sorted(r.context["scope"] for r in rows(EventType.RATE_LIMITED)) == ["login", "mail_address"]
    audit_refusals_flush(now=later())
    summaries = {r.context["scope"]: r.context["count"] for r in rows(EventType.AUDIT_REFUSALS_COUNTED)}
    assert summaries == {"login": 2, "mail_address": 2}


def test_only_codes_tell_kinds_apart(db, rf, hour_windows):
    """A value that is not a code (anything a client could choose) does not open a kind of its own:
    the number of rows stays bounded whatever the requests carry."""
    request = rf.post("/", REMOTE_ADDR="192.0.2.1")
    for i in range(20):
        audit_record(event=EventType.LOGIN_FAILED, request=request, success=False, reason=f"Chosen {i}!")
    assert rows(EventType.LOGIN_FAILED).count() == 1
    audit_refusals_flush(now=later())
    assert counted(EventType.LOGIN_FAILED) == 19


def test_windows_are_summarised_while_the_flood_goes_on(api, settings):
    """Without the periodic task (the embedded default has no beat): the first refusal of a new
    window summarises the windows that have ended."""
    settings.AUDIT = {**settings.AUDIT, "FLOOD_WINDOW_SECONDS": 60}
    start = timezone.now().replace(second=5, microsecond=0)
    with mock.patch("audit.services.timezone.now", return_value=start):
        for i in range(7):
            api.post(REFRESH, {"refreshToken": f"mrt_{i}"}, format="json")
    assert not rows(EventType.AUDIT_REFUSALS_COUNTED).exists()
    with mock.patch("audit.services.timezone.now", return_value=start + timedelta(minutes=3)):
        api.post(REFRESH, {"refreshToken": "mrt_next"}, format="json")
    summary = rows(EventType.AUDIT_REFUSALS_COUNTED).get()
    assert summary.context["count"] == 6 and summary.context["event"] == EventType.TOKEN_REFRESH_FAILED
    assert rows(EventType.TOKEN_REFRESH_FAILED).count() == 2  # the first of each window


def test_a_late_count_is_summarised_by_the_next_flush(db, rf, hour_windows):
    request = rf.post("/", REMOTE_ADDR="192.0.2.1")
    for _ in range(3):
        audit_record(event=EventType.LOGIN_FAILED, request=request, success=False, reason="invalid_credentials")
    start = timezone.now()
    assert audit_refusals_flush(now=start + timedelta(hours=2)) == 1
    with mock.patch("audit.services.timezone.now", return_value=start):
        audit_record(event=EventType.LOGIN_FAILED, request=request, success=False, reason="invalid_credentials")
    assert audit_refusals_flush(now=start + timedelta(hours=2)) == 1
    assert counted(EventType.LOGIN_FAILED) == 3  # 2 + 1: the last one arrived after the first flush


def test_the_cache_down_writes_every_row(api, settings):
    """Fail open: without the counters nothing may be lost, so each refusal is written (never a 500)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    codes = [api.post(REFRESH, {"refreshToken": f"mrt_{i}"}, format="json").status_code for i in range(3)]
    assert codes == [401] * 3
    assert rows(EventType.TOKEN_REFRESH_FAILED).count() == 3


def test_successes_and_flood_control_off_are_written_in_full(db, rf, settings, hour_windows):
    request = rf.post("/", REMOTE_ADDR="192.0.2.1")
    for _ in range(3):
        assert audit_record(event=EventType.SIGNING_KEY_CREATED, request=request, kid="k") is not None
    settings.AUDIT = {**settings.AUDIT, "FLOOD_CONTROL": False}
    for _ in range(3):
        audit_record(event=EventType.LOGIN_FAILED, request=request, success=False)
    assert AuditEvent.objects.count() == 6


def test_the_periodic_flush_is_scheduled_and_runs(db, rf, settings, hour_windows):
    from audit.tasks import audit_refusals_flush as task

    assert settings.CELERY_BEAT_SCHEDULE["audit-refusals-flush"]["task"] == "audit.tasks.audit_refusals_flush"
    assert settings.CELERY_BEAT_SCHEDULE["audit-refusals-flush"]["schedule"] == timedelta(minutes=1)
    request = rf.post("/", REMOTE_ADDR="192.0.2.1")
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(hours=1, minutes=1)):
        for _ in range(4):
            audit_record(event=EventType.LOGIN_FAILED, request=request, success=False)
    task.delay()  # eager in tests
    assert counted(EventType.LOGIN_FAILED) == 3

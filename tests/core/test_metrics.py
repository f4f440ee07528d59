"""GET /metrics (core/metrics.py): the token rule, what each owner counts, and label hygiene.

In this process prometheus_client keeps one in-process registry (no PROMETHEUS_MULTIPROC_DIR), so a
test reads deltas of the samples; tests/core/test_metrics_server.py scrapes two real workers.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from notifications.models import OutboxMessage, OutboxStatus
from security.app_settings import DEFAULT_RATE_LIMITS
from tests.factories import UserFactory
from tests.support.auth import login, login_attempt, page_login

TOKEN = "metrics-token-" + "x" * 32
REFRESH = "/api/v1/auth/refresh"
SESSION = "/api/v1/auth/session"


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, token=TOKEN):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def metrics_on(settings):
    settings.AUTH_METRICS_TOKEN = TOKEN


# --- the token rule ------------------------------------------------------------------------------------

def test_not_found_for_everyone_while_the_token_is_unset(client, settings):
    settings.AUTH_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert scrape(client, "").status_code == 404
    assert scrape(client, "anything").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN,
                                    f"Bearer {TOKEN[:-1]}", "Bearer "])
def test_not_found_without_the_right_token(client, metrics_on, header):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 404
    assert b"mana_auth" not in response.content


def test_the_token_gets_the_text_format(client, metrics_on):
    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    for name in ("mana_auth_logins", "mana_auth_refresh", "mana_auth_lockouts", "mana_auth_mfa",
                 "mana_auth_cookie_cache", "mana_auth_request_duration_seconds", "mana_auth_rate_limited",
                 "mana_auth_outbox_pending", "mana_auth_outbox_delivery_failures",
                 "mana_auth_signing_key_age_seconds", "mana_auth_signing_key_rotation_interval_seconds"):
        assert name in names, name


def test_post_is_not_answered(client, metrics_on):
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


# --- what the owners count -----------------------------------------------------------------------------

def test_logins_by_outcome(api, user):
    before = {o: value("mana_auth_logins_total", outcome=o) for o in ("success", "invalid_credentials")}
    login(api, user.email)
    login_attempt(api, user.email, "wrong-password-123")
    login_attempt(api, "nobody@example.com", "wrong-password-123")
    assert value("mana_auth_logins_total", outcome="success") == before["success"] + 1
    assert value("mana_auth_logins_total", outcome="invalid_credentials") == before["invalid_credentials"] + 2


def test_unverified_login_is_counted_as_such(api):
    unverified = UserFactory(email_verified_at=None)
    before = value("mana_auth_logins_total", outcome="email_not_verified")
    assert login_attempt(api, unverified.email).status_code == 403
    assert value("mana_auth_logins_total", outcome="email_not_verified") == before + 1


def test_lockout_is_counted_once_per_lock(api, user, settings):
    before_locks = value("mana_auth_lockouts_total")
    before_locked = value("mana_auth_logins_total", outcome="account_locked")
    statuses = [login_attempt(api, user.email, "wrong-password-123").status_code for _ in range(7)]
    assert statuses == [401] * 4 + [429] * 3  # the 5th failure locks (django-axes)
    assert value("mana_auth_lockouts_total") == before_locks + 1
    assert value("mana_auth_logins_total", outcome="account_locked") == before_locked + statuses.count(429)


def test_refresh_outcomes_including_reuse(api, user):
    pair = login(api, user.email)
    before = {o: value("mana_auth_refresh_total", outcome=o)
              for o in ("success", "grace_replay", "reuse_detected", "invalid_token")}
    assert api.post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json").status_code == 200
    assert api.post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json").status_code == 200  # grace
    assert api.post(REFRESH, {"refreshToken": "not-a-token"}, format="json").status_code == 401
    spent = SpentAfterGrace.spend(pair["refreshToken"])
    assert api.post(REFRESH, {"refreshToken": spent}, format="json").json()["error"]["code"] == "refresh_token_reused"
    assert value("mana_auth_refresh_total", outcome="success") == before["success"] + 1
    assert value("mana_auth_refresh_total", outcome="grace_replay") == before["grace_replay"] + 1
    assert value("mana_auth_refresh_total", outcome="invalid_token") == before["invalid_token"] + 1
    assert value("mana_auth_refresh_total", outcome="reuse_detected") == before["reuse_detected"] + 1


class SpentAfterGrace:
    @staticmethod
    def spend(raw: str) -> str:
        """Move the spent token's spend out of the grace window."""
        from tests.support.tokens import age_spend

        age_spend(raw, 3600)
        return raw


def test_rate_limit_refusals_by_scope(api, user, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "login": "1/m"}}
    before = value("mana_auth_rate_limited_total", scope="login")
    login_attempt(api, user.email, "wrong-password-123")
    assert login_attempt(api, user.email).status_code == 429
    assert login_attempt(api, user.email).status_code == 429
    assert value("mana_auth_rate_limited_total", scope="login") == before + 2


def test_cookie_cache_results(client, user):
    assert page_login(client, user.email).status_code == 302
    before = {r: value("mana_auth_cookie_cache_total", result=r) for r in metrics.COOKIE_CACHE_RESULTS}
    assert client.get(SESSION).status_code == 200
    assert value("mana_auth_cookie_cache_total", result="hit") == before["hit"] + 1
    from sessions_app.app_settings import app_settings

    client.cookies[app_settings.CACHE_COOKIE] = "garbage"
    assert client.get(SESSION).status_code == 200
    assert value("mana_auth_cookie_cache_total", result="stale") == before["stale"] + 1
    del client.cookies[app_settings.CACHE_COOKIE]
    assert client.get(SESSION).status_code == 200
    assert value("mana_auth_cookie_cache_total", result="miss") == before["miss"] + 1


def test_cookie_cache_revoked(client, user, monkeypatch):
    from sessions_app import cookie_cache

    assert page_login(client, user.email).status_code == 302
    monkeypatch.setattr(cookie_cache, "revoked_since", lambda payload: True)
    before = value("mana_auth_cookie_cache_total", result="revoked")
    assert client.get(SESSION).status_code == 200  # the database decided
    assert value("mana_auth_cookie_cache_total", result="revoked") == before + 1


def test_mfa_helper_keeps_to_its_label_sets():
    before = value("mana_auth_mfa_total", method="totp", outcome="success")
    other = value("mana_auth_mfa_total", method="other", outcome="other")
    metrics.mfa_result(method="totp", outcome="success")
    metrics.mfa_result(method="sms to +4912345", outcome="123456")
    assert value("mana_auth_mfa_total", method="totp", outcome="success") == before + 1
    assert value("mana_auth_mfa_total", method="other", outcome="other") == other + 1


def test_outbox_failures_and_backlog(client, metrics_on, settings):
    from notifications.services import outbox_deliver, outbox_enqueue

    settings.EMAIL_BACKEND = "tests.core.test_metrics.FailingBackend"
    before = value("mana_auth_outbox_delivery_failures_total")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("notifications.services._publish", lambda message_id: None)  # stays in the outbox
        message = outbox_enqueue(kind="test", recipient="someone@example.com", subject="s", template="account_locked",
                                 context={"user": None, "ip": "x", "time": timezone.now(), "minutes": 1,
                                          "link": "l", "reset_link": "r"})
    message_id = getattr(message, "pk", message)
    OutboxMessage.objects.filter(pk=message_id).update(created_at=timezone.now() - timedelta(minutes=10))
    assert outbox_deliver(message_id) is False
    assert value("mana_auth_outbox_delivery_failures_total") == before + 1
    samples = _samples(scrape(client).content.decode())
    assert samples[("mana_auth_outbox_pending", ())] == OutboxMessage.objects.filter(
        status=OutboxStatus.PENDING).count() >= 1
    assert samples[("mana_auth_outbox_oldest_pending_seconds", ())] >= 600
    assert not mail.outbox


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("smtp down")


def test_signing_key_age(client, metrics_on, user, api):
    login(api, user.email)  # the first token creates the first key
    from identity.models import SigningKey

    SigningKey.objects.update(activates_at=timezone.now() - timedelta(days=40))
    samples = _samples(scrape(client).content.decode())
    assert samples[("mana_auth_signing_key_age_seconds", ())] >= 40 * 86400
    assert samples[("mana_auth_signing_key_rotation_interval_seconds", ())] == 30 * 86400


def test_request_duration_by_route_name(api, user, client):
    before = value("mana_auth_request_duration_seconds_count", route="auth-login", method="POST", status="2xx")
    fast = value("mana_auth_request_duration_seconds_count", route="auth-session", method="GET", status="2xx")
    login(api, user.email)
    page_login(client, user.email)
    client.get(SESSION)  # answered by the fast path, before URL resolution
    client.get(f"/api/v1/auth/sessions/{uuid.uuid4()}")
    client.get("/no/such/page/" + user.email)
    assert value("mana_auth_request_duration_seconds_count", route="auth-login", method="POST",
                 status="2xx") == before + 1
    assert value("mana_auth_request_duration_seconds_count", route="auth-session", method="GET",
                 status="2xx") == fast + 1
    assert value("mana_auth_request_duration_seconds_count", route="auth-session-revoke", method="GET",
                 status="4xx") >= 1
    assert value("mana_auth_request_duration_seconds_count", route="unmatched", method="GET", status="4xx") >= 1


# --- label hygiene -------------------------------------------------------------------------------------

def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _route_names() -> set[str]:
    from django.urls import get_resolver

    names = set()

    def walk(resolver, namespace=""):
        for pattern in resolver.url_patterns:
            if hasattr(pattern, "url_patterns"):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern, inner)
            elif pattern.name:
                names.add(f"{namespace}{pattern.name}")
    walk(get_resolver())
    return names | {"unmatched", "unnamed"}


def test_labels_come_from_fixed_sets_only(api, client, metrics_on, settings):
    """A workload full of emails, addresses, ids and odd paths; then every label of every sample is
    checked against its fixed set, and none of those values appears anywhere in the scrape."""
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "login": "2/m"}}
    someone = UserFactory(email="label.hygiene@example.org")
    secrets_seen = [someone.email, str(someone.pk), "203.0.113.77", "label.hygiene"]
    pair = login(api, someone.email, ip="203.0.113.77")
    secrets_seen += [pair["accessToken"][:40], pair["refreshToken"], pair["session"]["id"]]
    login_attempt(api, someone.email, "wrong-password-123", ip="203.0.113.77")
    login_attempt(api, "ghost@example.org", ip="203.0.113.77")
    api.post(REFRESH, {"refreshToken": pair["refreshToken"]}, format="json", REMOTE_ADDR="203.0.113.77")
    page_login(client, someone.email, REMOTE_ADDR="203.0.113.77")
    client.get(SESSION)
    client.get(f"/api/v1/auth/sessions/{pair['session']['id']}")
    client.get(f"/{someone.email}/{someone.pk}")
    client.generic("BREW", "/api/v1/auth/me")
    metrics.rate_limited(scope="user@example.org")
    metrics.mfa_result(method=someone.email, outcome=str(someone.pk))
    metrics.audit_counted("auth.login.failed", False, {"reason": someone.email})

    text = scrape(client).content.decode()
    routes = _route_names()
    scopes = set(DEFAULT_RATE_LIMITS) | {"login_delay", metrics.OTHER}
    seen_labels = set()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("mana_auth_"):
            continue  # prometheus_client's own process and platform metrics (single-process mode)
        for sample in family.samples:
            for name, label in sample.labels.items():
                if name == "le":
                    continue
                seen_labels.add(name)
                if name == "route":
                    assert label in routes, (sample.name, label)
                elif name == "scope":
                    assert label in scopes, (sample.name, label)
                else:
                    assert name in metrics.LABELS, (sample.name, name)
                    assert label in metrics.LABELS[name], (sample.name, name, label)
    assert {"route", "scope", "outcome", "method", "result", "status"} <= seen_labels
    for secret in secrets_seen:
        assert secret not in text, secret
    assert not re.search(r"[\w.]+@[\w.]+", text)
    assert not re.search(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", text)


def test_every_metric_declares_only_known_label_names():
    names = {"route", "scope", *metrics.LABELS}
    for collector in (metrics.LOGINS, metrics.REFRESHES, metrics.LOCKOUTS, metrics.RATE_LIMITED, metrics.MFA,
                      metrics.COOKIE_CACHE, metrics.OUTBOX_FAILURES, metrics.REQUEST_SECONDS, metrics.IN_PROGRESS):
        assert set(collector._labelnames) <= names, collector


# --- the dashboard and the alert rules name metrics that exist --------------------------------------------

def test_dashboard_and_alerts_use_existing_metrics(client, metrics_on):
    import json
    from pathlib import Path

    import yaml

    docs = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
    exposed = {sample.name for family in text_string_to_metric_families(scrape(client).content.decode())
               for sample in family.samples}  # the scrape-time gauges, and metrics with samples already
    for metric in (metrics.LOGINS, metrics.REFRESHES, metrics.LOCKOUTS, metrics.RATE_LIMITED, metrics.MFA,
                   metrics.COOKIE_CACHE, metrics.OUTBOX_FAILURES, metrics.REQUEST_SECONDS, metrics.IN_PROGRESS):
        exposed |= {f"{metric._name}{suffix}" for suffix in
                    {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}[metric._type]}
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((docs / "alerts.yml").read_text())["groups"][0]["rules"]
    assert all({"alert", "expr", "labels", "annotations"} <= set(rule) for rule in rules)
    exprs += [rule["expr"] for rule in rules]
    named = {name for expr in exprs for name in re.findall(r"mana_auth_[a-z_]+", expr)}
    assert named and named <= exposed, named - exposed
    for name in ("mana_auth_refresh_total", "mana_auth_lockouts_total", "mana_auth_outbox_oldest_pending_seconds",
                 "mana_auth_signing_key_age_seconds"):
        assert any(name in rule["expr"] for rule in rules), name

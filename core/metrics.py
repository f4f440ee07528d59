"""Prometheus metrics: the definitions, the helpers their owners call, the request timing, ``GET /metrics``.

Labels come from fixed sets only (``LABELS``): a value outside its set is counted as ``other``, so no
email, IP address, user id, token or raw path can ever become a label (tests/core/test_metrics.py).
The owners count where their events happen:

* ``audit_counted(event, success, context)``: called by ``audit.services.audit_record`` for every
  event, it maps login, refresh and lockout events to their counters (one mapping, ``AUDIT_COUNTERS``);
* ``rate_limited(scope=...)``: security.ratelimit and the login delay, for every refusal;
* ``cookie_cache(result=...)``: sessions_app.browser, once per request that carries a session cookie;
* ``mfa_result(method=..., outcome=...)``: the second-factor checks;
* ``outbox_delivery_failed()``: notifications.services, each failed attempt;
* ``scrape_collector(name, collect)``: a gauge computed at scrape time from the owner's rows (outbox
  backlog, signing-key age), registered in the owner's ``AppConfig.ready()``.

Several processes (the web server's workers): set ``PROMETHEUS_MULTIPROC_DIR`` before the first import of
``prometheus_client`` (config/serve.py does, and config/gunicorn.py) and every scrape sums the counters of
every worker, dead ones included (a dead worker is marked so its live gauges drop out: by a starting worker
under granian, by ``child_exit`` under gunicorn). Without it, the one process's own registry is exported
(runserver, tests).

``GET /metrics`` answers only ``Authorization: Bearer <AUTH_METRICS_TOKEN>`` (compared in constant
time); any other request, and every request while the variable is unset, gets the site's 404.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

from django.conf import settings
from django.http import Http404, HttpResponse
from django.urls import Resolver404, resolve

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Other processes of the deployment (a Celery worker, a management command) may run with the variable
    # set before gunicorn made the directory: their counters (outbox failures) join the sums.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client import generate_latest, multiprocess  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

logger = logging.getLogger(__name__)

OTHER = "other"

# --- the fixed label sets ------------------------------------------------------------------------------
LOGIN_OUTCOMES = ("success", "invalid_credentials", "email_not_verified", "account_locked", "rate_limited",
                  "mfa_required", OTHER)
REFRESH_OUTCOMES = ("success", "grace_replay", "reuse_detected", "invalid_token", "session_revoked",
                    "session_expired", "anomaly", OTHER)
MFA_METHODS = ("totp", "recovery_code", "passkey", OTHER)
MFA_OUTCOMES = ("success", "invalid_code", "replayed", "token_invalid", "locked", OTHER)
COOKIE_CACHE_RESULTS = ("hit", "miss", "stale", "revoked")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", OTHER)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_SCOPE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # rate-limit scopes: the owner passes only its table's names

LABELS: dict[str, tuple[str, ...]] = {
    "outcome": tuple(sorted(set(LOGIN_OUTCOMES) | set(REFRESH_OUTCOMES) | set(MFA_OUTCOMES))),
    "method": tuple(sorted(set(MFA_METHODS) | set(HTTP_METHODS))),
    "result": COOKIE_CACHE_RESULTS,
    "status": STATUS_CLASSES,
}
"""Every label name a metric of ours may carry, with its values; ``scope`` (rate-limit scopes, named by
security's table) and ``route`` (URL names of the URL conf) are fixed by code, not by this table."""


def _one_of(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


# --- the metrics ---------------------------------------------------------------------------------------
LOGINS = Counter("mana_auth_logins", "Password sign-in attempts by outcome.", ["outcome"])
REFRESHES = Counter("mana_auth_refresh", "Refresh-token exchanges by outcome (reuse_detected: a spent token "
                    "presented again outside the grace window; the session was revoked).", ["outcome"])
_REFRESH_SUCCEEDED = REFRESHES.labels(outcome="success")
LOCKOUTS = Counter("mana_auth_lockouts", "(account, IP) pairs locked after too many failed passwords.")
RATE_LIMITED = Counter("mana_auth_rate_limited", "Requests refused by a rate limit, by scope.", ["scope"])
MFA = Counter("mana_auth_mfa", "Second-factor checks by method and outcome.", ["method", "outcome"])
COOKIE_CACHE = Counter("mana_auth_cookie_cache", "Cookie-cache lookups of requests with a session cookie: hit "
                       "(answered from the snapshot), miss (no snapshot), stale (expired or unreadable), revoked "
                       "(a revocation or change mark, or Redis unavailable: the database decides).", ["result"])
OUTBOX_FAILURES = Counter("mana_auth_outbox_delivery_failures", "Failed mail delivery attempts (each is retried "
                          "with backoff until the message is marked failed).")
REQUEST_SECONDS = Histogram(
    "mana_auth_request_duration_seconds", "Time to answer a request, by route name (never the raw path).",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_PROGRESS = Gauge("mana_auth_requests_in_progress", "Requests being answered right now (live workers).",
                    multiprocess_mode="livesum")


# --- helpers the owners call ------------------------------------------------------------------------------
def login_result(*, outcome: str) -> None:
    LOGINS.labels(outcome=_one_of(outcome, LOGIN_OUTCOMES)).inc()


def refresh_result(*, outcome: str) -> None:
    if outcome == "success":
        _REFRESH_SUCCEEDED.inc()  # every routine refresh: the child looked up once
    else:
        REFRESHES.labels(outcome=_one_of(outcome, REFRESH_OUTCOMES)).inc()


def lockout_started() -> None:
    LOCKOUTS.inc()


def rate_limited(*, scope: str) -> None:
    """A rate-limit refusal; ``scope`` is a name from security's table (anything else counts as other)."""
    RATE_LIMITED.labels(scope=scope if isinstance(scope, str) and _SCOPE.fullmatch(scope) else OTHER).inc()


def mfa_result(*, method: str, outcome: str) -> None:
    """One second-factor check: ``method`` totp | recovery_code | passkey, ``outcome`` success |
    invalid_code | replayed | token_invalid | locked (anything else counts as other)."""
    MFA.labels(method=_one_of(method, MFA_METHODS), outcome=_one_of(outcome, MFA_OUTCOMES)).inc()


def cookie_cache(*, result: str) -> None:
    if result in COOKIE_CACHE_RESULTS:
        COOKIE_CACHE.labels(result=result).inc()


def outbox_delivery_failed() -> None:
    OUTBOX_FAILURES.inc()


# One mapping from the audit trail's events to counters: (event name, success) -> (counter, outcome), or
# an outcome taken from the row's ``reason``. Event names are the audit app's stable dotted names.
_MFA_REASONS = {"invalid_code": "invalid_code", "mfa_token_invalid": "token_invalid", "account_locked": "locked"}
_LOGIN_REASONS = {"invalid_credentials", "email_not_verified", "account_locked", "mfa_required"}
_REFRESH_REASONS = {"unknown": "invalid_token", "anomaly": "anomaly", "expired": "session_expired",
                    "organization_max_lifetime": "session_expired", "organization_idle_timeout": "session_expired",
                    "revoked": "session_revoked", "session_missing": "session_revoked",
                    "user_inactive": "session_revoked", "idle_timeout": "session_revoked"}


def audit_counted(event: str, success: bool, context: dict) -> None:
    """Count one audit event (``audit_record`` calls this for every event, before flood control)."""
    event = str(event)
    if event == "auth.login.succeeded":
        login_result(outcome="success")
    elif event == "auth.login.failed":
        reason = context.get("reason")
        login_result(outcome=reason if reason in _LOGIN_REASONS else OTHER)
    elif event == "security.rate_limited" and context.get("scope") == "login_delay":
        login_result(outcome="rate_limited")
    elif event == "auth.lockout.locked":
        lockout_started()
        login_result(outcome="account_locked")
    elif event == "auth.token.refreshed":
        refresh_result(outcome="grace_replay" if context.get("replayed_within_grace") else "success")
    elif event == "auth.token.refresh_failed":
        refresh_result(outcome=_REFRESH_REASONS.get(context.get("reason"), OTHER))
    elif event == "auth.token.reuse_detected":
        refresh_result(outcome="reuse_detected")
    elif event == "auth.mfa.challenged":  # the password passed; the second factor is asked for
        login_result(outcome="mfa_required")
    elif event == "auth.mfa.verified":
        mfa_result(method=str(context.get("method")), outcome="success")
    elif event == "auth.mfa.failed":
        mfa_result(method=str(context.get("method")), outcome=_MFA_REASONS.get(context.get("reason"), OTHER))
    elif event == "auth.mfa.locked":
        lockout_started()


# --- gauges computed at scrape time ----------------------------------------------------------------------
_SCRAPE_COLLECTORS: dict[str, Callable[[], Iterable]] = {}


def scrape_collector(name: str, collect: Callable[[], Iterable]) -> None:
    """Register ``collect() -> metric families``, called by the process that answers the scrape (gauges
    read from the database: outbox backlog, signing-key age). Registering a name again replaces it."""
    _SCRAPE_COLLECTORS[name] = collect


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    """A gauge family with one unlabelled sample, for scrape collectors."""
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


class _ScrapeCollectors:
    def collect(self):
        for name, collect in list(_SCRAPE_COLLECTORS.items()):
            try:
                yield from collect()
            except Exception:  # a database outage must not take the other metrics with it
                logger.warning("metrics collector %s failed", name, exc_info=True)


class _ProcessRegistry:
    def collect(self):
        yield from REGISTRY.collect()


def exposition() -> bytes:
    """The text format of every metric: summed over every worker in multiprocess mode, plus the
    scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())
    registry.register(_ScrapeCollectors())
    return generate_latest(registry)


# --- the endpoint ----------------------------------------------------------------------------------------
def _token_matches(request) -> bool:
    expected = getattr(settings, "AUTH_METRICS_TOKEN", "") or ""
    if not expected:
        return False
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


def metrics_view(request):
    """``GET /metrics``: 404 unless the request carries the metrics token (and while none is set)."""
    if request.method not in ("GET", "HEAD") or not _token_matches(request):
        raise Http404
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# --- request timing --------------------------------------------------------------------------------------
@lru_cache(maxsize=512)
def _route_of(path: str) -> str:
    """The URL name for a path answered before URL resolution (fast paths, early refusals)."""
    try:
        match = resolve(path)
    except Resolver404:
        return "unmatched"
    return match.view_name or "unnamed"


def route_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or "unnamed"
    path = request.path_info
    if len(path) > 256:
        return "unmatched"
    return _route_of(path)


class RequestMetricsMiddleware:
    """Time every request by route name (the resolver's URL name, never the path), method and status
    class. Near the top of MIDDLEWARE, so the fast paths and early answers are timed too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        IN_PROGRESS.inc()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            IN_PROGRESS.dec()
            key = (route_name(request), request.method if request.method in HTTP_METHODS else OTHER,
                   min(max(status // 100, 1), 5))
            child = _timers.get(key)
            if child is None:  # labels() validates and locks: once per route, method and status class
                child = _timers[key] = REQUEST_SECONDS.labels(route=key[0], method=key[1], status=f"{key[2]}xx")
            child.observe(time.perf_counter() - started)


_timers: dict[tuple[str, str, int], object] = {}  # bounded: routes x methods x 5

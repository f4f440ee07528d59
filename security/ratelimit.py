"""Rate limits with django-ratelimit on the shared cache (Redis when REDIS_URL is set).

``ratelimit_hit(request=..., scope=...)`` counts one request against a scope's rate
(security/app_settings.py) and raises 429 ``rate_limited`` with ``Retry-After`` over the limit; the
``rate_limit`` decorator does it for a DRF method; ``ApiRateThrottle`` applies the ``api`` scope to
every API view, per signed-in user or else per client IP. Pages call the same function.

Without Redis the counters live in the process (LocMem): right for the embedded single-process
default, per-process in anything bigger. If the cache fails (Redis down), limits fail open: the
request goes on, a warning is logged; lockouts keep working because django-axes keeps them in the
database.
"""

from __future__ import annotations

import functools
import logging

from django.db import transaction
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from audit.models import EventType
from audit.services import audit_record
from core.errors import ApiError
from core.request_meta import client_ip
from security.app_settings import app_settings

logger = logging.getLogger(__name__)


class RateLimited(ApiError):
    status_code = 429
    default_code = "rate_limited"
    default_detail = "Too many requests. Try again later."


def ratelimit_hit(*, request, scope: str, value: str | None = None) -> None:
    """Count this request in ``scope`` for ``value`` (default: the client IP); raise RateLimited
    over the limit. The first refused request of each window is audited."""
    rate = app_settings.rate(scope)
    if not rate or not app_settings.RATE_LIMIT_ENABLED:
        return
    http_request = getattr(request, "_request", request)
    value = value or f"ip:{client_ip(request) or 'unknown'}"
    try:
        usage = get_usage(http_request, group=f"{app_settings.RATE_LIMIT_PREFIX}.{scope}",
                          key=lambda group, req: value, rate=rate, increment=True)
    except Exception:  # the cache is down: fail open (documented), never a 500
        logger.warning("rate limit %s not enforced: the cache is unavailable", scope, exc_info=True)
        return
    if not usage or not usage["should_limit"]:
        return
    if usage["count"] == usage["limit"] + 1:
        with transaction.atomic():
            audit_record(event=EventType.RATE_LIMITED, request=request, success=False, scope=scope, rate=rate,
                         limited=value.split(":", 1)[0])
    raise RateLimited(headers={"Retry-After": str(max(1, usage["time_left"]))})


def _field_value(request, field: str) -> str | None:
    data = getattr(request, "data", None)
    value = data.get(field) if isinstance(data, dict) else None
    return f"{field}:{value.strip().lower()[:254]}" if isinstance(value, str) and value.strip() else None


def user_value(user) -> str | None:
    """The counter value of a per-user scope (None for an anonymous request)."""
    return f"user:{user.pk}" if getattr(user, "is_authenticated", False) else None


def rate_limit(scope: str, *, also_by: str | None = None, per_user: bool = False):
    """Decorate a DRF view method: limit ``scope`` per client IP (``per_user``: per signed-in user
    instead) and, with ``also_by``, per value of that body field too (e.g. the email a reset is
    requested for, from whatever address)."""
    def decorator(method):
        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            ratelimit_hit(request=request, scope=scope,
                          value=user_value(getattr(request, "user", None)) if per_user else None)
            if also_by:
                value = _field_value(request, also_by)
                if value:
                    ratelimit_hit(request=request, scope=scope, value=value)
            return method(self, request, *args, **kwargs)
        return wrapper
    return decorator


class ApiRateThrottle(BaseThrottle):
    """The ``api`` scope (100/min by default) for every DRF view, per user or else per IP. A view
    with heavier legitimate traffic (e.g. token introspection by resource servers) may name its own
    scope in ``api_rate_scope`` (its rate configured like any other; None: not limited here)."""

    def allow_request(self, request, view):
        scope = getattr(view, "api_rate_scope", "api")
        if scope is None:
            return True
        ratelimit_hit(request=request, scope=scope, value=user_value(getattr(request, "user", None)))
        return True

"""Rate limits with django-ratelimit on the shared cache (Redis when REDIS_URL is set).

``ratelimit_hit(request=..., scope=...)`` counts one request against a scope's rate
(security/app_settings.py, the table in docs/security.md) and raises 429 ``rate_limited`` with
``Retry-After`` over the limit; ``rate_limit`` does it for a DRF method and ``web.decorators.page_rate_limit``
for a page, both through ``request_limits_hit`` (one sequence for both); ``ApiRateThrottle`` applies the
``api`` scope to every API view, per signed-in user or else per client IP.

Requests that mail an address typed into them also spend that address's shares (``mail_address_hit``):
one per client network, so a stranger hammering an address from their network never uses up its
owner's share, and one overall cap. A request proven to come from the address's owner (a known-device
token of that account, or a signed-in session of it: ``owner=True``) is counted in the owner's own share
of the scope instead, which nobody else can spend (docs/security.md, "Whose budget").

Without Redis the counters live in the process (LocMem): right for the embedded single-process
default, per-process in anything bigger. If the cache fails (Redis down or hung), limits fail open: the
request goes on, a warning is logged, and for a second the limits are not asked at all (a hung Redis
costs one timeout a second, not one per request); lockouts keep working because django-axes keeps them
in the database (docs/security.md, "When Redis is down").
"""

from __future__ import annotations

import functools
import logging
import time

from django.db import transaction
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from audit.models import EventType
from audit.services import audit_record
from core import metrics
from core.errors import ApiError
from core.outage import cause
from core.request_meta import client_ip, client_network
from security.app_settings import app_settings

logger = logging.getLogger(__name__)


class RateLimited(ApiError):
    status_code = 429
    default_code = "rate_limited"
    default_detail = "Too many requests. Try again later."


# After a cache failure the limits are left alone for CACHE_PAUSE_SECONDS (fail open at once): a hung Redis
# then costs one socket timeout a second per process, not one per request and scope.
CACHE_PAUSE_SECONDS = 1.0
_cache_failed_at = [float("-inf")]


def _cache_paused() -> bool:
    return time.monotonic() - _cache_failed_at[0] < CACHE_PAUSE_SECONDS


def ratelimit_hit(*, request, scope: str, value: str | None = None) -> None:
    """Count this request in ``scope`` for ``value`` (default: the client IP); raise RateLimited
    over the limit. The first refused request of each window is audited (the signed-in user, if
    any, as its subject)."""
    rate = app_settings.rate(scope)
    if not rate or not app_settings.RATE_LIMIT_ENABLED:
        return
    http_request = getattr(request, "_request", request)
    value = value or f"ip:{client_ip(request) or 'unknown'}"
    if _cache_paused():
        return  # the cache failed a moment ago: fail open without waiting for its timeout again
    try:
        usage = get_usage(http_request, group=f"{app_settings.RATE_LIMIT_PREFIX}.{scope}",
                          key=lambda group, req: value, rate=rate, increment=True)
    except Exception as exc:  # the cache is down: fail open (documented), never a 500
        _cache_failed_at[0] = time.monotonic()
        logger.warning("rate limit %s not enforced: the cache is unavailable (%s)", scope, cause(exc))
        return
    if not usage or not usage["should_limit"]:
        return
    metrics.rate_limited(scope=scope)
    if usage["count"] == usage["limit"] + 1:
        user = getattr(http_request, "user", None)
        with transaction.atomic():
            audit_record(event=EventType.RATE_LIMITED, request=request, success=False, scope=scope, rate=rate,
                         subject=user if getattr(user, "is_authenticated", False) else None,
                         limited=value.split(":", 1)[0])
    raise RateLimited(headers={"Retry-After": str(max(1, usage["time_left"]))})


def address_normalize(value) -> str | None:
    """An address typed into a request, as the counters key it (trimmed, lowercased); None if absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()[:254]


def mail_address_hit(*, request, address: str) -> None:
    """A request that mails ``address`` (typed into it): the address's share of the client's network
    (``mail_address``), then the address's overall cap (``mail_address_total``). A refusal by the
    first spends nothing of the second, so one network cannot use up the cap."""
    network = client_network(request) or "unknown"
    ratelimit_hit(request=request, scope="mail_address", value=f"email:{address}|net:{network}")
    ratelimit_hit(request=request, scope="mail_address_total", value=f"email:{address}")


def user_value(user) -> str | None:
    """The counter value of a per-user scope (None for an anonymous request)."""
    return f"user:{user.pk}" if getattr(user, "is_authenticated", False) else None


def request_limits_hit(*, request, scope: str, user=None, address: str | None = None, owner: bool = False) -> None:
    """What the API decorator and the page decorator count for one request, in this order:

    * ``owner`` (the request proved it comes from ``address``'s owner): only the owner's own share
      of ``scope`` (value ``owner:<address>``), which no stranger can spend;
    * otherwise ``scope`` per signed-in ``user`` (per-user scopes) or per client IP, and, when the
      request mails ``address``, that address's shares (``mail_address_hit``)."""
    if address and owner:
        ratelimit_hit(request=request, scope=scope, value=f"owner:{address}")
        return
    ratelimit_hit(request=request, scope=scope, value=user_value(user) if user is not None else None)
    if address:
        mail_address_hit(request=request, address=address)


def rate_limit(scope: str, *, per_user: bool = False, mail_to: str | None = None, owner_proof=None):
    """Decorate a DRF view method: limit ``scope`` per client IP (``per_user``: per signed-in user
    instead). ``mail_to``: the body field holding an address the endpoint mails (its shares are
    counted too). ``owner_proof(request, address) -> bool``: a request that proves it comes from the
    address's owner is counted in the owner's own share instead (``request_limits_hit``)."""
    def decorator(method):
        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            address, unreadable = None, None
            if mail_to:
                try:
                    data = request.data
                except Exception as exc:  # noqa: BLE001  (a body the parsers refuse: counted first, then raised)
                    data, unreadable = None, exc
                address = address_normalize(data.get(mail_to)) if isinstance(data, dict) else None
            request_limits_hit(request=request, scope=scope,
                               user=getattr(request, "user", None) if per_user else None, address=address,
                               owner=bool(address and owner_proof and owner_proof(request, address)))
            if unreadable is not None:
                raise unreadable
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

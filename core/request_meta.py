"""Who is asking: the client IP (under the trusted-proxy rule) and user agent of a request."""

from __future__ import annotations

import ipaddress

from django.conf import settings

USER_AGENT_MAX_LENGTH = 512


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """REMOTE_ADDR, unless AUTH_TRUSTED_PROXY_COUNT > 0: then the X-Forwarded-For entry that many
    places from the right (the address our outermost trusted proxy saw). A client cannot choose its
    IP by sending the header, because entries left of the trusted ones are never read."""
    if request is None:
        return None
    proxies = settings.AUTH_TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return _valid_ip(forwarded[-proxies])
    return _valid_ip(request.META.get("REMOTE_ADDR", ""))


def user_agent(request) -> str:
    """The User-Agent header, cut to the column's size. NUL bytes are dropped: PostgreSQL refuses
    them in text columns, and not every server in front of us strips them."""
    if request is None:
        return ""
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:USER_AGENT_MAX_LENGTH]

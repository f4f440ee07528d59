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


def network_of(ip: str | None) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address; "" when unknown. One network is one
    client for the rules that must not be dodged by hopping addresses (new-device alerts, per-address
    mail shares, the audit trail's flood control)."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def client_network(request) -> str:
    """network_of(client_ip(request))."""
    return network_of(client_ip(request))


def user_agent(request) -> str:
    """The User-Agent header, cut to the column's size. NUL bytes are dropped: PostgreSQL refuses
    them in text columns, and not every server in front of us strips them."""
    if request is None:
        return ""
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:USER_AGENT_MAX_LENGTH]

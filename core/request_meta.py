"""Who is asking: the client IP (under the trusted-proxy rule), the network of an address, and the
user agent of a request with the one description of it that pages, mails and audit rows use."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from user_agents import parse as parse_user_agent

USER_AGENT_MAX_LENGTH = 512


def _valid_ip(value: str) -> str | None:
    # No address is longer than 64 characters (IPv6 with a zone id); longer text is no address, and is kept
    # out of the cache, whose entries then stay small.
    return _parsed_ip(value) if len(value) <= 64 else None


@lru_cache(maxsize=4096)  # the same few addresses ask again and again; ipaddress parses slowly
def _parsed_ip(value: str) -> str | None:
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


@lru_cache(maxsize=4096)  # every refresh asks twice (the session's address, the request's); ipaddress is slow
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


_UNKNOWN = "Other"  # what the parser says when the header does not name a browser, system or device


@dataclass(frozen=True)
class UserAgentDescription:
    """A User-Agent header in the words every page, mail and audit row uses ("" where it says nothing)."""

    family: str  # "Chrome/Windows": browser and OS family, compared across refreshes; "" without a header
    device_family: str  # the parser's device family ("iPhone", "Other"): part of the seen-device key
    browser: str  # "Chrome 120.0.0"
    os: str  # "iOS 17.0"
    device: str  # "iPhone", "Computer"
    label: str  # "Chrome on Windows", or the one part that is known


@lru_cache(maxsize=4096)  # a refresh describes two headers, a login several; one client sends the same one
def user_agent_describe(ua: str) -> UserAgentDescription:
    """The one description of a User-Agent header (every caller reads its fields from here; it is frozen)."""
    parsed = parse_user_agent(ua or "")
    browser, system = parsed.browser, parsed.os
    browser_family = "" if browser.family == _UNKNOWN else browser.family
    os_family = "" if system.family == _UNKNOWN else system.family
    device = "" if parsed.device.family == _UNKNOWN else parsed.device.family
    return UserAgentDescription(
        family=f"{browser.family}/{system.family}" if ua else "",
        device_family=parsed.device.family,
        browser=f"{browser_family} {browser.version_string}".strip() if browser_family else "",
        os=f"{os_family} {system.version_string}".strip() if os_family else "",
        device=device or ("Computer" if parsed.is_pc else ""),
        label=f"{browser_family} on {os_family}" if browser_family and os_family else browser_family or os_family,
    )


def user_agent_family(ua: str) -> str:
    """Browser and OS family ("Chrome/Windows"); "" for an empty header."""
    return user_agent_describe(ua).family


def device_label(ua: str) -> str:
    """"Firefox on Windows" from a User-Agent header ("" when nothing readable)."""
    return user_agent_describe(ua).label


def device_description(ua: str, device_name: str = "") -> dict:
    """The device of a sign-in as mails and audit rows name it (a name the client gave wins)."""
    described = user_agent_describe(ua)
    return {"browser": described.browser or "unknown browser", "os": described.os or "unknown system",
            "device": device_name or described.device or "unknown device"}

"""The one description of a User-Agent header, and the network of an address (core/request_meta.py)."""

import hashlib

import pytest

from core.request_meta import (
    device_description,
    device_label,
    network_of,
    user_agent_describe,
    user_agent_family,
)
from security.devices import device_fingerprint

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
CURL = "curl/8.0"
UNREADABLE = "zzz"


def test_a_desktop_browser_is_described_in_words():
    described = user_agent_describe(CHROME)
    assert (described.browser, described.os, described.device, described.label) == (
        "Chrome 120.0.0", "Windows 10", "Computer", "Chrome on Windows")


def test_a_phone_names_its_device_and_system_version():
    described = user_agent_describe(IPHONE)
    assert (described.browser, described.os, described.device, described.label) == (
        "Mobile Safari 17.0", "iOS 17.0", "iPhone", "Mobile Safari on iOS")


@pytest.mark.parametrize("ua, label", [(CURL, "curl"), (UNREADABLE, ""), ("", "")])
def test_the_label_keeps_only_what_the_header_says(ua, label):
    assert user_agent_describe(ua).label == device_label(ua) == label


@pytest.mark.parametrize("ua", ["", UNREADABLE])
def test_an_empty_or_unreadable_header_says_nothing(ua):
    described = user_agent_describe(ua)
    assert (described.browser, described.os, described.device, described.label) == ("", "", "", "")
    assert device_description(ua) == {"browser": "unknown browser", "os": "unknown system",
                                      "device": "unknown device"}


def test_a_device_name_given_by_the_client_wins_in_mails_and_audit_rows():
    assert device_description(CHROME, "Work laptop") == {"browser": "Chrome 120.0.0", "os": "Windows 10",
                                                         "device": "Work laptop"}
    assert device_description(IPHONE)["device"] == "iPhone"


def test_the_family_keeps_its_format_because_refreshes_compare_it():
    assert user_agent_family(CHROME) == "Chrome/Windows"
    assert user_agent_family(UNREADABLE) == "Other/Other"
    assert user_agent_family("") == ""


def test_the_seen_device_key_is_unchanged_by_the_description():
    """SeenDevice.device_key rows already stored must keep matching the same devices."""
    for ua, basis in [(CHROME, "ua:Chrome/Windows/Other"), (IPHONE, "ua:Mobile Safari/iOS/iPhone"),
                      ("", "ua:/Other")]:
        assert device_fingerprint(device_id="", ua=ua) == hashlib.sha256(basis.encode()).hexdigest()
    assert device_fingerprint(device_id="d-1", ua=CHROME) == hashlib.sha256(b"id:d-1").hexdigest()


@pytest.mark.parametrize("ip, network", [
    ("198.51.100.77", "198.51.100.0/24"),
    ("2001:db8:1:2::1", "2001:db8:1::/48"),
    ("::ffff:198.51.100.77", "198.51.100.0/24"),  # an IPv4-mapped address is its IPv4 network
    ("not-an-ip", ""),
    (None, ""),
])
def test_network_of(ip, network):
    assert network_of(ip) == network


@pytest.mark.parametrize(("remote", "expected"), [
    ("203.0.113.7", "203.0.113.7"),
    (" 2001:DB8::1 ", "2001:db8::1"),  # normalized, as written to rows
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("not an address", None),
    ("1" * 65, None),  # longer than any address: refused without parsing or caching it
])
def test_client_ip_is_the_normalized_address_or_none(rf, remote, expected):
    from core.request_meta import _parsed_ip, client_ip

    request = rf.get("/", REMOTE_ADDR=remote)
    before = _parsed_ip.cache_info()
    assert client_ip(request) == expected
    assert client_ip(request) == expected  # the second answer comes from the cache: the same
    after = _parsed_ip.cache_info()
    if len(remote) > 64:
        assert (after.hits, after.misses) == (before.hits, before.misses)
    else:
        assert after.hits >= before.hits + 1

"""IP and user agent on audit rows, under the trusted-proxy rule (AUTH_TRUSTED_PROXY_COUNT)."""

import pytest

from audit.models import AuditEvent, EventType

CLIENT = "203.0.113.7"
SPOOF = "6.6.6.6"
PROXY = "10.0.0.5"


def _login_failed_row(api, **meta):
    r = api.post("/api/v1/auth/login", {"email": "nobody@example.com", "password": "whatever-password"},
                 format="json", **meta)
    assert r.status_code == 401
    return AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).latest("id")


def test_no_trusted_proxy_uses_remote_addr_and_ignores_the_header(api, db, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 0
    row = _login_failed_row(api, REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR=f"{SPOOF}, 198.51.100.1")
    assert row.ip_address == CLIENT


@pytest.mark.parametrize("header", [CLIENT, f"{SPOOF}, {CLIENT}", f"{SPOOF},{SPOOF}, {CLIENT}"])
def test_one_trusted_proxy_uses_the_right_most_entry(api, db, settings, header):
    settings.AUTH_TRUSTED_PROXY_COUNT = 1
    row = _login_failed_row(api, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=header)
    assert row.ip_address == CLIENT


def test_two_trusted_proxies_use_the_second_entry_from_the_right(api, db, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 2
    row = _login_failed_row(api, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{SPOOF}, {CLIENT}, 10.0.0.4")
    assert row.ip_address == CLIENT


def test_a_spoofed_left_entry_is_never_used(api, db, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 1
    row = _login_failed_row(api, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{SPOOF}, not-an-ip")
    assert row.ip_address != SPOOF  # the right-most entry is garbage: no address rather than the spoof


def test_one_trusted_proxy_without_the_header_falls_back_to_remote_addr(api, db, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 1
    row = _login_failed_row(api, REMOTE_ADDR=PROXY)
    assert row.ip_address == PROXY


def test_ipv6_and_long_user_agents(api, db, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 0
    row = _login_failed_row(api, REMOTE_ADDR="2001:db8::1", HTTP_USER_AGENT="A" * 5000)
    assert row.ip_address == "2001:db8::1"
    assert row.user_agent == "A" * 512

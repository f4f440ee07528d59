"""Redis cut away under a running server process (config.serve: granian) (issue 17): sign-in keeps working (rate limits fail
open, docs/security.md), the cookie cache falls back to the database, a session revoked during the
outage is refused at once (the database decides) and its revocation mark, kept in the database, reaches
Redis after the outage, so the revoked session's snapshot never answers again."""

from __future__ import annotations

import time

import psycopg
import redis

from tests.faults.conftest import fresh_ip
from tests.faults.test_database import login
from tests.support.http_client import Browser, call


def pending_marks(faulty) -> list[str]:
    with psycopg.connect(faulty.direct_db_url) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM sessions_app_pendingrevocationmark")]


def test_redis_cut_then_healed(healed):
    email = healed.user()
    browser = healed.browser(email)
    sid = browser.get("/api/v1/auth/session").json()["session"]["id"]
    other = login(healed, email).json()
    bearer = {"Authorization": f"Bearer {other['accessToken']}"}
    direct = redis.Redis.from_url(healed.direct_redis_url)
    direct.delete(f"mca:revoked:sid:{sid}")
    log_start = len(healed.log())

    healed.redis.cut()
    # Sign-in works; the per-IP login limit (5 a minute) is not enforced while Redis is away: fail open.
    ip = fresh_ip()
    replies = [login(healed, email, ip=ip) for _ in range(7)]
    assert [r.status for r in replies] == [200] * 7, [(r.status, r.text[:100]) for r in replies]
    assert max(r.seconds for r in replies) < 3
    # The cookie cache asks the database instead of Redis: still signed in.
    assert browser.get("/api/v1/auth/session").status == 200
    ready = call("GET", healed.url + "/readyz")
    assert ready.status == 503 and ready.json()["checks"]["redis"]["status"] == "down"
    assert ready.json()["checks"]["database"]["status"] == "up"

    # The browser's session is revoked elsewhere while Redis is away: its mark waits in the database.
    # (``copy``: the same cookies, kept by someone who copied them: they must never answer again.)
    copy = Browser(healed.url, ip=browser.ip)
    copy.jar = dict(browser.jar)
    assert call("DELETE", f"{healed.url}/api/v1/auth/sessions/{sid}", headers=bearer).status == 204
    assert f"mca:revoked:sid:{sid}" in pending_marks(healed)
    assert browser.get("/api/v1/auth/session").status == 401  # the database decides meanwhile

    healed.redis.heal()
    healed.wait_until_ready(10)
    # The process that saw the outage re-sends the kept marks before it trusts Redis again.
    deadline = time.monotonic() + 10
    while direct.get(f"mca:revoked:sid:{sid}") is None and time.monotonic() < deadline:
        assert copy.get("/api/v1/auth/session", keep=False).status == 401
        time.sleep(0.3)
    assert direct.get(f"mca:revoked:sid:{sid}") == b"1"
    assert pending_marks(healed) == []
    assert copy.get("/api/v1/auth/session").status == 401
    assert "Traceback" not in healed.new_lines(log_start).replace("revocation lookup failed", "")


def test_redis_hung(healed):
    """Redis accepts and never answers: each client gives up after its short socket timeout and then
    leaves Redis alone for a second, so requests stay within a few seconds and nothing fails."""
    email = healed.user()
    browser = healed.browser(email)
    log_start = len(healed.log())
    healed.redis.hang()
    replies = [login(healed, email) for _ in range(4)]
    assert [r.status for r in replies] == [200] * 4, [(r.status, r.text[:100]) for r in replies]
    assert max(r.seconds for r in replies) < 4, [round(r.seconds, 2) for r in replies]
    session = browser.get("/api/v1/auth/session")
    assert session.status == 200 and session.seconds < 4
    assert call("GET", healed.url + "/.well-known/jwks.json").status == 200
    ready = call("GET", healed.url + "/readyz")
    assert ready.status == 503 and ready.json()["checks"]["redis"]["status"] == "down" and ready.seconds < 4
    healed.redis.heal()
    healed.wait_until_ready(10)
    assert login(healed, email).status == 200
    assert "Traceback" not in healed.new_lines(log_start)

"""PostgreSQL cut away and hung under a running server process (config.serve: granian) (issue 17): the API answers 503
``service_unavailable`` with Retry-After within seconds, pages the "we'll be right back" page, what
needs no database keeps working (JWKS, GET session and GET token from a fresh snapshot, /healthz), the log
has one warning line per refused request and no stack trace, and the server recovers without a restart."""

from __future__ import annotations

import subprocess
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.conftest import PYTHON, REPO
from tests.faults.conftest import PASSWORD, STATEMENT_TIMEOUT_MS, fresh_ip, no_tracebacks
from tests.support.http_client import Reply, call

LOGIN = "/api/v1/auth/login"
JWKS = "/.well-known/jwks.json"
# The slowest a hung database may make a request: the health check of the persistent connection (1 s),
# a new connection's connect timeout (2 s) or the statement deadline (1.5 s + 1 s), with room for CI.
HUNG_BOUND_SECONDS = 6.0


def login(faulty, email, ip: str | None = None) -> Reply:
    return call("POST", faulty.url + LOGIN, json={"email": email, "password": PASSWORD},
                headers={"X-Forwarded-For": ip or fresh_ip()})


def unavailable(reply: Reply, *, api: bool = True) -> bool:
    assert reply.status == 503, (reply.status, reply.text[:300])
    assert reply.headers.get("retry-after", "").isdigit()
    if api:
        assert reply.json() == {"error": {"code": "service_unavailable", "message": reply.json()["error"]["message"]}}
    else:
        assert "be right back" in reply.text
    return True


def verifies(token: str, jwks: dict) -> bool:
    jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["EdDSA"])
    return True


@pytest.fixture
def signed_in(healed):
    """A user, a browser with a fresh snapshot, a token and the JWKS taken while everything is up."""
    email = healed.user()
    browser = healed.browser(email)
    assert browser.get("/api/v1/auth/token").status == 200  # the signer is in the process's cache
    pair = login(healed, email).json()
    jwks = call("GET", healed.url + JWKS).json()
    return email, browser, pair, jwks


def test_database_cut(healed, signed_in):
    email, browser, pair, jwks = signed_in
    log_start = len(healed.log())
    healed.db.cut()

    reply = login(healed, email)
    assert unavailable(reply) and reply.seconds < 3
    bearer = {"Authorization": f"Bearer {pair['accessToken']}"}
    assert unavailable(call("GET", healed.url + "/api/v1/auth/me", headers=bearer))
    assert unavailable(call("POST", healed.url + "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}))
    assert unavailable(browser.get("/account/sessions"), api=False)  # a page: "we'll be right back"
    assert browser.get("/account").status == 200  # a page the snapshot can answer still does

    # What needs no database keeps answering.
    assert call("GET", healed.url + JWKS).json() == jwks
    assert call("GET", healed.url + "/api/v1/auth/jwks").json() == jwks
    session = browser.get("/api/v1/auth/session")
    assert session.status == 200 and session.json()["user"]["email"] == email
    token = browser.get("/api/v1/auth/token")
    assert token.status == 200 and verifies(token.json()["accessToken"], jwks)
    assert verifies(pair["accessToken"], call("GET", healed.url + JWKS).json())  # resource servers still verify
    assert call("GET", healed.url + "/healthz").status == 200
    ready = call("GET", healed.url + "/readyz")
    assert ready.status == 503 and ready.json()["checks"]["database"]["status"] == "down"
    assert ready.json()["checks"]["redis"]["status"] == "up"

    # The log: one warning line with the cause per refused request, no stack trace, no 500.
    time.sleep(0.3)
    lines = healed.new_lines(log_start)
    assert lines.count("database unavailable, answered 503") >= 4, lines
    assert no_tracebacks(lines), lines

    # Healed: the next requests work again, in the same process (no restart).
    pid = healed.server.process.pid
    healed.db.heal()
    healed.wait_until_ready(10)
    assert login(healed, email).status == 200
    assert call("GET", healed.url + "/api/v1/auth/me", headers=bearer).status == 200
    assert healed.server.process.pid == pid and healed.server.process.poll() is None


def test_database_hung(healed, signed_in):
    """The database accepts connections and never answers: every request that needs it answers 503
    within seconds (connect timeout, statement deadline), none waits for the proxy to give up."""
    email, browser, pair, jwks = signed_in
    log_start = len(healed.log())
    healed.db.hang()

    replies = [login(healed, email) for _ in range(3)]
    for reply in replies:
        assert unavailable(reply)
        assert reply.seconds < HUNG_BOUND_SECONDS, [r.seconds for r in replies]
    page = browser.get("/account/sessions")
    assert unavailable(page, api=False) and page.seconds < HUNG_BOUND_SECONDS

    started = time.monotonic()
    assert call("GET", healed.url + JWKS).json() == jwks
    assert browser.get("/api/v1/auth/session").status == 200
    assert browser.get("/api/v1/auth/token").status == 200
    assert time.monotonic() - started < HUNG_BOUND_SECONDS
    ready = call("GET", healed.url + "/readyz")
    assert ready.status == 503 and ready.seconds < 4 and ready.json()["checks"]["database"]["status"] == "down"

    lines = healed.new_lines(log_start)
    assert "did not answer within" in lines or "timeout" in lines.lower(), lines
    assert no_tracebacks(lines), lines

    healed.db.heal()
    healed.wait_until_ready(10)
    assert login(healed, email).status == 200


def test_statement_timeout_is_sent_to_the_server(faulty):
    """The server-side half: the server's statement_timeout is the one the web process was given
    (a startup option), so a slow statement is cancelled by PostgreSQL itself and the connection stays
    usable. Read through a process configured like the server's workers."""
    env = {**faulty.env, "DATABASE_URL": faulty.direct_db_url}
    code = ("import django; django.setup(); from django.db import connection; c = connection.cursor();"
            "c.execute('SHOW statement_timeout'); print(c.fetchone()[0])")
    done = subprocess.run([PYTHON, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in (f"{STATEMENT_TIMEOUT_MS}ms", f"{STATEMENT_TIMEOUT_MS / 1000:g}s"), done.stdout

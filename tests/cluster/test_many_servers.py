"""Two server processes (config.serve: granian) of one deployment, one database, one Redis (issue 15, "Many servers"): what
one server does, the other knows at the next request. A logout or revocation on A is refused by B
(bearer and cookie cache alike), rate limits and lockouts count across both, and a key rotation signs on
both within a second."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from tests.cluster.conftest import (LOCKOUT_FAILURES, PASSWORD, Users, bearer, browser_on, fresh_ip, login,
                                    same_browser_on, server_env, start_nodes)
from tests.e2e.conftest import run
from tests.support.tokens import parts

ME, SESSION, TOKEN = "/api/v1/auth/me", "/api/v1/auth/session", "/api/v1/auth/token"


@pytest.fixture(scope="module")
def deployment(cluster_database, tmp_path_factory):
    env = server_env(cluster_database, tmp_path_factory.mktemp("cluster-data"))
    run(["migrate", "--noinput"], env=env, timeout=180)
    a, b = start_nodes(["node-a", "node-b"], env=env, logdir=tmp_path_factory.mktemp("cluster-logs"))
    try:
        yield a, b, env, Users(env)
    finally:
        a.server.stop()
        b.server.stop()


def test_logout_on_a_is_refused_by_b_for_bearer_tokens(deployment):
    a, b, _, user = deployment
    ip = fresh_ip()
    pair = login(a, user(), ip=ip).json()
    assert b.call("GET", ME, headers=bearer(pair["accessToken"], ip)).status == 200  # B knows it (and caches)

    assert a.call("POST", "/api/v1/auth/logout", headers=bearer(pair["accessToken"], ip)).status == 204
    refused = b.call("GET", ME, headers=bearer(pair["accessToken"], ip))
    assert refused.status == 401, refused.text
    assert b.call("POST", "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]},
                  headers={"X-Forwarded-For": ip}).status == 401


def test_revocation_on_a_is_refused_by_b_from_the_cookie_cache(deployment):
    a, b, _, user = deployment
    email = user()
    browser = browser_on(a, email)
    on_b = same_browser_on(browser, b)
    # B answers the snapshot A issued, without the database (the hot path).
    answer = on_b.get(SESSION, keep=False)
    assert answer.status == 200 and answer.json()["user"]["email"] == email
    assert on_b.get(TOKEN, keep=False).status == 200
    session_id = answer.json()["session"]["id"]

    # The same user revokes the browser's session from a phone signed in on A.
    ip = fresh_ip()
    phone = login(a, email, ip=ip).json()
    assert a.call("DELETE", f"/api/v1/auth/sessions/{session_id}",
                  headers=bearer(phone["accessToken"], ip)).status == 204

    # The snapshot on B is still "fresh" by its own clock; B refuses it at once all the same.
    assert on_b.get(SESSION, keep=False).status == 401
    assert on_b.get(TOKEN, keep=False).status == 401
    assert same_browser_on(browser, a).get(SESSION, keep=False).status == 401


def test_logout_of_a_browser_on_b_is_refused_by_a(deployment):
    a, b, _, user = deployment
    browser = browser_on(a, user())
    copied = dict(browser.jar)  # a copy of the cookies taken before the logout (a stolen cookie)
    on_b = same_browser_on(browser, b)
    assert on_b.post_form("/logout", {}).status in (302, 303)
    thief = same_browser_on(browser, a)
    thief.jar = copied
    assert thief.get(SESSION, keep=False).status == 401
    assert thief.get(TOKEN, keep=False).status == 401


def test_the_login_rate_limit_counts_across_servers(deployment):
    a, b, _, user = deployment
    email, ip = user(), fresh_ip()
    statuses = [login(node, email, ip=ip).status for node in (a, b, a, b, a)]  # login: 5 a minute per IP
    assert statuses == [200] * 5
    refused = login(b, email, ip=ip)
    assert refused.status == 429 and refused.code == "rate_limited" and refused.headers.get("retry-after")
    assert login(a, email, ip=ip).status == 429


def test_a_lockout_counts_failures_on_both_servers(deployment):
    a, b, _, user = deployment
    email, ip = user(), fresh_ip()
    for node in [(a, b)[i % 2] for i in range(LOCKOUT_FAILURES - 1)]:  # wrong, alternating
        assert login(node, email, ip=ip, password="wrong-" + PASSWORD).code == "invalid_credentials"
    last = (a, b)[(LOCKOUT_FAILURES - 1) % 2]  # the failure that reaches the limit locks, on either server
    assert login(last, email, ip=ip, password="wrong-" + PASSWORD).code == "account_locked"
    for node in (a, b):  # now the right password is refused on either
        locked = login(node, email, ip=ip)
        assert locked.status == 429 and locked.code == "account_locked", locked.text
    assert login(b, email, ip=fresh_ip()).status == 200  # the pair (account, IP) is locked, not the account


def test_a_key_rotation_signs_on_every_server_within_a_second(deployment):
    a, b, env, user = deployment
    browser = browser_on(a, user())
    on = {"a": same_browser_on(browser, a), "b": same_browser_on(browser, b)}

    def kids() -> dict:
        found = {}
        for name, node_browser in on.items():
            reply = node_browser.get(TOKEN, keep=False)
            assert reply.status == 200, reply.text
            found[name] = parts(reply.json()["accessToken"])[0]["kid"]
        return found

    before = kids()
    assert before["a"] == before["b"]
    out = json.loads(run(["rotate_signing_key"], env=env).strip().splitlines()[-1])
    rotated, started = out["kid"], datetime.fromisoformat(out["activatesAt"]).timestamp()  # same machine clock
    assert rotated != before["a"]

    def since() -> float:  # seconds since the rotation began (its transaction commits just after)
        return time.time() - started

    while (seen := kids()) != {"a": rotated, "b": rotated}:
        assert since() < 1.0, f"still signing with {seen} {since():.2f} s after the rotation"
        time.sleep(0.05)
    print(f"both servers sign with the new key {since():.2f} s after the rotation began")
    # Both publish the new key, and the old one stays published for the tokens it signed.
    for node in (a, b):
        published = {key["kid"] for key in node.call("GET", "/.well-known/jwks.json").json()["keys"]}
        assert {rotated, before["a"]} <= published

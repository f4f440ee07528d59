"""Many servers of one deployment (issue 15): real server processes (config.serve: granian) on one PostgreSQL database and one
Redis, and one of them behind PgBouncer in transaction mode.

Each module gets a database of its own, created next to the test database, migrated directly and dropped
at the end. The servers run in the production posture (DEBUG false, plain HTTP for the test, one trusted
proxy so each test can be a client of its own address) with the same SECRET_KEY, as the nodes of one
deployment do. Needs DATABASE_URL (PostgreSQL) and REDIS_URL; skipped otherwise. Marked ``cluster``:
``pytest -m cluster`` runs only these, ``-m "not cluster"`` leaves them out.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import REPO, base_env, run, start_server
from tests.support.databases import scratch_database, services_or_skip
from tests.support.http_client import Browser, call

PASSWORD = "cluster-Correct-Horse-42"
LOCKOUT_FAILURES = 3


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: several real server processes on one database and one Redis")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


def needs_services() -> tuple[str, str]:
    return services_or_skip("cluster tests")


@pytest.fixture(scope="module")
def cluster_database():
    """A database URL of the module's own (created here, dropped at the end)."""
    url, _ = needs_services()
    with scratch_database(url, "cluster") as database:
        yield database


def server_env(database_url: str, data_dir, **extra) -> dict:
    _, redis_url = needs_services()
    return base_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECURE_SSL_REDIRECT="false",
                    SECRET_KEY="cluster-" + uuid.uuid5(uuid.NAMESPACE_URL, database_url).hex,
                    DATABASE_URL=database_url, REDIS_URL=redis_url, MANA_DATA_DIR=str(data_dir),
                    LOG_LEVEL="WARNING", EMAIL_URL="consolemail://", AUTH_TRUSTED_PROXY_COUNT="1",
                    ALLOWED_HOSTS="127.0.0.1,localhost", AUTH_LOCKOUT_FAILURES=str(LOCKOUT_FAILURES),
                    AUTH_LOGIN_DELAY_BASE_SECONDS="0", **extra)


USER = """
from django.utils import timezone
from accounts.models import User
for email in {emails!r}:
    User.objects.create_user(email, {password!r}, name="Cluster", email_verified_at=timezone.now())
"""


@dataclass
class Node:
    """One server of the deployment."""

    name: str
    url: str
    server: object

    def call(self, method: str, path: str, **kwargs):
        return call(method, self.url + path, **kwargs)

    def log(self) -> str:
        return self.server.log.read_text()


class Users:
    """Verified users made in the database directly (manage.py shell), a batch at a time."""

    def __init__(self, env: dict):
        self.env, self.free = env, []

    def __call__(self) -> str:
        if not self.free:
            emails = [f"cluster-{uuid.uuid4().hex[:10]}@example.com" for _ in range(8)]
            run(["shell", "-c", USER.format(emails=emails, password=PASSWORD)], env=self.env)
            self.free.extend(emails)
        return self.free.pop()


def fresh_ip() -> str:
    """A client address of its own: the per-IP limits of one test do not spend another's."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def login(node: Node, email: str, *, ip: str, password: str = PASSWORD):
    return node.call("POST", "/api/v1/auth/login", json={"email": email, "password": password},
                     headers={"X-Forwarded-For": ip})


def bearer(token: str, ip: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if ip:
        headers["X-Forwarded-For"] = ip
    return headers


def browser_on(node: Node, email: str) -> Browser:
    """A browser signed in on ``node`` (the form) with a fresh cookie-cache snapshot."""
    browser = Browser(node.url, ip=fresh_ip())
    browser.page_login(email, PASSWORD)
    assert browser.get("/api/v1/auth/session").status == 200
    assert browser.cache_cookie(), "no cookie-cache snapshot was issued"
    return browser


def same_browser_on(browser: Browser, node: Node) -> Browser:
    """The same cookies, sent to another node (a balancer without sticky sessions)."""
    other = Browser(node.url, ip=browser.ip)
    other.jar = dict(browser.jar)
    return other


def start_nodes(names, *, env: dict, logdir) -> list[Node]:
    nodes = []
    try:
        for name in names:
            server = start_server(name, "config.wsgi", cwd=REPO, env=env, logdir=logdir, ready_path="/healthz")
            nodes.append(Node(name=name, url=server.url, server=server))
    except BaseException:
        for node in nodes:
            node.server.stop()
        raise
    return nodes

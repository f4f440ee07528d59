"""Fault tests: a real server process (config.serve: granian) whose PostgreSQL and Redis sit behind TCP forwarders
(tests/support/forwarder.py) that the tests cut, hang and heal (issue 17).

The provider runs in the production posture (DEBUG false; plain HTTP for the test), on a database of its
own created next to the test database and migrated directly (not through the forwarder), with short
database timeouts so each test stays within seconds. Needs DATABASE_URL (PostgreSQL) and REDIS_URL;
skipped otherwise. Marked ``faults``: ``pytest -m faults`` runs only these, ``-m "not faults"`` skips them.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.conftest import REPO, base_env, run, start_server
from tests.support.databases import scratch_database, services_or_skip
from tests.support.forwarder import Forwarder
from tests.support.http_client import Browser, call

PASSWORD = "faults-Correct-Horse-42"
STATEMENT_TIMEOUT_MS = 1500
CONNECT_TIMEOUT = 2


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: cuts and hangs PostgreSQL and Redis under a real server process")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


def _needs_services():
    return services_or_skip("fault tests")


@pytest.fixture(scope="session")
def fault_database():
    """(direct URL, forwarded URL, Forwarder): a database of the run's own, dropped at the end."""
    url, _ = _needs_services()
    with scratch_database(url, "faults") as direct:
        parts = urlsplit(direct)
        forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
        netloc = parts.netloc.rsplit("@", 1)
        userinfo = f"{netloc[0]}@" if len(netloc) == 2 else ""
        try:
            yield direct, urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{forwarder.port}")), forwarder
        finally:
            forwarder.close()


@pytest.fixture(scope="session")
def redis_forwarder():
    _, redis_url = _needs_services()
    parts = urlsplit(redis_url)
    forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield forwarder, urlunsplit(parts._replace(netloc=f"127.0.0.1:{forwarder.port}")), redis_url
    forwarder.close()


@dataclass
class Faulty:
    """The server and the two forwarders."""

    url: str
    server: object
    db: Forwarder
    redis: Forwarder
    direct_db_url: str
    direct_redis_url: str
    env: dict
    users: list = field(default_factory=list)

    def log(self) -> str:
        return self.server.log.read_text()

    def heal(self) -> None:
        self.db.heal()
        self.redis.heal()

    def wait_until_ready(self, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if call("GET", self.url + "/readyz").status == 200:
                return
            time.sleep(0.2)
        raise AssertionError("not ready again after healing: " + call("GET", self.url + "/readyz").text)

    def user(self) -> str:
        """A verified user of its own, made directly in the database (manage.py shell, not through the
        forwarder), a batch at a time."""
        if not self.users:
            emails = [f"faults-{uuid.uuid4().hex[:10]}@example.com" for _ in range(8)]
            run(["shell", "-c", "".join(USER.format(email=email, password=PASSWORD) for email in emails)],
                env={**self.env, "DATABASE_URL": self.direct_db_url, "REDIS_URL": self.direct_redis_url})
            self.users.extend(emails)
        return self.users.pop()

    def browser(self, email: str) -> Browser:
        browser = Browser(self.url, ip=fresh_ip())
        browser.page_login(email, PASSWORD)
        assert browser.get("/api/v1/auth/session").status == 200  # the row, and a fresh snapshot
        assert browser.cache_cookie(), "no cookie-cache snapshot was issued"
        return browser

    def new_lines(self, since: int) -> str:
        return self.log()[since:]


USER = """
from django.utils import timezone
from accounts.models import User
User.objects.create_user({email!r}, {password!r}, name="Faults", email_verified_at=timezone.now())
"""


@pytest.fixture(scope="session")
def faulty(fault_database, redis_forwarder, tmp_path_factory):
    direct, forwarded, db = fault_database
    redis, redis_url, direct_redis = redis_forwarder
    data_dir = tmp_path_factory.mktemp("faults-data")
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECURE_SSL_REDIRECT="false",
                   SECRET_KEY="faults-" + uuid.uuid4().hex, DATABASE_URL=forwarded, REDIS_URL=redis_url,
                   MANA_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", EMAIL_URL="consolemail://",
                   AUTH_DB_STATEMENT_TIMEOUT_MS=str(STATEMENT_TIMEOUT_MS),
                   AUTH_DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT), AUTH_TRUSTED_PROXY_COUNT="1",
                   ALLOWED_HOSTS="127.0.0.1,localhost")
    run(["migrate", "--noinput"], env={**env, "DATABASE_URL": direct, "REDIS_URL": direct_redis}, timeout=180)
    logs = tmp_path_factory.mktemp("faults-logs")
    server = start_server("faulty", "config.wsgi", cwd=REPO, env=env, logdir=logs, ready_path="/healthz")
    try:
        yield Faulty(url=server.url, server=server, db=db, redis=redis, direct_db_url=direct,
                     direct_redis_url=direct_redis, env=env)
    finally:
        server.stop()


@pytest.fixture
def healed(faulty):
    """Each test starts and ends with both services reachable and the server ready."""
    faulty.heal()
    faulty.wait_until_ready()
    yield faulty
    faulty.heal()


def fresh_ip() -> str:
    """A client address of its own (the server trusts one proxy): the per-IP rate limits of one test do
    not spend another's."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def no_tracebacks(text: str) -> bool:
    return "Traceback" not in text and not re.search(r"^\s+File \"", text, re.M)

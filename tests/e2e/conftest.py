"""End-to-end: the real provider and the example resource service, each in its own process.

The provider runs ``manage.py migrate`` and then the production web server (``python -m config.serve``:
granian) on a free port with DEBUG=true, on a temporary SQLite file, or, when DATABASE_URL points at
PostgreSQL, on a database of its own created next to the test database and dropped at the end. The example
(examples/resource_service) runs under the same server with MANA_AUTH pointing at the provider. Every process is started in its own process group
and killed (group-wide) in a finally block, whatever happens in the tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mana_auth import _http
from mana_auth.errors import TransportError
from tests.support.databases import is_postgres, scratch_database

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
STARTUP_SECONDS = 40
USER_PASSWORD = "e2e-Correct-Horse-42"
# granian's access log line: [time] address - "METHOD path HTTP/1.1" status milliseconds
ACCESS_LINE = re.compile(r'^\[[^]]+\] \S+ - "[A-Z]+ \S+ HTTP/[0-9.]+" \d{3} ')

# Variables of the test run that must not leak into the child processes.
SCRUB = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "AUTH_ISSUER", "AUTH_AUDIENCE",
         "MANA_DATA_DIR", "MANA_AUTH_DEV_BYPASS", "EMAIL_URL", "PYTEST_CURRENT_TEST")


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: starts the provider and the example service as real processes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log: Path
    stopped: bool = field(default=False)

    def access_lines(self) -> list[str]:
        """The server's access log (started with ``access_log=True``): its lines in the server's output."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if ACCESS_LINE.match(line)]

    def stop(self) -> None:
        """SIGTERM to the whole process group (the server's main process and workers), SIGKILL if it lingers."""
        if self.stopped:
            return
        self.stopped = True
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # stray workers of the group, if the master went first
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def describe(self) -> str:
        return f"{self.name} log:\n{self.log.read_text()[-4000:] if self.log.exists() else '(none)'}"


def start_server(name: str, app: str, *, cwd: Path, env: dict, logdir: Path, ready_path: str,
                 access_log: bool = False, port: int | None = None, host: str = "127.0.0.1", workers: int = 1,
                 threads: int = 4) -> Server:
    """``app``: the WSGI module (its ``application``), importable from ``cwd``. The server is the
    production one, ``python -m config.serve`` (granian), one worker with four threads unless told otherwise.
    ``port``/``host``: when the server must know its own URL beforehand (AUTH_PUBLIC_URL)."""
    port = port or free_port()
    command = [PYTHON, "-m", "config.serve", "--app", f"{app}:application", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--threads", str(threads)]
    if access_log:
        command.append("--access-log")
    env = {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(cwd), str(REPO)])),
           "WEB_GRACEFUL_SECONDS": env.get("WEB_GRACEFUL_SECONDS", "2"),
           # Its own metric files: the server empties the directory when it starts, and the servers of a
           # test may share a MANA_DATA_DIR.
           "PROMETHEUS_MULTIPROC_DIR": str(logdir / f"{name}-prometheus")}
    return start_process(name, command, url=f"http://{host}:{port}", cwd=cwd, env=env, logdir=logdir,
                         ready_path=ready_path)


def start_process(name: str, command: list[str], *, url: str, cwd: Path, env: dict, logdir: Path,
                  ready_path: str) -> Server:
    """Start a server's ``command`` in a process group of its own, its output in ``logdir/<name>.log``,
    and wait until ``url + ready_path`` answers (any status); fail the test if it exits or stays silent."""
    log = logdir / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name=name, url=url, process=process, log=log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            server.stop()
            pytest.fail(f"{name} exited with {process.returncode}\n{server.describe()}")
        try:
            _http.send("GET", server.url + ready_path, timeout=2)
            return server
        except TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"{name} did not answer within {STARTUP_SECONDS}s\n{server.describe()}")
        time.sleep(0.2)


def run(args: list[str], *, env: dict, timeout: float = 120) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"manage.py {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def provider_database(tmp_path_factory):
    """A database URL for the provider process: its own PostgreSQL database when the test run uses
    PostgreSQL (created here, dropped at the end), else a temporary SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not is_postgres(url):
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'provider.sqlite3'}"
        return
    with scratch_database(url, "e2e") as database:
        yield database


@dataclass
class Provider:
    server: Server
    env: dict

    @property
    def url(self) -> str:
        return self.server.url

    def manage(self, *args: str) -> str:
        return run(list(args), env=self.env)

    def create_service_account(self, name: str) -> dict:
        lines = self.manage("create_service_account", name).splitlines()
        assert len(lines) == 1, lines
        return json.loads(lines[0])


PROVIDER_SETUP = """
import json, time, uuid
from django.test import override_settings
from django.utils import timezone
from accounts.models import User
from identity.services.tokens import access_token_issue
now = timezone.now()
user = User.objects.create_user({user!r}, {password!r}, name="E2E User", email_verified_at=now)
admin = User.objects.create_user({admin!r}, {password!r}, name="E2E Admin", role="admin", email_verified_at=now)
sid = uuid.uuid4()
expired = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 3600).token
with override_settings(AUTH_AUDIENCE="some-other-service"):
    foreign = access_token_issue(user=user, session_id=sid).token
print(json.dumps({{"user": str(user.pk), "admin": str(admin.pk), "expired": expired, "foreignAudience": foreign}}))
"""


@pytest.fixture(scope="module")
def e2e_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="module")
def provider(provider_database, e2e_logs, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e-provider-data")
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true", DATABASE_URL=provider_database,
                   MANA_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", EMAIL_URL="consolemail://")
    # Note: the provider's own rate limits apply (login: 5 a minute per IP); the suite logs in 4 times.
    run(["migrate", "--noinput"], env=env, timeout=180)
    server = start_server("provider", "config.wsgi", cwd=REPO, env=env, logdir=e2e_logs,
                            ready_path="/api/v1/auth/jwks", access_log=True)
    try:
        yield Provider(server=server, env=env)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(provider):
    """Accounts on the provider: a verified user, an admin, and tokens minted by the provider's own key
    but expired / for another audience (through manage.py shell, as an operator could)."""
    user_email, admin_email = f"e2e-{uuid.uuid4().hex[:8]}@example.com", f"e2e-admin-{uuid.uuid4().hex[:8]}@example.com"
    out = provider.manage("shell", "-c", PROVIDER_SETUP.format(user=user_email, admin=admin_email,
                                                               password=USER_PASSWORD))
    minted = json.loads(out.strip().splitlines()[-1])
    return {"user_email": user_email, "admin_email": admin_email, "password": USER_PASSWORD, **minted}


@pytest.fixture(scope="module")
def example(provider, e2e_logs):
    """examples/resource_service, configured only through its environment, with its own service
    account for the revocation check."""
    creds = provider.create_service_account("example-resource-service")
    env = base_env(DJANGO_SETTINGS_MODULE="resource_service.settings", MANA_AUTH_URL=provider.url,
                   MANA_AUTH_CLIENT_ID=creds["clientId"], MANA_AUTH_CLIENT_SECRET=creds["clientSecret"])
    server = start_server("example", "resource_service.wsgi", cwd=REPO / "examples", env=env, logdir=e2e_logs,
                            ready_path="/hello")
    try:
        yield server
    finally:
        server.stop()

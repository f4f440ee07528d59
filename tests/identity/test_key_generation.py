"""Every server process follows a rotation or revocation made elsewhere (another process, e.g.
``manage.py rotate_signing_key``) within a second: the key set's generation (a Redis mark, or without
Redis the key table itself) is checked at most every KEY_GENERATION_CHECK_SECONDS (0.5 s) per process."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from identity.models import SigningKey
from identity.services import keys
from service_accounts.services import service_account_create
from sessions_app.services import session_create
from tests.identity.test_tokens import parts

# The marks and the generation go out after real commits (transaction.on_commit).
pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


INTERVAL = keys.app_settings.KEY_GENERATION_CHECK_SECONDS


class Clock:
    """The monotonic clock of identity.services.keys, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(keys, "time", fake)
    return fake


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    """Where the generation is read: the key table (no Redis) or the Redis mark."""
    if request.param == "redis":
        if not django_settings.REDIS_URL:
            pytest.skip("needs Redis (set REDIS_URL)")
    else:
        settings.REDIS_URL = ""
    return request.param


@contextmanager
def elsewhere(monkeypatch):
    """Run a key service as another process would: this process's caches are not told."""
    with monkeypatch.context() as m:
        m.setattr(keys, "_cache_clear", lambda: None)
        yield


def hung_redis_url():
    """A listener that accepts connections and never answers: a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return f"redis://127.0.0.1:{server.getsockname()[1]}/0", server


# --- in one process, with the clock in hand ------------------------------------------------------------

def test_a_rotation_elsewhere_reaches_this_process_within_the_interval(backend, clock, monkeypatch, db):
    old = keys.signing_key_current().kid
    assert keys.verification_key(old) is not None
    assert [k["kid"] for k in json.loads(keys.jwks_json())["keys"]] == [old]
    with elsewhere(monkeypatch):
        new = keys.signing_key_rotate()

    clock.now += INTERVAL * 0.9
    assert keys.signing_key_current().kid == old  # not asked yet: at most the interval
    clock.now += INTERVAL * 0.2
    assert keys.signing_key_current().kid == new.kid
    assert [k["kid"] for k in json.loads(keys.jwks_json())["keys"]] == [old, new.kid]
    assert keys.verification_key(new.kid) is not None


def test_a_revocation_elsewhere_ends_verification_and_publication_within_the_interval(backend, clock, monkeypatch,
                                                                                      db):
    old = keys.signing_key_current().kid
    assert keys.verification_key(old) is not None
    keys.jwks_json()
    with elsewhere(monkeypatch):
        result = keys.signing_key_revoke(kids=[old])

    clock.now += INTERVAL * 0.5
    assert keys.verification_key(old) is not None  # the bound, not better: this process has not asked
    clock.now += INTERVAL * 0.6
    assert keys.verification_key(old) is None
    assert [k["kid"] for k in json.loads(keys.jwks_json())["keys"]] == [result.signer.kid]
    assert keys.signing_key_current().kid == result.signer.kid


def test_without_redis_the_check_is_one_small_query_per_interval(clock, settings, db, django_assert_num_queries):
    settings.REDIS_URL = ""
    kid = keys.signing_key_current().kid
    keys.verification_key(kid)
    keys.jwks_json()
    with django_assert_num_queries(0):  # a fill counts as a check
        for _ in range(50):
            keys.signing_key_current(), keys.verification_key(kid), keys.jwks_json()
    clock.now += INTERVAL * 1.01
    with django_assert_num_queries(1) as queries:  # nothing changed: the generation only
        for _ in range(50):
            keys.signing_key_current(), keys.verification_key(kid)
    assert "COUNT" in queries.captured_queries[0]["sql"].upper()


def test_a_fill_reads_the_generation_before_the_keys(clock, settings, db, django_assert_max_num_queries):
    """Read after the rows, a generation could name a change the rows missed; read before, the worst case
    is one reload too many."""
    settings.REDIS_URL = ""
    keys.signing_key_current()
    keys._cache_clear()
    with django_assert_max_num_queries(10) as queries:
        keys.signing_key_current()
    statements = [q["sql"].upper() for q in queries.captured_queries if "SIGNINGKEY" in q["sql"].upper()]
    assert "COUNT" in statements[0] and len(statements) >= 2


@pytest.mark.redis
def test_with_redis_the_check_is_one_get_and_no_query(clock, db, monkeypatch, django_assert_num_queries):
    kid = keys.signing_key_current().kid
    keys.verification_key(kid)
    client = keys._redis()
    commands = []
    original = client.execute_command
    monkeypatch.setattr(client, "execute_command",
                        lambda *args, **kw: commands.append(args[0]) or original(*args, **kw))
    with django_assert_num_queries(0):
        keys.signing_key_current(), keys.verification_key(kid)
        clock.now += INTERVAL * 1.01
        for _ in range(20):
            keys.signing_key_current(), keys.verification_key(kid)
    assert commands == ["GET"]


@pytest.mark.redis
def test_a_change_bumps_the_redis_mark_after_commit(db):
    client = keys._redis()
    before = int(client.get(keys.GENERATION_KEY) or 0)
    keys.signing_key_rotate()
    assert int(client.get(keys.GENERATION_KEY)) == before + 1


def test_a_hung_redis_falls_back_to_the_database(clock, settings, monkeypatch, db):
    """Redis accepts and never answers: no error reaches the caller, keys come from the database at most
    once per interval, and a change made meanwhile is still seen within it."""
    old = keys.signing_key_current().kid  # filled before Redis hangs
    url, server = hung_redis_url()
    try:
        settings.REDIS_URL = url
        with elsewhere(monkeypatch):
            started = time.monotonic()
            new = keys.signing_key_rotate()  # its mark cannot be written: logged, not raised
            assert time.monotonic() - started < 2
        clock.now += INTERVAL * 1.01
        started = time.monotonic()
        assert keys.signing_key_current().kid == new.kid
        assert time.monotonic() - started < 2  # one short timeout, not a hang
        assert keys.verification_key(old) is not None and keys.verification_key(new.kid) is not None
        clock.now += INTERVAL * 1.01  # the next check, within the pause after the failure: the table only
        started = time.monotonic()
        assert keys.signing_key_current().kid == new.kid
        assert time.monotonic() - started < keys.app_settings.GENERATION_REDIS_TIMEOUT
    finally:
        server.close()


# --- real server processes ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _env(with_redis: bool, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(DATABASE_URL=_database_url(), DEBUG="true", ALLOWED_HOSTS="127.0.0.1,localhost",
               SECRET_KEY=django_settings.SECRET_KEY, AUTH_KEY_ENCRYPTION_KEY=django_settings.AUTH_KEY_ENCRYPTION_KEY,
               AUTH_RATE_LIMIT_ENABLED="false", MANA_DATA_DIR=str(tmp_path), LOG_LEVEL="WARNING")
    if with_redis:
        env["REDIS_URL"] = django_settings.REDIS_URL
    return env


def _get(url, token=None, data=None):
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as answer:
        return answer.code, None


class Server:
    def __init__(self, env):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/python"), "-m", "config.serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--threads", "2"],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="mca-keygen-metrics-")},
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(self.base + "/.well-known/jwks.json")[0] == 200:
                    return
            except OSError:
                pass
            assert self.process.poll() is None, "the server exited"
            time.sleep(0.1)
        raise AssertionError("the server did not start")

    def jwks(self) -> set:
        return {k["kid"] for k in _get(self.base + "/.well-known/jwks.json")[1]["keys"]}

    def signing_kid(self, credentials) -> str:
        status, body = _get(self.base + "/api/v1/auth/service-token", data=credentials)
        assert status == 200, status
        return parts(body["accessToken"])[0]["kid"]

    def accepts(self, token) -> bool:
        return _get(self.base + "/api/v1/auth/me", token=token)[0] == 200

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def _command(env, *args):
    """Run manage.py rotate_signing_key in a process of its own; yields its JSON and the moment it printed
    it (after the commit and the generation mark), while the process is still exiting."""
    process = subprocess.Popen([sys.executable, "manage.py", "rotate_signing_key", *args], cwd=ROOT,
                               env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        printed = time.monotonic()
        assert line, process.stderr.read()
        yield json.loads(line), printed
    finally:
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


@contextmanager
def _watch(servers, changed, limit=10.0):
    """Poll every server from a thread of its own, every 10 ms, from now on (so each process is busy and
    its last check can be any time in the past second); yields {server: monotonic time of the first
    answer that showed ``changed``}, complete when the block ends."""
    seen, started = {}, time.monotonic()

    def poll(server):
        while time.monotonic() - started < limit:
            if changed(server):
                seen[server] = time.monotonic()
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=poll, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        for thread in threads:
            thread.join()
    assert len(seen) == len(servers), "not every server process followed"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_redis", [False, True], ids=["database", "redis"])
def test_server_processes_follow_rotate_and_revoke_from_manage_py_within_a_second(with_redis, user, tmp_path,
                                                                                  settings):
    if with_redis and not django_settings.REDIS_URL:
        pytest.skip("needs Redis (set REDIS_URL)")
    env = _env(with_redis, tmp_path)
    if not with_redis:
        settings.REDIS_URL = ""  # this process is one of the deployment's processes too
    account = service_account_create(name="probe")
    credentials = {"clientId": account.client.client_id, "clientSecret": account.client_secret}
    first_token = session_create(user=user).access_token
    first = SigningKey.objects.get().kid
    servers = [Server(env), Server(env)]
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:  # warm every cache: signer, public keys, the JWKS document
            assert server.signing_kid(credentials) == first and server.accepts(first_token)
            assert server.jwks() == {first}

        # The JWKS (the fast path: no database, no DRF) is the cheapest probe of the caches; they are all
        # dropped at the same moment.
        with _watch(servers, lambda s: s.jwks() != {first}) as seen:
            with _command(env) as (rotated, printed):
                pass
        took = max(seen.values()) - printed
        assert took < 1.0, took  # the bar: the check interval (0.5 s) plus a request on a busy machine
        assert all(server.jwks() == {first, rotated["kid"]} for server in servers)
        assert all(server.signing_kid(credentials) == rotated["kid"] for server in servers)
        second_token = session_create(user=user).access_token
        assert parts(second_token)[0]["kid"] == rotated["kid"]
        assert all(server.accepts(first_token) and server.accepts(second_token) for server in servers)

        with _watch(servers, lambda s: rotated["kid"] not in s.jwks()) as seen:
            with _command(env, "--revoke", rotated["kid"]) as (revoked, printed):
                pass
        took = max(seen.values()) - printed
        assert took < 1.0, took
        assert revoked["revoked"] == [rotated["kid"]]
        assert not any(server.accepts(second_token) for server in servers)
        assert all(server.signing_kid(credentials) == revoked["kid"] for server in servers)
        assert all(server.accepts(first_token) for server in servers)  # the retired, unrevoked key still verifies
    finally:
        for server in servers:
            server.stop()

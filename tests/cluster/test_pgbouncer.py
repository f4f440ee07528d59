"""The provider behind Debian's PgBouncer in transaction mode (issue 15): every transaction may run on
another server connection, so nothing may outlive a transaction (session advisory locks, server-side
cursors held across transactions, prepared statements, SET). A real server process (config.serve) talks to PostgreSQL
only through a PgBouncer of its own (pool_mode = transaction, 2 server connections used in turn:
server_round_robin, so consecutive transactions do change connections), and drives sign-in, refresh (concurrent refreshes with
one token get one pair), GET me and the sessions list, logout, the audit seal and audit_verify through it.
Without AUTH_DB_TRANSACTION_POOLER, audit_verify fails here (``portal "_django_curs_..." does not exist``:
Django's WITH HOLD cursor, FETCHed on the other server connection). Skipped, with the reason, when
/usr/sbin/pgbouncer is absent."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.cluster.conftest import Users, bearer, fresh_ip, login, server_env, start_nodes
from tests.e2e.conftest import free_port, run

PGBOUNCER = Path("/usr/sbin/pgbouncer")


def pgbouncer_version() -> tuple[int, ...]:
    out = subprocess.run([str(PGBOUNCER), "--version"], capture_output=True, text=True, timeout=10).stdout
    return tuple(int(n) for n in re.search(r"PgBouncer (\d+)\.(\d+)", out).groups())


@pytest.fixture(scope="module")
def pgbouncer(cluster_database, tmp_path_factory):
    """A PgBouncer in transaction mode in front of the module's database: its URL."""
    if not PGBOUNCER.exists() or not shutil.which(str(PGBOUNCER)):
        pytest.skip(f"{PGBOUNCER} is not installed (Debian: apt-get install pgbouncer)")
    parts = urlsplit(cluster_database)
    name, user = parts.path.lstrip("/"), parts.username or "postgres"
    # Its own directory directly under /tmp: pytest's tmp folders are private to the user running the tests.
    home = Path(tempfile.mkdtemp(prefix="mana-pgbouncer-"))
    port = free_port()
    as_user = ""
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it drops to an unprivileged user
        as_user = "user = nobody\n"
        home.chmod(0o777)
    (home / "users.txt").write_text(f'"{user}" ""\n')
    (home / "pgbouncer.ini").write_text(f"""
[databases]
{name} = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432} dbname={name}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home / 'users.txt'}
pool_mode = transaction
default_pool_size = 2
min_pool_size = 2
server_round_robin = 1
max_client_conn = 50
query_wait_timeout = 10
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {home / 'pgbouncer.log'}
pidfile = {home / 'pgbouncer.pid'}
{as_user}""")
    for file in home.iterdir():
        file.chmod(0o644)
    out = open(home / "stdout.log", "wb")  # closed in the finally block
    process = subprocess.Popen([str(PGBOUNCER), str(home / "pgbouncer.ini")], stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{port}"
                                    if "@" in parts.netloc else f"127.0.0.1:{port}"))
    try:
        import psycopg

        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("pgbouncer did not start:\n" + "".join(
                        f.read_text() for f in home.glob("*.log"))) from None
                time.sleep(0.1)
        yield url, home / "pgbouncer.log"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        out.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def pooled(cluster_database, pgbouncer, tmp_path_factory):
    """A server (and its jobs) reaching PostgreSQL only through PgBouncer."""
    url, log = pgbouncer
    env = server_env(url, tmp_path_factory.mktemp("pooled-data"), AUTH_DB_TRANSACTION_POOLER="true")
    run(["migrate", "--noinput"], env={**env, "DATABASE_URL": cluster_database}, timeout=180)  # directly
    (node,) = start_nodes(["pooled"], env=env, logdir=tmp_path_factory.mktemp("pooled-logs"))
    try:
        yield node, env, log
    finally:
        node.server.stop()


def test_the_pooler_is_in_transaction_mode_and_the_setting_disables_session_state(pooled):
    node, env, log = pooled
    out = run(["shell", "-c", "from django.db import connection as c; "
               "print(c.settings_dict.get('DISABLE_SERVER_SIDE_CURSORS'), "
               "c.settings_dict['OPTIONS'].get('prepare_threshold', 'unset'), "
               "'options' in c.settings_dict['OPTIONS'], c.connection is None)"], env=env)
    assert out.strip().splitlines()[-1].split() == ["True", "None", "False", "True"]
    # psycopg binds client-side under Django (ClientCursor), which never prepares: no PgBouncer version matters.
    assert pgbouncer_version() >= (1, 0)


def test_sign_in_refresh_logout_and_the_audit_trail_through_pgbouncer(pooled):
    node, env, log = pooled
    user, ip = Users(env), fresh_ip()
    email = user()
    pair = login(node, email, ip=ip).json()
    assert pair and pair["accessToken"], "login failed"
    for _ in range(6):  # more than psycopg's prepare threshold (5) of the same statements
        me = node.call("GET", "/api/v1/auth/me", headers=bearer(pair["accessToken"], ip))
        assert me.status == 200 and me.json()["email"] == email
        listed = node.call("GET", "/api/v1/auth/sessions/active", headers=bearer(pair["accessToken"], ip))
        assert listed.status == 200 and len(listed.json()["sessions"]) == 1
        pair = node.call("POST", "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]},
                         headers={"X-Forwarded-For": ip}).json()
        assert pair and pair["refreshToken"], "refresh failed"

    # Concurrent refreshes with one token: one pair, whichever server connection each ran on.
    def refresh(_):
        return node.call("POST", "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]},
                         headers={"X-Forwarded-For": ip})

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(refresh, range(6)))
    assert [r.status for r in replies] == [200] * 6, [r.text[:200] for r in replies]
    assert len({r.json()["refreshToken"] for r in replies}) == 1
    assert len({r.json()["accessToken"] for r in replies}) == 1
    pair = replies[0].json()

    assert node.call("POST", "/api/v1/auth/logout", headers=bearer(pair["accessToken"], ip)).status == 204
    assert node.call("GET", "/api/v1/auth/me", headers=bearer(pair["accessToken"], ip)).status == 401

    # The sealer and the verifier (jobs) through the pooler too: the seal's transaction-level advisory lock.
    run(["audit_seal"], env=env)
    verified = run(["audit_verify"], env=env)
    checked = re.search(r"audit chain OK: (\d+) rows", verified)
    assert checked and int(checked.group(1)) > 0, verified  # the logins and the logout, sealed and verified
    assert "Traceback" not in node.log()
    assert "refused the statement_timeout startup option" not in node.log()
    assert not re.search(r"(ERROR|FATAL|WARNING) .*(prepared statement|cursor .* does not exist)", log.read_text())

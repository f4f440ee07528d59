"""The database timeouts (core/database): a statement the server takes too long for is cancelled by the
server (statement_timeout, sent at connect); a server that does not answer at all is given up on by the
client (the deadline), and the connection is closed rather than reused."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from core.database import deadline
from core.database import base
from core.database.base import DeadlineConnection
from tests.support.forwarder import Forwarder

pytestmark = pytest.mark.postgres


def dsn(port: int | None = None) -> str:
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None,
                                          host="127.0.0.1" if port else db["HOST"],
                                          port=port or db["PORT"] or 5432)


def test_requests_connect_with_a_statement_timeout_and_a_deadline():
    assert settings.DATABASES["default"]["ENGINE"] == "core.database"
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == f"{settings.DB_STATEMENT_TIMEOUT_MS // 1000}s"
    assert isinstance(connection.connection, DeadlineConnection)
    assert connection.connection.deadline == settings.DB_STATEMENT_TIMEOUT_MS / 1000 + 1
    assert settings.DATABASES["default"]["OPTIONS"]["connect_timeout"] == settings.DB_CONNECT_TIMEOUT


def test_a_server_that_does_not_answer_is_given_up_on_and_the_connection_closed():
    forwarder = Forwarder(("127.0.0.1", int(settings.DATABASES["default"]["PORT"] or 5432)))
    try:
        conn = DeadlineConnection.connect(dsn(forwarder.port), autocommit=True)
        conn.deadline = 0.5
        assert conn.execute("SELECT 1").fetchone() == (1,)
        forwarder.hang()
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="did not answer within 0.5 s"):
            conn.execute("SELECT 1")
        assert time.monotonic() - started < 1.5
        assert conn.closed
    finally:
        forwarder.close()


def test_a_thread_may_narrow_the_deadline():
    conn = DeadlineConnection.connect(dsn(), autocommit=True)
    conn.deadline = 30
    started = time.monotonic()
    with deadline(0.3), pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT pg_sleep(3)")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(("argv", "statement_ms"), [
    (["manage.py", "shell", "-c", "X"], 600_000),  # migrations and commands: a job
    (["-c", "import config.wsgi; X"], 5_000),  # gunicorn's application: a web process
])
def test_jobs_get_the_long_timeouts_and_web_processes_the_short_ones(argv, statement_ms):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    show = "from django.conf import settings; print(settings.DB_STATEMENT_TIMEOUT_MS, settings.DB_CONNECT_TIMEOUT)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_DB_", "MANA_PROCESS_KIND"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    command = [sys.executable] + [part.replace("X", show) for part in argv]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == [str(statement_ms), "10" if statement_ms > 5_000 else "3"]


def test_a_pooler_that_refuses_the_startup_option_is_connected_to_without_it(monkeypatch, caplog):
    """PgBouncer answers "unsupported startup parameter: options" (checked with PgBouncer 1.18): the
    backend connects again without it, says so once, and keeps its client-side deadline."""
    from django.db import connections
    from django.db.backends.postgresql import base as django_base

    from core.database import base as backend

    monkeypatch.setattr(backend, "_startup_options_refused", False)
    real = django_base.DatabaseWrapper.get_new_connection
    seen = []

    def pooler(self, conn_params):
        seen.append("options" in conn_params)
        if "options" in conn_params:
            raise psycopg.OperationalError("connection failed: FATAL:  unsupported startup parameter: options")
        return real(self, conn_params)

    monkeypatch.setattr(django_base.DatabaseWrapper, "get_new_connection", pooler)
    wrapper = connections.create_connection("default")
    try:
        conn = wrapper.get_new_connection(wrapper.get_connection_params())
        assert isinstance(conn, DeadlineConnection) and conn.deadline
        conn.close()
        wrapper.get_new_connection(wrapper.get_connection_params()).close()  # the next one asks no more
    finally:
        wrapper.close()
    assert seen == [True, False, False]
    assert "refused the statement_timeout startup option" in caplog.text


def test_a_connection_answered_a_moment_ago_skips_the_health_check_an_idle_one_gets_it(monkeypatch):
    """CONN_HEALTH_CHECKS' "SELECT 1" before a request's first statement is skipped for a connection the
    server answered within HEALTH_CHECK_BYPASS_SECONDS (core/database/base.py), and kept for an idle one."""
    checks = []
    original = base.DatabaseWrapper.is_usable
    monkeypatch.setattr(base.DatabaseWrapper, "is_usable", lambda self: checks.append(1) or original(self))
    assert connection.health_check_enabled
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.health_check_done = False  # as at the start of the next request
    connection.close_if_health_check_failed()
    assert checks == [] and connection.health_check_done

    connection.connection.answered_at -= base.HEALTH_CHECK_BYPASS_SECONDS + 0.1  # idle since
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    assert checks == [1] and connection.connection is not None


@pytest.mark.parametrize(("variables", "options"), [
    ({}, "-c statement_timeout=5000 -c plan_cache_mode=force_generic_plan"),
    ({"AUTH_DB_PREPARED_STATEMENTS": "false"}, "-c statement_timeout=5000"),
    ({"AUTH_DB_STATEMENT_TIMEOUT_MS": "0"}, "-c plan_cache_mode=force_generic_plan"),
    ({"AUTH_DB_STATEMENT_TIMEOUT_STARTUP": "false"}, None),  # behind a pooler: on the role (docs/deploy.md)
    ({"AUTH_DB_TRANSACTION_POOLER": "true"}, None),  # no prepared statements, no startup options
])
def test_the_startup_options_ask_for_one_plan_per_prepared_statement(variables, options):
    """A web process connecting to PostgreSQL directly asks for generic plans of its prepared statements (the
    hot paths' indexed look-ups, core/prepared.py) with its statement timeout; without prepared statements or
    startup options it does not."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    show = ("import config.wsgi; from django.conf import settings; "
            "print(repr(settings.DATABASES['default'].get('OPTIONS', {}).get('options')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_DB_", "MANA_PROCESS_KIND"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
               **variables)
    done = subprocess.run([sys.executable, "-c", show], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == repr(options)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan cache")
@pytest.mark.django_db
def test_the_hot_statements_are_planned_once_not_on_every_call(api, user, settings):
    """The sessions list of a user among a few with many sessions: PostgreSQL's default would plan it on
    every call (its generic estimate looks worse than the custom one), 220 against 90 us of server CPU
    per call measured (docs/benchmarks.md, eighth pass). The connection asks for generic plans."""
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import DeviceSession
    from tests.support.auth import login

    if not settings.DATABASES["default"].get("PREPARED_STATEMENTS", True):
        pytest.skip("prepared statements are off")
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_generic_plan"
    access = login(api, user.email)["accessToken"]
    now = timezone.now()
    DeviceSession.objects.bulk_create([
        DeviceSession(user=user, expires_at=now + timedelta(days=1), absolute_expires_at=now + timedelta(days=2),
                      revoked_at=now) for _ in range(200)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_devicesession")
    for _ in range(8):
        assert api.get("/api/v1/auth/sessions/active", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                       ['%"sessions_app_devicesession"."id" = $2 OR ("sessions_app_devicesession"."expires_at" > $3%'])
        plans = cursor.fetchall()
    assert len(plans) == 1 and plans[0][0] >= 1 and plans[0][1] == 0, plans  # the list's statement

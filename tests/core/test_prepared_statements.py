"""core.database.base.PreparingCursor: the hot paths' statements are prepared on the server once per
connection (PostgreSQL), and not when PREPARED_STATEMENTS is off (behind a transaction pooler). They run on
the connection's one KeptCursor, through HotCursor unless something observes the statements."""

import time
import uuid

import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg.types.json import Jsonb

from core.database import deadline
from core.database.base import HotCursor, KeptCursor, PreparingCursor
from core.prepared import _cursor
from sessions_app.models import DeviceSession
from sessions_app.selectors import session_by_refresh_hash, session_by_refresh_secret
from sessions_app.services import session_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements of PostgreSQL")]


def prepared(like: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", [like])
        return [row[0] for row in cursor.fetchall()]


def test_the_refresh_lookup_is_prepared_once_and_reused():
    session = session_create(user=UserFactory()).session
    for _ in range(3):
        assert session_by_refresh_secret(session.pk, session.refresh_secret_hash).pk == session.pk
    assert session_by_refresh_secret(session.pk, "0" * 64) is None
    assert session_by_refresh_secret(uuid.uuid4(), session.refresh_secret_hash) is None
    lookups = prepared('SELECT %"sessions_app_devicesession"."refresh_secret_hash" = $%')
    assert len(lookups) == 1  # one statement, whatever the values


def test_the_lookup_of_a_token_of_the_earlier_format_is_prepared_once_and_reused():
    session = session_create(user=UserFactory()).session
    DeviceSession.objects.filter(pk=session.pk).update(refresh_token_hash="e" * 64, refresh_secret_hash="")
    for _ in range(3):
        assert session_by_refresh_hash("e" * 64).pk == session.pk
    assert session_by_refresh_hash("0" * 64) is None
    lookups = prepared('SELECT %"sessions_app_devicesession"."refresh_token_hash" = $1%')
    assert len(lookups) == 1


def test_django_cursors_still_bind_on_the_client():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'client-bound' WHERE 1 = %s", [1])
    assert prepared("%client-bound%") == []


def test_nothing_is_prepared_when_prepared_statements_are_off(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "PREPARED_STATEMENTS", False)
    with _cursor(connection) as cursor:
        assert not isinstance(cursor.cursor, PreparingCursor)
        cursor.execute("SELECT 'not-prepared' WHERE 1 = %s", [1])
    assert prepared("%not-prepared%") == []


def test_the_hot_statements_share_one_cursor_per_connection():
    with _cursor(connection) as first:
        first.execute("SELECT 1 WHERE 1 = %s", [1])
        assert first.fetchone() == (1,)
    with _cursor(connection) as second:
        second.execute("SELECT 2 WHERE 2 = %s", [2])
        assert second.fetchall() == [(2,)]
    assert isinstance(first, HotCursor) and isinstance(first.cursor, KeptCursor)
    assert second.cursor is first.cursor and not first.cursor.closed  # the end of a use does not close it


@pytest.mark.django_db(transaction=True)  # closes the connection: no test transaction around it
def test_a_new_connection_gets_a_new_kept_cursor():
    with _cursor(connection) as cursor:
        kept = cursor.cursor
    connection.close()
    with _cursor(connection) as cursor:
        cursor.execute("SELECT 1 WHERE 1 = %s", [1])
        assert cursor.fetchone() == (1,)
        assert cursor.cursor is not kept and cursor.cursor.connection is connection.connection


def test_observed_statements_go_through_djangos_wrappers():
    with CaptureQueriesContext(connection) as queries, _cursor(connection) as cursor:
        assert not isinstance(cursor, HotCursor)
        cursor.execute("SELECT 'observed' WHERE 1 = %s", [1])
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 'observed' WHERE 1 = 1"]
    seen = []
    with connection.execute_wrapper(lambda execute, sql, *args: seen.append(sql) or execute(sql, *args)):
        with _cursor(connection) as cursor:
            cursor.execute("SELECT 'wrapped' WHERE 1 = %s", [1])
    assert seen == ["SELECT 'wrapped' WHERE 1 = %s"]


def test_the_hot_cursor_raises_djangos_errors():
    with _cursor(connection) as cursor:
        assert isinstance(cursor, HotCursor)
        with pytest.raises(IntegrityError), transaction.atomic():  # the savepoint keeps the test's transaction
            cursor.execute("INSERT INTO sessions_app_spentrefreshtoken (token_hash) VALUES (%s)", ["x"])  # NOT NULLs
        with pytest.raises(DatabaseError) as raised, transaction.atomic():
            cursor.execute("SELECT 1 / 0 WHERE 1 = %s", [1])
        assert type(raised.value).__module__ == "django.db.utils"
        assert not isinstance(raised.value, OperationalError)


def test_the_hot_cursor_refuses_a_broken_transaction():
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic(savepoint=False), _cursor(connection) as cursor:
            cursor.execute("SELECT 1 / 0 WHERE 1 = %s", [1])
        with pytest.raises(TransactionManagementError), _cursor(connection) as cursor:
            cursor.execute("SELECT 1 WHERE 1 = %s", [1])  # as Django's own cursor would: roll back first


# --- HotCursor's own execution (core.database.base._execute_prepared) ------------------------------------

class Undone(Exception):
    pass


ROW_SQL = ("SELECT %s::uuid, %s::text, %s::timestamptz, %s::int, %s::bigint, %s::boolean, %s::inet, %s::jsonb, %s, "
           "now() - now(), 'a%%b' WHERE 1 = %s")


def _row_values():
    return [uuid.UUID(int=5), "text é", timezone.now(), 7, 2**40, True, "10.0.0.1", Jsonb({"a": [1, "x"]}), None, 1]


def test_the_hot_cursor_reads_what_psycopgs_cursor_reads():
    """The same values and the same Python types, row by row, for each kind of column the hot statements use."""
    sql = ROW_SQL.replace("'a%%b' ", "'ab' ")  # no literal %: HotCursor's own way
    DeviceSession.objects.exists()  # the test's transaction has begun: a hot statement is not its first
    values = _row_values()
    with _cursor(connection) as cursor:
        cursor.execute(sql, values)
        ours = cursor.fetchall()
        assert connection.connection.hot_statements  # it did go its own way
        cursor.cursor.execute(sql, values)
        theirs = cursor.cursor.fetchall()
    assert [[(type(v), v) for v in row] for row in ours] == [[(type(v), v) for v in row] for row in theirs]
    with _cursor(connection) as cursor:  # a literal %: psycopg's cursor, the same answer
        cursor.execute(ROW_SQL, _row_values())
        assert cursor.fetchone()[-1] == "a%b"


def test_the_hot_cursor_counts_rows_and_reads_one_at_a_time():
    user = UserFactory()
    first, second = session_create(user=user).session, session_create(user=user).session
    with _cursor(connection) as cursor:
        cursor.execute("UPDATE sessions_app_devicesession SET device_name = %s WHERE user_id = %s", ["x", user.pk])
        assert cursor.rowcount == 2
        cursor.execute("SELECT id FROM sessions_app_devicesession WHERE user_id = %s ORDER BY id", [user.pk])
        assert cursor.rowcount == 2
        assert [cursor.fetchone(), cursor.fetchone(), cursor.fetchone()] == [
            *sorted([(first.pk,), (second.pk,)]), None]


@pytest.mark.django_db(transaction=True)  # atomic blocks of its own, no test transaction around them
def test_the_first_statement_of_a_transaction_is_inside_it():
    """Django's ``atomic`` leaves the BEGIN to psycopg's next statement: a hot statement that comes first
    goes through psycopg's cursor, so it is part of the transaction and rolled back with it."""
    session = session_create(user=UserFactory()).session
    with pytest.raises(Undone), transaction.atomic():
        with _cursor(connection) as cursor:
            cursor.execute("UPDATE sessions_app_devicesession SET device_name = %s WHERE id = %s", ["gone", session.pk])
        raise Undone
    assert DeviceSession.objects.get(pk=session.pk).device_name == ""


@pytest.mark.django_db(transaction=True)
def test_statements_are_prepared_again_after_psycopg_or_sql_deallocates_them():
    def run():
        with _cursor(connection) as cursor:
            cursor.execute("SELECT 'again' WHERE 1 = %s", [1])
            return cursor.fetchall()

    assert run() == [("again",)]
    with pytest.raises(Undone), transaction.atomic():
        with _cursor(connection) as cursor:  # a transaction's first statement: psycopg prepares it
            cursor.execute("SELECT 'first' WHERE 1 = %s", [1])
        raise Undone  # psycopg's rollback sends DEALLOCATE ALL, having prepared statements of its own
    assert connection.connection.hot_statements is None  # forgotten with psycopg's
    assert run() == [("again",)]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # behind psycopg's back
    assert run() == [("again",)]
    assert len(prepared("%'again'%")) == 1


@pytest.mark.django_db(transaction=True)  # the connection is closed: no test transaction around it
def test_the_hot_cursor_keeps_the_deadline():
    with deadline(0.3), pytest.raises(OperationalError, match="did not answer within"):
        started = time.monotonic()
        with _cursor(connection) as cursor:
            cursor.execute("SELECT pg_sleep(3) WHERE 1 = %s", [1])
    assert time.monotonic() - started < 1.5
    connection.close()

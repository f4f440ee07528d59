"""core.database.base.PreparingCursor: the hot paths' statements are prepared on the server once per
connection (PostgreSQL), and not when PREPARED_STATEMENTS is off (behind a transaction pooler)."""

import pytest
from django.db import connection

from core.database.base import PreparingCursor
from core.prepared import _cursor
from sessions_app.selectors import session_by_refresh_hash
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
        assert session_by_refresh_hash(session.refresh_token_hash).pk == session.pk
    assert session_by_refresh_hash("0" * 64) is None
    lookups = prepared('SELECT %"sessions_app_devicesession"."refresh_token_hash" = $1%')
    assert len(lookups) == 1  # one statement, whatever the values


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

"""core.database.base.UtcTimestamptzLoader: on a UTC connection timestamptz values are loaded by psycopg's own
(C-optimised) loader instead of Django's Python subclass of it, with the same values and the same tzinfo."""

import datetime

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from accounts.models import User
from core.database.base import UtcTimestamptzLoader
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's loaders: PostgreSQL")]

TEXTS = ["2026-12-02 19:00:00+00", "2026-12-02 19:00:00.123456+00", "2026-01-01 10:00:00+02",
         "1999-12-31 23:59:59.999999-08", "2026-06-30 12:00:00+05:30", "0001-01-01 00:00:00+00",
         "9999-12-31 23:59:59.999999+00", None]


def _loaded(cursor) -> list:
    cursor.execute("SELECT " + ", ".join(["%s::timestamptz"] * len(TEXTS)), TEXTS)
    return list(cursor.fetchone())


def test_the_connection_loads_timestamptz_with_psycopgs_own_loader():
    with connection.cursor():  # connected
        loader = connection.connection.adapters.get_loader(psycopg.postgres.types["timestamptz"].oid,
                                                           psycopg.pq.Format.TEXT)
    assert loader is UtcTimestamptzLoader
    if psycopg.pq.__impl__ in ("c", "binary"):
        assert type(UtcTimestamptzLoader(1184, None)).__module__.startswith("psycopg_")  # the C class


@pytest.mark.parametrize("cursor_of", ["cursor", "prepared_cursor"])
def test_the_values_are_djangos(cursor_of):
    with getattr(connection, cursor_of)() as cursor:
        ours = _loaded(cursor)
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own loader, on this cursor only
        djangos = _loaded(cursor)
    assert ours == djangos
    for value in ours[:-1]:
        assert value.tzinfo is datetime.UTC
    assert ours[-1] is None


def test_a_model_reads_the_same_instant_back():
    created = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.UTC)
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(created_at=created)
    loaded = User.objects.get(pk=user.pk).created_at
    assert loaded == created and loaded.tzinfo is datetime.UTC

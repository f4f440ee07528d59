"""The indexes of the rows every refresh writes (migrations 0012 and 0013, docs/benchmarks.md seventh and
ninth passes).

A refresh changes its session's ``refresh_secret_hash`` (no index) and, once a day at most, ``expires_at``
(indexed); it also inserts a spent-token row. An index on a column a refresh changes would make every
refresh a non-HOT update, with an entry in every index of the table; each index of the spent tokens is
paid on every refresh. So the list is held here: adding one is a decision to make with that cost in mind,
not a side effect of ``unique=True`` or a ForeignKey. (``refresh_token_hash``: tokens of the earlier
format, which no refresh writes.)"""

from __future__ import annotations

import pytest
from django.db import connection

from sessions_app.models import DeviceSession, SpentRefreshToken

pytestmark = pytest.mark.django_db

# (columns, operator classes or "", unique, partial) of each index; names are Django's hashes, so not compared
EXPECTED = {
    DeviceSession: {
        (("id",), True, False),
        (("refresh_token_hash",), True, False),
        (("browser_key_hash",), True, False),
        (("active_organization_id",), False, False),
        (("user_id", "revoked_at", "expires_at"), False, False),
        (("expires_at",), False, False),
        (("revoked_at",), False, True),
    },
    SpentRefreshToken: {
        (("token_hash",), True, False),
        (("session_id",), False, False),
        (("spent_at",), False, True),
    },
}


def _indexes(table: str) -> tuple[set, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY k.ord), x.indisunique, x.indpred IS NOT NULL, "
            "array_agg(o.opcname ORDER BY k.ord) "
            "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
            "CROSS JOIN LATERAL unnest(x.indkey::int2[], x.indclass::oid[]) WITH ORDINALITY AS k(attnum, opclass, ord) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "JOIN pg_opclass o ON o.oid = k.opclass "
            "WHERE t.relname = %s GROUP BY x.indexrelid, x.indisunique, x.indpred", [table])
        rows = cursor.fetchall()
    return {(tuple(columns), unique, partial) for columns, unique, partial, _ in rows}, [
        opclass for *_, opclasses in rows for opclass in opclasses]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog (pattern indexes exist only there)")
@pytest.mark.parametrize("model", [DeviceSession, SpentRefreshToken], ids=lambda m: m.__name__)
def test_only_the_indexes_the_queries_use(model):
    indexes, opclasses = _indexes(model._meta.db_table)
    assert indexes == EXPECTED[model]
    assert not [name for name in opclasses if name.endswith("_pattern_ops")]  # no LIKE copy of a hash column

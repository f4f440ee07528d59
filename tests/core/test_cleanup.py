"""Cleanups delete in bounded batches (core/cleanup.py, issue 15): at most N primary keys read with a
LIMIT, exactly those rows deleted, each batch in a transaction of its own, whatever the backlog."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import cleanup
from core.cleanup import delete_in_batches, update_in_batches
from core.tokens import hash_token
from security.models import SecurityToken, SecurityTokenPurpose
from security.services import security_tokens_cleanup
from sessions_app.models import DeviceSession, SealedWith, SpentRefreshToken
from sessions_app.services import sessions_cleanup


def session(user, *, expired_ago=None):
    now = timezone.now()
    expires = now - expired_ago if expired_ago else now + timedelta(days=1)
    row = DeviceSession.objects.create(user=user, created_at=now - timedelta(days=100), expires_at=expires,
                                       absolute_expires_at=expires, refresh_token_hash=hash_token(uuid.uuid4().hex))
    SpentRefreshToken.objects.create(token_hash=hash_token(uuid.uuid4().hex), session=row, successor_hash="x")
    return row


def statements(captured, verb: str, table: str) -> list[str]:
    return [q["sql"] for q in captured.captured_queries
            if q["sql"].startswith(verb) and f'"{table}"' in q["sql"].split(" WHERE ")[0]]


def bounded(sql: str, limit: int) -> bool:
    """A DELETE/UPDATE names its rows by primary key (or, for a cascade, by its parents' keys), at most
    ``limit`` of them."""
    found = re.search(r'"(?:id|token_hash|session_id)" IN \(([^)]*)\)', sql)
    return bool(found) and len(found.group(1).split(",")) <= limit


def test_delete_in_batches_deletes_every_row_a_bounded_batch_at_a_time(user):
    live = session(user)
    old = [session(user, expired_ago=timedelta(days=40)) for _ in range(5)]
    with CaptureQueriesContext(connection) as captured:
        deleted = delete_in_batches(DeviceSession.objects.filter(expires_at__lt=timezone.now()), batch_size=2)
    assert deleted == 5
    assert list(DeviceSession.objects.values_list("pk", flat=True)) == [live.pk]
    assert not SpentRefreshToken.objects.filter(session__in=[s.pk for s in old]).exists()  # cascades too
    table = DeviceSession._meta.db_table
    deletes = statements(captured, "DELETE", table)
    assert len(deletes) == 3 and all(bounded(sql, 2) for sql in deletes), deletes
    reads = statements(captured, "SELECT", table)
    batches = [sql for sql in reads if 'AS "pk" FROM' in sql]  # the batch's keys: a LIMIT, no sort
    assert batches and all(sql.endswith("LIMIT 2") and "ORDER BY" not in sql for sql in batches), batches
    assert all(bounded(sql, 2) for sql in reads if sql not in batches)  # the collector's reads: by key
    # Each batch in a transaction of its own (here, inside the test's transaction: a savepoint each).
    assert sum(q["sql"].startswith("SAVEPOINT") for q in captured.captured_queries) >= 3


def test_update_in_batches(user):
    rows = [session(user) for _ in range(3)]
    SpentRefreshToken.objects.update(successor_encrypted="sealed")
    with CaptureQueriesContext(connection) as captured:
        changed = update_in_batches(SpentRefreshToken.objects.exclude(successor_encrypted=""), batch_size=2,
                                    successor_encrypted="")
    assert changed == 3 and not SpentRefreshToken.objects.exclude(successor_encrypted="").exists()
    updates = statements(captured, "UPDATE", SpentRefreshToken._meta.db_table)
    assert len(updates) == 2 and all(bounded(sql, 2) for sql in updates), updates
    assert len(rows) == 3


def test_sessions_cleanup_is_batched(user, settings):
    settings.SESSIONS = {"CLEANUP_BATCH_SIZE": 2}
    live = session(user)
    for _ in range(3):
        session(user, expired_ago=timedelta(days=31))
    SpentRefreshToken.objects.update(successor_sealed_with=SealedWith.KEY_ENCRYPTION_KEY, successor_encrypted="x",
                                     spent_at=timezone.now() - timedelta(hours=1))
    with CaptureQueriesContext(connection) as captured:
        assert sessions_cleanup() == 3
    assert list(DeviceSession.objects.values_list("pk", flat=True)) == [live.pk]
    assert SpentRefreshToken.objects.get().successor_encrypted == ""
    for table in (DeviceSession._meta.db_table, SpentRefreshToken._meta.db_table):
        for sql in statements(captured, "DELETE", table) + statements(captured, "UPDATE", table):
            assert bounded(sql, 2), sql


def test_a_sessions_many_spent_tokens_go_in_batches_of_their_own(user, settings):
    """One session may have thousands of spent refresh tokens (one per rotation): they are deleted in
    batches before the session, so a batch's cascade never grows with them."""
    settings.SESSIONS = {"CLEANUP_BATCH_SIZE": 2}
    old = session(user, expired_ago=timedelta(days=31))
    for _ in range(4):
        SpentRefreshToken.objects.create(token_hash=hash_token(uuid.uuid4().hex), session=old, successor_hash="x")
    with CaptureQueriesContext(connection) as captured:
        assert sessions_cleanup() == 1
    assert not SpentRefreshToken.objects.exists()
    deletes = [sql for sql in statements(captured, "DELETE", SpentRefreshToken._meta.db_table)
               if '"token_hash" IN' in sql]
    assert len(deletes) == 3 and all(bounded(sql, 2) for sql in deletes), deletes  # 5 tokens: 2 + 2 + 1


@pytest.mark.parametrize("batch", [2, 1000])
def test_token_cleanups_use_the_default_batch_size(user, monkeypatch, batch):
    monkeypatch.setattr(cleanup, "BATCH_SIZE", batch)
    now = timezone.now()
    for n in range(5):
        SecurityToken.objects.create(user=user, purpose=SecurityTokenPurpose.choices[0][0],
                                     token_hash=hash_token(f"t{n}-{uuid.uuid4()}"), expires_at=now - timedelta(days=2))
    kept = SecurityToken.objects.create(user=user, purpose=SecurityTokenPurpose.choices[0][0],
                                        token_hash=hash_token(uuid.uuid4().hex), expires_at=now + timedelta(hours=1))
    with CaptureQueriesContext(connection) as captured:
        assert security_tokens_cleanup() == 5
    assert list(SecurityToken.objects.values_list("pk", flat=True)) == [kept.pk]
    deletes = statements(captured, "DELETE", SecurityToken._meta.db_table)
    assert deletes and all(bounded(sql, batch) for sql in deletes)
    assert len(deletes) == -(-5 // batch)

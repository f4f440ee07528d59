"""The hash chain: every row links to the one before; audit_verify finds the first broken link;
retention keeps the rest verifiable; audit_export writes JSON lines."""

import json
from datetime import timedelta
from functools import partial
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.chain import GENESIS, chain_verify, row_digest
from audit.models import AuditEvent, EventType
from audit.services import audit_record, audit_retention_enforce
from tests.factories import UserFactory
from tests.support.races import race


@pytest.fixture(autouse=True)
def _every_row_written(settings):
    """These tests write anonymous refusals in bulk to build chains; flood control would count most of
    them instead of writing them (that is tests/audit/test_flood.py's subject)."""
    settings.AUDIT = {**settings.AUDIT, "FLOOD_CONTROL": False}


def write(n, **context):
    return [audit_record(event=EventType.LOGIN_FAILED, success=False, n=i, **context) for i in range(n)]


def tamper(sql, params):
    """Change a row behind the ORM's back: the append-only trigger has to be lifted first."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute(sql, params)
            cursor.execute("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent "
                           "BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only'); END;")


def verify_output():
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_rows_are_linked_in_order(db):
    rows = write(3)
    assert rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == rows[0].row_hash and rows[2].prev_hash == rows[1].row_hash
    stored = AuditEvent.objects.get(pk=rows[1].pk)  # what the database gives back hashes the same
    assert row_digest(stored, stored.prev_hash) == stored.row_hash
    assert "audit chain OK: 3 rows" in verify_output()


def test_a_changed_row_is_reported(db):
    rows = write(4)
    tamper("UPDATE audit_auditevent SET context = %s WHERE id = %s", [json.dumps({"n": 99}), rows[2].pk])
    result = chain_verify()
    assert not result.ok and result.broken_id == rows[2].pk and "changed" in result.reason
    with pytest.raises(CommandError, match=f"BROKEN at row id {rows[2].pk}"):
        verify_output()


def test_a_changed_row_with_a_recomputed_hash_breaks_the_next_link(db):
    rows = write(4)
    forged = AuditEvent.objects.get(pk=rows[1].pk)
    forged.success = True
    tamper("UPDATE audit_auditevent SET success = %s, row_hash = %s WHERE id = %s",
           [True, row_digest(forged, forged.prev_hash), rows[1].pk])
    assert chain_verify().broken_id == rows[2].pk


def test_a_deleted_middle_row_is_reported(db):
    rows = write(5)
    AuditEvent.objects.filter(pk=rows[2].pk).delete()
    result = chain_verify()
    assert not result.ok and result.broken_id == rows[3].pk and result.checked == 2


def test_retention_deletes_old_rows_and_keeps_the_chain_verifiable(db, settings):
    long_ago = timezone.now() - timedelta(days=401)
    with mock.patch("audit.services.timezone.now", return_value=long_ago):
        old = write(3)
    recent = write(2)
    assert audit_retention_enforce() == 3
    assert not AuditEvent.objects.filter(pk__in=[r.pk for r in old]).exists()
    checkpoint = AuditEvent.objects.get(event=EventType.AUDIT_PRUNED)
    assert checkpoint.context["last_deleted_hash"] == old[-1].row_hash
    assert chain_verify().ok and chain_verify().checked == 3
    assert audit_retention_enforce() == 0
    # Removing the oldest remaining row is still detected.
    AuditEvent.objects.filter(pk=recent[0].pk).delete()
    result = chain_verify()
    assert not result.ok and result.broken_id == recent[1].pk and "start" in result.reason


def test_retention_period_is_configurable(db, settings):
    settings.SECURITY = {**settings.SECURITY, "AUDIT_RETENTION_DAYS": 10}
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=11)):
        write(2)
    write(1)
    assert audit_retention_enforce() == 2
    assert chain_verify().ok


def test_export_writes_json_lines_since_a_date(db, tmp_path):
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=3)):
        write(2)
    user = UserFactory()
    audit_record(event=EventType.LOGIN_SUCCEEDED, actor=user, password="hunter2")
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    out = tmp_path / "audit.jsonl"
    call_command("audit_export", "--since", since, "--output", str(out), stderr=StringIO())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["event"] for line in lines] == [EventType.LOGIN_SUCCEEDED]
    assert lines[0]["actorId"] == str(user.pk) and lines[0]["rowHash"] and lines[0]["prevHash"]
    assert "hunter2" not in out.read_text()
    with pytest.raises(CommandError):
        call_command("audit_export", "--since", "yesterday")


@pytest.mark.postgres
def test_concurrent_writers_keep_one_unbroken_chain():
    def writer(k):
        for i in range(10):
            audit_record(event=EventType.LOGIN_FAILED, success=False, writer=k, n=i)

    race(*(partial(writer, k) for k in range(6)))  # fails the test with any exception a writer raised
    result = chain_verify()
    assert result.ok and result.checked == 60


def test_the_periodic_task_is_scheduled_and_runs(db, settings):
    from audit.tasks import audit_retention_enforce as task

    assert settings.CELERY_BEAT_SCHEDULE["audit-retention"]["task"] == "audit.tasks.audit_retention_enforce"
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=500)):
        write(2)
    task.delay()  # eager in tests
    # Everything was old: all but the newest row go (the checkpoint links to it).
    assert AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).count() == 1
    assert chain_verify().ok

"""The hash chain: rows carry their own hash, seals link them in id order; audit_verify finds the first
mismatch and says how far the seal reaches; retention keeps the rest verifiable; audit_export writes
JSON lines. The PostgreSQL side (no lock on the request path, the sealer's horizon, two sealers) is in
test_seal_postgres.py."""

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
from audit.models import AuditEvent, AuditSeal, EventType
from audit.services import audit_record, audit_retention_enforce, audit_seal
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


def test_rows_are_sealed_in_order(db):
    rows = write(3)  # sealed after each commit here (tests/audit/conftest.py): one seal a row
    seals = list(AuditSeal.objects.order_by("after_id"))
    assert [(s.after_id, s.last_id, s.row_count) for s in seals] == [
        (0, rows[0].pk, 1), (rows[0].pk, rows[1].pk, 1), (rows[1].pk, rows[2].pk, 1)]
    assert seals[0].prev_hash == GENESIS
    assert seals[1].prev_hash == seals[0].seal_hash and seals[2].prev_hash == seals[1].seal_hash
    stored = AuditEvent.objects.get(pk=rows[1].pk)  # what the database gives back hashes the same
    assert stored.prev_hash == "" and row_digest(stored) == stored.row_hash == rows[1].row_hash
    assert "audit chain OK: 3 rows in 3 seals" in verify_output()


def test_one_seal_covers_a_batch_and_verify_says_how_far_it_reaches(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}  # as in production: the sealer seals
    first = write(2)
    assert AuditSeal.objects.count() == 0
    result = chain_verify()
    assert result.ok and result.checked == 0 and result.unsealed == 2 and result.sealed_to == 0
    assert "2 rows not sealed yet" in verify_output()
    sealed = audit_seal()
    assert (sealed.rows, sealed.seals, sealed.last_id) == (2, 1, first[-1].pk)
    later = write(3)
    out = StringIO()
    call_command("audit_seal", stdout=out)
    assert f"sealed 3 audit rows; the chain reaches row id {later[-1].pk}" in out.getvalue()
    assert [(s.row_count, s.last_id) for s in AuditSeal.objects.order_by("after_id")] == [
        (2, first[-1].pk), (3, later[-1].pk)]
    result = chain_verify()
    assert result.ok and result.checked == 5 and result.seals == 2 and result.unsealed == 0
    assert result.sealed_to == later[-1].pk and result.head == AuditSeal.objects.get(last_id=later[-1].pk).seal_hash
    write(1)
    assert "1 rows not sealed yet" in verify_output()
    assert "5 rows in 2 seals" in verify_output() and "6 rows in 3 seals" in _verify_sealing()


def _verify_sealing():
    out = StringIO()
    call_command("audit_verify", "--seal", stdout=out)
    return out.getvalue()


def test_a_gap_left_by_a_rolled_back_row_is_sealed_over(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    from django.db import transaction

    before = write(1)[0]
    with pytest.raises(RuntimeError), transaction.atomic():
        write(1)
        raise RuntimeError("the request failed")
    after = write(1)[0]
    if connection.vendor == "postgresql":
        assert after.pk == before.pk + 2  # the rolled-back row took an id (SQLite gives it back)
    assert audit_seal().rows == 2
    assert chain_verify().ok and chain_verify().checked == 2


def test_a_changed_row_is_reported(db):
    rows = write(4)
    tamper("UPDATE audit_auditevent SET context = %s WHERE id = %s", [json.dumps({"n": 99}), rows[2].pk])
    result = chain_verify()
    assert not result.ok and result.broken_id == rows[2].pk and "changed" in result.reason
    with pytest.raises(CommandError, match=f"BROKEN at row id {rows[2].pk}"):
        verify_output()


def test_a_changed_row_with_a_recomputed_hash_breaks_its_seal(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    rows = write(4)
    audit_seal()  # one seal over the four
    forged = AuditEvent.objects.get(pk=rows[1].pk)
    forged.success = True
    tamper("UPDATE audit_auditevent SET success = %s, row_hash = %s WHERE id = %s",
           [True, row_digest(forged, forged.prev_hash), rows[1].pk])
    result = chain_verify()
    seal = AuditSeal.objects.get()
    assert not result.ok and result.broken_seal == seal.pk and result.broken_range == (0, rows[3].pk)
    assert "re-hashed" in result.reason and result.broken_id is None
    with pytest.raises(CommandError, match=f"BROKEN at seal {seal.pk} \\(rows 1..{rows[3].pk}\\)"):
        verify_output()


def test_a_deleted_middle_row_is_reported(db):
    rows = write(5)
    AuditEvent.objects.filter(pk=rows[2].pk).delete()
    result = chain_verify()
    assert not result.ok and result.broken_range == (rows[1].pk, rows[2].pk) and result.checked == 2
    assert "removed" in result.reason


def test_a_row_slipped_into_a_sealed_range_is_reported(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    rows = write(3)
    audit_seal()
    AuditEvent.objects.filter(pk=rows[1].pk).delete()
    forged = AuditEvent(pk=rows[1].pk, event=EventType.LOGIN_SUCCEEDED, context={}, created_at=rows[1].created_at)
    forged.row_hash = row_digest(forged)
    forged.save()  # the same id, a good row hash: only the seal can tell
    result = chain_verify()
    assert not result.ok and result.broken_range == (0, rows[2].pk) and "re-hashed" in result.reason


def test_a_row_added_inside_a_sealed_range_is_reported(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    rows = write(3)
    AuditEvent.objects.filter(pk=rows[1].pk).delete()  # a gap the sealer seals over
    audit_seal()
    forged = AuditEvent(pk=rows[1].pk, event=EventType.LOGIN_SUCCEEDED, context={}, created_at=rows[1].created_at)
    forged.row_hash = row_digest(forged)
    forged.save()
    result = chain_verify()
    assert not result.ok and "1 row(s) were added" in result.reason


def test_a_removed_seal_is_reported(db):
    rows = write(3)
    AuditSeal.objects.filter(last_id=rows[1].pk).delete()
    result = chain_verify()
    assert not result.ok and result.broken_range == (rows[1].pk, rows[2].pk)
    assert "does not follow the seal before it" in result.reason


def test_seals_are_append_only(db):
    write(1)
    seal = AuditSeal.objects.get()
    with pytest.raises(TypeError, match="append-only"):
        AuditSeal.objects.update(row_count=2)
    with pytest.raises(TypeError, match="append-only"):
        seal.save()
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditseal SET row_count = 2")


def test_retention_deletes_old_rows_and_keeps_the_chain_verifiable(db, settings):
    long_ago = timezone.now() - timedelta(days=401)
    with mock.patch("audit.services.timezone.now", return_value=long_ago):
        old = write(3)
    recent = write(2)
    assert audit_retention_enforce() == 3
    assert not AuditEvent.objects.filter(pk__in=[r.pk for r in old]).exists()
    checkpoint = AuditEvent.objects.get(event=EventType.AUDIT_PRUNED)
    assert checkpoint.context["last_deleted_id"] == old[-1].pk
    assert not AuditSeal.objects.filter(last_id__lte=old[-1].pk).exists()
    assert checkpoint.context["last_deleted_hash"] == AuditSeal.objects.get(after_id=old[-1].pk).prev_hash
    assert chain_verify().ok and chain_verify().checked == 3
    assert audit_retention_enforce() == 0
    # Removing the oldest remaining row and its seal is still detected.
    AuditEvent.objects.filter(pk=recent[0].pk).delete()
    AuditSeal.objects.filter(last_id=recent[0].pk).delete()
    result = chain_verify()
    assert not result.ok and result.broken_range == (recent[0].pk, recent[1].pk) and "start" in result.reason


def test_retention_keeps_rows_that_are_not_sealed(db, settings):
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=401)):
        old = write(2)
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=401)):
        unsealed = write(2)
    assert audit_retention_enforce() == 1  # the newest seal stays, and what it does not cover
    assert list(AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).values_list("pk", flat=True).order_by(
        "pk")) == [old[1].pk] + [r.pk for r in unsealed]
    audit_seal()
    assert chain_verify().ok and chain_verify().checked == 4


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
    assert lines[0]["actorId"] == str(user.pk) and lines[0]["rowHash"] and lines[0]["prevHash"] == ""
    assert "hunter2" not in out.read_text()
    with pytest.raises(CommandError):
        call_command("audit_export", "--since", "yesterday")


@pytest.mark.postgres
def test_concurrent_writers_keep_one_unbroken_chain():
    def writer(k):
        for i in range(10):
            audit_record(event=EventType.LOGIN_FAILED, success=False, writer=k, n=i)

    race(*(partial(writer, k) for k in range(6)))  # fails the test with any exception a writer raised
    audit_seal()  # what the sealing after each commit could not prove final yet
    result = chain_verify()
    assert result.ok and result.checked == 60 and result.unsealed == 0


def test_the_sealer_is_scheduled_every_second_and_runs(db, settings):
    from audit.tasks import audit_seal as task

    assert settings.CELERY_BEAT_SCHEDULE["audit-seal"]["task"] == "audit.tasks.audit_seal"
    assert settings.CELERY_BEAT_SCHEDULE["audit-seal"]["schedule"] == timedelta(seconds=1)
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    write(2)
    task.delay()  # eager in tests
    assert chain_verify().checked == 2


def test_the_periodic_task_is_scheduled_and_runs(db, settings):
    from audit.tasks import audit_retention_enforce as task

    assert settings.CELERY_BEAT_SCHEDULE["audit-retention"]["task"] == "audit.tasks.audit_retention_enforce"
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=500)):
        write(2)
    task.delay()  # eager in tests
    # Everything was old: all but the newest row go (the checkpoint links to it).
    assert AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).count() == 1
    assert chain_verify().ok


def test_rows_of_the_old_per_row_chain_are_sealed_with_their_links(db, settings):
    """Rows written before audit 0012 carry prev_hash (the row before them) inside their hash, and
    the newest old checkpoint anchors the first seal: the sealer takes them as they are."""
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    prev = "f" * 64  # the last row deleted by an old retention run
    checkpoint = AuditEvent(event=EventType.AUDIT_PRUNED, created_at=timezone.now(), prev_hash=prev,
                            context={"deleted": 5, "last_deleted_id": 0, "last_deleted_hash": prev})
    checkpoint.row_hash = row_digest(checkpoint, prev)
    checkpoint.save()
    old = AuditEvent(event=EventType.LOGIN_FAILED, success=False, created_at=timezone.now(),
                     prev_hash=checkpoint.row_hash, context={"n": 1})
    old.row_hash = row_digest(old, old.prev_hash)
    old.save()
    new = write(1)[0]
    assert audit_seal().rows == 3
    first = AuditSeal.objects.get()
    assert first.prev_hash == prev and first.after_id == 0
    result = chain_verify()
    assert result.ok and result.checked == 3 and result.sealed_to == new.pk
    tamper("UPDATE audit_auditevent SET prev_hash = %s WHERE id = %s", ["0" * 64, old.pk])
    assert chain_verify().broken_id == old.pk


def test_a_system_check_warns_when_nothing_seals(db, settings):
    from audit.checks import sealer_check

    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    assert sealer_check(None) == []  # the beat entry is there
    settings.CELERY_BEAT_SCHEDULE = {k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if k != "audit-seal"}
    assert [w.id for w in sealer_check(None)] == ["audit.W001"]
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": True}
    assert sealer_check(None) == []


def test_the_sealer_process_seals_every_interval(db, settings):
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    rounds = []

    class Stop(Exception):
        pass

    def sleep(seconds):
        rounds.append(seconds)
        if len(rounds) == 1:
            write(2)  # written while the sealer sleeps: sealed by its next round
        else:
            raise Stop

    write(1)
    with mock.patch("audit.management.commands.audit_seal.time.sleep", sleep), pytest.raises(Stop):
        call_command("audit_seal", "--loop", "--interval", "0.5", stdout=StringIO())
    assert rounds == [0.5, 0.5]
    result = chain_verify()
    assert result.ok and result.checked == 3 and result.unsealed == 0 and result.seals == 2

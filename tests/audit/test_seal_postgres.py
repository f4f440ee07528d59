"""PostgreSQL: audited transactions commit side by side (no lock on the request path), the sealer
never seals past a writer that may still commit an earlier row, and two sealers cannot both work."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from audit.chain import SEAL_LOCK_KEY, chain_verify
from audit.models import AuditSeal, EventType
from audit.services import audit_record, audit_seal
from tests.support.races import race

pytestmark = pytest.mark.postgres
WRITERS = 16


@pytest.fixture(autouse=True)
def _sealer_seals(settings):
    """As in production: nothing seals after a commit, the sealer (here: the test) does."""
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False, "FLOOD_CONTROL": False}


def in_thread(target, *args) -> threading.Thread:
    """A thread with its own connection, closed when it ends (as tests/support/races.py does)."""
    def run():
        try:
            target(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


def test_sixteen_audited_transactions_are_open_at_once_and_hold_no_audit_lock():
    """With the old chain lock the second writer waited for the first to commit: the barrier inside the
    open transactions would never fill. Now all sixteen hold an uncommitted audit row together."""
    together = threading.Barrier(WRITERS, timeout=30)

    def audited_commit(k):
        with transaction.atomic():
            row = audit_record(event=EventType.LOGIN_FAILED, success=False, writer=k)
            locks = _advisory_locks_held()
            together.wait()  # every writer is inside its transaction, its audit row written
        return row.pk, locks

    results = race(*(lambda k=k: audited_commit(k) for k in range(WRITERS)))
    assert [locks for _, locks in results] == [0] * WRITERS
    assert audit_seal().rows == WRITERS
    result = chain_verify()
    assert result.ok and result.checked == WRITERS and result.unsealed == 0
    assert result.sealed_to == max(pk for pk, _ in results)


def test_the_sealer_does_not_seal_past_a_writer_that_is_still_open():
    written, release = threading.Event(), threading.Event()
    early = {}

    def slow_writer():
        with transaction.atomic():
            early["pk"] = audit_record(event=EventType.LOGIN_FAILED, success=False, slow=True).pk
            written.set()
            assert release.wait(30)

    thread = in_thread(slow_writer)
    try:
        assert written.wait(30)
        later = audit_record(event=EventType.LOGIN_FAILED, success=False, slow=False)  # committed at once
        assert later.pk > early["pk"]
        result = audit_seal(wait=0)
        assert result.waiting and result.rows == 0  # the later row waits for the earlier one
        assert chain_verify().unsealed == 1
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        result = audit_seal(wait=10)  # waits for the writer to end, then seals both in id order
        assert 0.2 < time.monotonic() - started < 10
    finally:
        release.set()
        thread.join(30)
    assert (result.rows, result.seals, result.last_id) == (2, 1, later.pk)
    verified = chain_verify()
    assert verified.ok and verified.checked == 2 and verified.unsealed == 0


def test_a_second_sealer_returns_at_once_while_one_is_at_work():
    audit_record(event=EventType.LOGIN_FAILED, success=False)
    holding, release = threading.Event(), threading.Event()

    def sealer_at_work():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
            holding.set()
            assert release.wait(30)

    thread = in_thread(sealer_at_work)
    try:
        assert holding.wait(30)
        started = time.monotonic()
        result = audit_seal(wait=5)
        assert result.busy and result.rows == 0 and time.monotonic() - started < 1
    finally:
        release.set()
        thread.join(30)
    for _ in range(3):
        audit_record(event=EventType.LOGIN_FAILED, success=False)
    results = race(audit_seal, audit_seal, audit_seal)  # whoever wins, one chain without a fork
    assert sum(r.rows for r in results) == 4
    assert chain_verify().ok and chain_verify().checked == 4
    assert AuditSeal.objects.count() == sum(r.seals for r in results)


def test_under_steady_traffic_the_seal_moves_on_without_waiting():
    """A seal after a commit never waits, and some writer is always open under load: a round that
    cannot prove its own horizon seals up to an earlier round's, once that round's writers have ended."""
    first_open, first_go, second_open, second_go = (threading.Event() for _ in range(4))
    pks = {}

    def writer(name, opened, go):
        with transaction.atomic():
            pks[name] = audit_record(event=EventType.LOGIN_FAILED, success=False, writer=name).pk
            opened.set()
            assert go.wait(30)

    a = in_thread(writer, "a", first_open, first_go)
    try:
        assert first_open.wait(30)
        done = audit_record(event=EventType.LOGIN_FAILED, success=False, writer="main")
        assert audit_seal(wait=0).rows == 0  # "a" may commit below it: remembered, not sealed
        b = in_thread(writer, "b", second_open, second_go)
        assert second_open.wait(30)
        first_go.set()
        a.join(30)
        result = audit_seal(wait=0)  # "b" is open, but everything up to the first round's horizon is final
        assert result.waiting and result.rows == 2 and result.last_id == done.pk
    finally:
        first_go.set()
        second_go.set()
        a.join(30)
    b.join(30)
    assert audit_seal(wait=1).rows == 1
    verified = chain_verify()
    assert verified.ok and verified.checked == 3 and verified.sealed_to == pks["b"]

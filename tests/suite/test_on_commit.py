"""The suite's default database fixture: one rolled-back transaction per test, with ``on_commit``
callbacks run when the code's outermost atomic block commits (tests/support/transactions.py)."""

import logging

import pytest
from django.core import mail
from django.db import connection, transaction

from accounts.models import User
from tests.factories import UserFactory
from tests.support.transactions import needs_real_commits


def test_the_default_is_one_rolled_back_transaction():
    assert connection.in_atomic_block
    assert [block._from_testcase for block in connection.atomic_blocks] == [True]


def test_outside_any_atomic_block_a_callback_runs_at_once():
    ran = []
    transaction.on_commit(lambda: ran.append("now"))
    assert ran == ["now"]
    assert connection.run_on_commit == []


def test_inside_a_block_callbacks_wait_for_its_commit_and_run_in_order():
    ran = []
    with transaction.atomic():
        transaction.on_commit(lambda: ran.append(1))
        with transaction.atomic():  # a nested block (a savepoint) commits nothing by itself
            transaction.on_commit(lambda: ran.append(2))
        assert ran == []
        transaction.on_commit(lambda: ran.append(3))
        assert ran == []
    assert ran == [1, 2, 3]
    assert connection.run_on_commit == []


def test_a_rolled_back_block_runs_none_of_its_callbacks():
    ran = []
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: ran.append("never"))
        raise RuntimeError
    assert ran == [] and connection.run_on_commit == []
    transaction.on_commit(lambda: ran.append("later"))  # and nothing of it runs later either
    assert ran == ["later"]


def test_a_rolled_back_inner_block_drops_only_its_own_callbacks():
    ran = []
    with transaction.atomic():
        transaction.on_commit(lambda: ran.append("outer"))
        with pytest.raises(RuntimeError), transaction.atomic():
            transaction.on_commit(lambda: ran.append("inner"))
            raise RuntimeError
    assert ran == ["outer"]


def test_a_block_marked_for_rollback_runs_nothing():
    ran = []
    with transaction.atomic():
        transaction.on_commit(lambda: ran.append("never"))
        transaction.set_rollback(True)
    assert ran == []


def test_a_failing_block_without_savepoint_rolls_back_whole_as_in_production():
    """``atomic(savepoint=False)`` as the outermost block is the production transaction: a failure rolls
    it back and the test's transaction stays usable (plain TestCase would doom the rest of the test)."""
    ran = []
    with pytest.raises(RuntimeError), transaction.atomic(savepoint=False):
        UserFactory(email="gone@example.com")
        transaction.on_commit(lambda: ran.append("never"))
        raise RuntimeError
    assert ran == []
    assert not User.objects.filter(email="gone@example.com").exists()  # queries still work


def test_a_committed_block_without_savepoint_runs_its_callbacks():
    ran = []
    with transaction.atomic(savepoint=False):
        transaction.on_commit(lambda: ran.append("done"))
        assert ran == []
    assert ran == ["done"]


def test_a_callback_that_registers_another_runs_both(caplog):
    ran = []

    def first():
        ran.append("first")
        transaction.on_commit(lambda: ran.append("second"))  # after the commit: autocommit again

    with transaction.atomic():
        transaction.on_commit(first)
    assert ran == ["first", "second"]


def test_a_failing_robust_callback_is_logged_and_the_others_still_run(caplog):
    ran = []

    def broken():
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"), transaction.atomic():
        transaction.on_commit(broken, robust=True)
        transaction.on_commit(lambda: ran.append("after"))
    assert ran == ["after"]
    assert "boom" in caplog.text


def test_a_failing_plain_callback_raises_after_the_commit():
    with pytest.raises(ValueError), transaction.atomic():
        UserFactory(email="kept@example.com")
        transaction.on_commit(lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert User.objects.filter(email="kept@example.com").exists()  # committed before the callback ran


def test_a_request_has_sent_its_mail_when_it_returns(api, user):
    assert api.post("/api/v1/auth/forgot-password", {"email": user.email}, format="json").status_code == 202
    assert [m.to for m in mail.outbox] == [[user.email]]


def test_capturing_callbacks_still_works(django_capture_on_commit_callbacks):
    ran = []
    with django_capture_on_commit_callbacks() as callbacks:
        transaction.on_commit(lambda: ran.append("captured"))
    assert len(callbacks) == 1 and ran == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            transaction.on_commit(lambda: ran.append("executed"))
    assert len(callbacks) == 1 and ran == ["executed"]
    transaction.on_commit(lambda: ran.append("again at once"))  # and the suite's rule is back
    assert ran == ["executed", "again at once"]


@pytest.mark.postgres
def test_postgres_marked_tests_commit_for_real():
    """The race tests (marked postgres) get transactional_db: another connection sees what they write."""
    from tests.support.races import race

    assert not connection.in_atomic_block
    UserFactory(email="seen@example.com")
    assert race(lambda: User.objects.filter(email="seen@example.com").exists()) == [True]


class _Item:
    def __init__(self, path, *markers):
        self.fspath, self.markers = path, markers

    def get_closest_marker(self, name):
        return name if name in self.markers else None


@pytest.mark.parametrize("path, markers, real", [
    ("tests/accounts/test_flows.py", (), False),
    ("tests/accounts/test_tokens.py", ("postgres",), True),
    ("tests/web/test_pages.py", ("redis",), False),
    ("tests/browser/test_browser.py", (), True),
    ("tests/e2e/test_integration.py", (), True),
    ("tests/web/test_pages.py", ("browser",), True),
])
def test_which_tests_get_real_commits(path, markers, real):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert needs_real_commits(_Item(root / path, *markers)) is real

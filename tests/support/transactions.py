"""``transaction.on_commit`` callbacks inside a test that runs in one rolled-back transaction.

Why
    The suite's default fixture is pytest-django's ``db``: every test runs inside an atomic block that
    ``django.test.TestCase`` opens (and rolls back at the end), so nothing is ever committed. Plain
    Django would then keep every ``on_commit`` callback in ``connection.run_on_commit`` and drop them
    at the rollback, so the mail a request causes (published after commit) would never be sent.
    pytest-django's ``django_capture_on_commit_callbacks(execute=True)`` runs them only when the
    ``with`` block ends, not when the code that registered them would have committed; wrapping each
    request in it by hand would be easy to forget and would still get the moment wrong.

How Django 5.2 works (``django/db/transaction.py``, ``django/db/backends/base/base.py``)
    * ``Atomic.__enter__`` pushes the block on ``connection.atomic_blocks``; when a transaction is
      already open (always, inside a test) it creates a savepoint (``savepoint_ids``). The blocks that
      ``TestCase._enter_atomics`` opens carry ``_from_testcase = True``.
    * ``BaseDatabaseWrapper.on_commit`` runs the callback at once when no atomic block is open
      (autocommit); inside one it appends ``(set(savepoint_ids), func, robust)`` to ``run_on_commit``.
    * ``savepoint_rollback(sid)`` drops the callbacks registered while that savepoint was active; the
      real commit of the outermost block runs ``run_and_clear_commit_hooks`` (robust callbacks have
      their errors logged, a failing plain one raises and the rest are dropped); a rollback clears them.

What this module does (``install``, once per test, undone by ``monkeypatch``)
    The "test's depth" is the stack of ``_from_testcase`` blocks. Code under test sees a production
    connection if, at that depth, the connection behaves as in autocommit:

    * ``on_commit`` registered at the test's depth (no atomic block of the code under test open)
      runs the callback immediately, as autocommit does;
    * the **outermost non-test** atomic block (a view's, a service's) is the production transaction:
      when it exits normally its savepoint is released and the callbacks registered inside it run
      right then, in order, with Django's robust/plain semantics; when it rolls back they are dropped
      and never run (Django already drops those of a rolled-back savepoint; the rest are dropped here);
    * that outermost block always gets a savepoint, even when written ``atomic(savepoint=False)``
      (``audit_record``): in production it *is* the transaction and a failure rolls it back whole; in
      a test, without a savepoint, Django would instead mark the test's transaction for rollback and
      every later query of the test would fail.

    Nested blocks, savepoints and callbacks registered by callbacks behave as they do in Django (a
    callback that opens its own atomic block is handled by the same rules). Nothing happens on a
    connection without ``_from_testcase`` blocks: tests on ``transactional_db`` (threads, live server,
    subprocesses) commit for real and Django runs their callbacks itself.

    ``django_capture_on_commit_callbacks`` (the conftest wraps it in ``suspended()``) sees Django's
    plain TestCase behaviour again, so tests that want to inspect callbacks instead of running them can.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

# The logger Django uses for errors of robust callbacks (django/db/backends/base/base.py).
logger = logging.getLogger("django.db.backends.base")

TESTS = Path(__file__).resolve().parents[1]
# Tests that need real commits (``transactional_db``): another connection must see their data.
TRANSACTIONAL_MARKERS = ("postgres", "browser", "e2e")  # races across connections, browsers, processes
TRANSACTIONAL_DIRS = (TESTS / "browser", TESTS / "e2e")

_MARKS = "_tests_outermost_atomic_marks"  # per connection: [(block, depth, start index in run_on_commit)]


def needs_real_commits(item) -> bool:
    """The suite's rule (applied by tests/conftest.py): tests marked postgres, browser or e2e, and every
    test under tests/browser/ or tests/e2e/, run on ``transactional_db``."""
    path = Path(str(item.fspath)).resolve()
    return (any(item.get_closest_marker(name) for name in TRANSACTIONAL_MARKERS)
            or any(path.is_relative_to(directory) for directory in TRANSACTIONAL_DIRS))


class OnCommitExecutor:
    def __init__(self):
        self._suspended = 0

    @property
    def active(self) -> bool:
        return not self._suspended

    @contextmanager
    def suspended(self):
        """Plain Django TestCase behaviour inside the block (callbacks stay in ``run_on_commit``)."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1


def at_test_depth(connection) -> bool:
    """True when the only atomic blocks open on ``connection`` are the test's own."""
    blocks = connection.atomic_blocks
    return bool(blocks) and all(block._from_testcase for block in blocks)


def run_callbacks(callbacks) -> None:
    """Run ``(sids, func, robust)`` entries as ``run_and_clear_commit_hooks`` does after a commit."""
    for _sids, func, robust in callbacks:
        if robust:
            try:
                func()
            except Exception as error:
                logger.error(f"Error calling {func.__qualname__} in on_commit() during transaction (%s).",
                             error, exc_info=True)
        else:
            func()


def install(monkeypatch) -> OnCommitExecutor:
    """Patch ``on_commit`` and ``Atomic.__enter__/__exit__`` for one test (see the module docstring)."""
    executor = OnCommitExecutor()
    for alias in connections:  # no mark left over from an earlier test
        monkeypatch.setitem(connections[alias].__dict__, _MARKS, [])
    original_on_commit = BaseDatabaseWrapper.on_commit
    original_enter = transaction.Atomic.__enter__
    original_exit = transaction.Atomic.__exit__

    def on_commit(self, func, robust=False):
        if executor.active and at_test_depth(self):
            if not callable(func):
                raise TypeError("on_commit()'s callback must be a callable.")
            run_callbacks([(set(), func, robust)])  # autocommit in production: at once
            return
        original_on_commit(self, func, robust)

    def enter(self):
        connection = transaction.get_connection(self.using)
        if not (executor.active and not self._from_testcase and at_test_depth(connection)):
            return original_enter(self)
        # The production transaction: rolled back whole on failure (see above). An Atomic object may be
        # shared (a decorator's), but only this thread gets here: other threads' connections never have
        # the test's blocks, and the flag is restored before anything else runs in this thread.
        savepoint = self.savepoint
        self.savepoint = True
        try:
            original_enter(self)
        finally:
            self.savepoint = savepoint
        marks = connection.__dict__.setdefault(_MARKS, [])
        marks.append((self, len(connection.atomic_blocks), len(connection.run_on_commit)))

    def exit_(self, exc_type, exc_value, traceback):
        connection = transaction.get_connection(self.using)
        marks = connection.__dict__.get(_MARKS)
        if not (marks and marks[-1][0] is self and marks[-1][1] == len(connection.atomic_blocks)):
            return original_exit(self, exc_type, exc_value, traceback)
        _block, _depth, start = marks.pop()
        commits = exc_type is None and not connection.needs_rollback and not connection.closed_in_transaction
        try:
            original_exit(self, exc_type, exc_value, traceback)
        except BaseException:
            del connection.run_on_commit[start:]  # the "commit" failed: nothing of this block runs
            raise
        callbacks = connection.run_on_commit[start:]
        del connection.run_on_commit[start:]
        if commits:
            run_callbacks(callbacks)
        # Returning None: an exception of the block propagates, as with Django's own __exit__.

    monkeypatch.setattr(BaseDatabaseWrapper, "on_commit", on_commit)
    monkeypatch.setattr(transaction.Atomic, "__enter__", enter)
    monkeypatch.setattr(transaction.Atomic, "__exit__", exit_)
    return executor

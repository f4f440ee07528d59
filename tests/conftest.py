"""Suite-wide fixtures and hooks.

The database of a test
    Every test gets pytest-django's ``db``: it runs inside one transaction that is rolled back at the
    end, and ``transaction.on_commit`` callbacks run as in production, when the code's outermost atomic
    block commits, or at once outside any (tests/support/transactions.py explains how). So the mail a
    request causes is in ``mail.outbox`` right after the request, and nothing runs for a rolled-back block.

    Real commits (``transactional_db``: each test commits and the tables are emptied afterwards; slower)
    are for tests where another connection must see the data: other threads, the live server, other
    processes, a real browser. A test gets them when

    * it is marked ``postgres`` (the race tests: threads with connections of their own, row locks
      across connections), ``browser`` or ``e2e``, or lives under tests/browser/ or tests/e2e/
      (``needs_real_commits`` in tests/support/transactions.py, applied by the hook below);
    * it uses ``live_server`` (pytest-django's own rule);
    * or it asks: ``transactional_db`` in its signature or ``@pytest.mark.django_db(transaction=True)``
      (as tests/notifications/test_broker.py does: the task a commit publishes into Redis).

Helpers that tests import live in tests/support/; ``login``, ``link_token`` and ``last_mail_to`` are
still importable from here for tests written before the move.
"""

import uuid
from contextlib import contextmanager

import pytest
from django.db import connection
from rest_framework.test import APIClient

from config.celery import app as celery_app
from identity.services import keys
from notifications import services as outbox
from security import ratelimit
from security.app_settings import DEFAULT_RATE_LIMITS
from tests.factories import PASSWORD, UserFactory
from tests.support import transactions
from tests.support.auth import bearer, login
from tests.support.mail import last_mail_to, link_token

__all__ = ["last_mail_to", "link_token", "login"]  # re-exported: tests/support is their home

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # tryfirst: before pytest-django's own hook, which orders the tests by the database they use
    # (rolled-back ones first, then the transactional ones, as Django's runner does).
    for item in items:
        if transactions.needs_real_commits(item) and not item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.django_db(transaction=True))


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): SQLite serialises writers, so there is no race to prove")
    if item.get_closest_marker("redis"):
        from django.conf import settings

        if not settings.REDIS_URL:
            pytest.skip("needs Redis (set REDIS_URL)")


_DB_TIMEOUTS: dict = {}


def _db_timeouts(on: bool) -> None:
    """The suite runs as a web process (a 5 s statement timeout, config/settings.py); creating and
    dropping the test databases does not: DROP DATABASE waits for the last connections of threads and
    servers to go away, and both can take longer on a busy machine."""
    from django.db import connections

    for wrapper in connections.all():
        if wrapper.vendor != "postgresql":
            continue
        options = wrapper.settings_dict.setdefault("OPTIONS", {})
        saved = _DB_TIMEOUTS.setdefault(wrapper.alias, (options.get("options"),
                                                           wrapper.settings_dict.get("CLIENT_DEADLINE")))
        if on:
            if saved[0] is not None:
                options["options"] = saved[0]
            wrapper.settings_dict["CLIENT_DEADLINE"] = saved[1]
        else:
            options.pop("options", None)
            wrapper.settings_dict["CLIENT_DEADLINE"] = None
        wrapper.close()  # the next connection is made with these settings


@pytest.fixture(autouse=True)
def _celery_joins_allowed():
    """Celery's "a task is running: never wait for a result" flag is one global of the process, saved and
    restored by every eager task around its run (``Task.apply``). Eager tasks running at once in several
    threads (the race tests, the live server) can restore it out of order and leave it set, and then a later
    test's ``task.delay().get()`` raises "Never call result.get() within a task!". Each test starts clear."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    _db_timeouts(on=False)  # for creating the test databases


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    _db_timeouts(on=True)  # the tests: as in production
    yield
    _db_timeouts(on=False)  # for dropping them


@pytest.fixture
def on_commit_executor(db, monkeypatch):
    """Runs ``on_commit`` callbacks when the code's outermost atomic block commits (tests/support/
    transactions.py); a no-op under ``transactional_db``, where the commits are real."""
    return transactions.install(monkeypatch)


@pytest.fixture(autouse=True)
def _fast_hashing_and_eager_tasks(settings, db, on_commit_executor):
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain http; redirect tested on its own
    # Tasks run in-process so a test sees the mail its request caused; tests about the broker
    # itself (tests/notifications) switch this off and talk to the real Redis.
    celery_app.conf.task_always_eager = True
    # Rate limits: high for the suite (tests sign in many times from one address); counters of
    # each test under their own prefix (a shared Redis keeps them). tests/security uses the real ones.
    # The progressive login delay is off for the same reason (tests/security/test_login_delay.py turns it on).
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": dict.fromkeys(DEFAULT_RATE_LIMITS, "100000/m"),
                         "RATE_LIMIT_PREFIX": f"test.{uuid.uuid4().hex}", "LOGIN_DELAY_BASE_SECONDS": 0}
    # The audit trail's flood control counts in the cache too: each test its own counters.
    settings.AUDIT = {**getattr(settings, "AUDIT", {}), "FLOOD_PREFIX": f"test.audit.{uuid.uuid4().hex}"}
    keys._cache_clear()
    ratelimit._cache_failed_at[0] = float("-inf")  # no pause left over from a test that broke the cache
    outbox._broker_failed_at[0] = float("-inf")  # nor from one that broke the broker
    yield
    keys._cache_clear()


@pytest.fixture
def django_capture_on_commit_callbacks(on_commit_executor):
    """pytest-django's fixture, still usable: inside its ``with`` block callbacks are captured (and run
    only with ``execute=True``) as with Django's plain ``TestCase.captureOnCommitCallbacks``."""
    from django.db import DEFAULT_DB_ALIAS
    from django.test import TestCase

    @contextmanager
    def capture(*, using=DEFAULT_DB_ALIAS, execute=False):
        with on_commit_executor.suspended(), TestCase.captureOnCommitCallbacks(using=using,
                                                                                 execute=execute) as callbacks:
            yield callbacks

    return capture


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def tokens(api, user):
    return login(api, user.email)


@pytest.fixture
def authed(tokens):
    return bearer(tokens["accessToken"])

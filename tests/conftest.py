import re
import uuid

import pytest
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from config.celery import app as celery_app
from identity.services import keys
from security.app_settings import DEFAULT_RATE_LIMITS
from tests.factories import PASSWORD, UserFactory


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): SQLite serialises writers, so there is no race to prove")
    if item.get_closest_marker("redis"):
        from django.conf import settings

        if not settings.REDIS_URL:
            pytest.skip("needs Redis (set REDIS_URL)")


@pytest.fixture(autouse=True)
def _fast_hashing_and_eager_tasks(settings, transactional_db):
    # Real commits (transactional_db): mail goes out through transaction.on_commit as in production.
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
    yield
    keys._cache_clear()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def user(db):
    return UserFactory()


def login(api, email, password=PASSWORD, **extra):
    response = api.post("/api/v1/auth/login", {"email": email, "password": password, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def tokens(api, user):
    return login(api, user.email)


@pytest.fixture
def authed(tokens):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    return client


def link_token(message) -> str:
    """The token of the one link in a sent email."""
    match = re.search(r"\?token=([A-Za-z0-9_\-]+)", message.body)
    assert match, message.body
    return match.group(1)


def last_mail_to(address):
    sent = [m for m in mail.outbox if address in m.to]
    assert sent, f"no mail to {address}: {[m.to for m in mail.outbox]}"
    return sent[-1]

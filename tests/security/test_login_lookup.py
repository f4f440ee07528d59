"""security.lockout.login_lookup: the login's one statement, prepared once, reads what the ORM would read."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import User
from security.app_settings import app_settings
from security.lockout import _candidate, _plain_lookup, login_authenticate
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def attempt(email, ip, failures, *, age=timedelta(0), ua="ua"):
    """axes keeps one row per (account, address, user agent); attempt_time is set on create (auto_now_add)."""
    row = AccessAttempt.objects.create(username=email, ip_address=ip, failures_since_start=failures, user_agent=ua,
                                       get_data="", post_data="")
    AccessAttempt.objects.filter(pk=row.pk).update(attempt_time=timezone.now() - age)
    return row


def test_the_prepared_lookup_reads_the_failures_within_the_cool_off_and_any_record():
    user = UserFactory()
    now = timezone.now()
    assert _candidate(_plain_lookup(), {}, email=user.email, ip="203.0.113.5", now=now).failures == 0
    attempt(user.email, "203.0.113.5", 2)
    attempt(user.email, "203.0.113.5", 1, age=app_settings.LOCKOUT_DURATION + timedelta(minutes=1), ua="old")
    attempt(user.email, "198.51.100.7", 4)  # another address
    attempt("someone@example.com", "203.0.113.5", 4)  # another account
    found = _candidate(_plain_lookup(), {}, email=user.email, ip="203.0.113.5", now=now)
    assert (found.user.pk, found.failures, found.recorded) == (user.pk, 2, True)
    found = _candidate(_plain_lookup(), {}, email=user.email, ip="192.0.2.1", now=now)
    assert (found.failures, found.recorded) == (0, False)
    unknown = _candidate(_plain_lookup(), {}, email="nobody@example.com", ip="203.0.113.5", now=now)
    assert unknown.user is None and unknown.failures == 0


def test_a_request_without_an_address_is_read_by_the_orm():
    user = UserFactory()
    request = RequestFactory().post("/api/v1/auth/login")
    del request.META["REMOTE_ADDR"]
    assert login_authenticate(request=request, email=user.email, password=PASSWORD) == user
    assert isinstance(user, User)

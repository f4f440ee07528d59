"""Audit retention is the audit app's (issue 10): AUDIT["RETENTION_DAYS"], with the former
SECURITY["AUDIT_RETENTION_DAYS"] as its fallback; the security tokens and known devices are cleaned by a
task of their own."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit.app_settings import app_settings
from audit.models import AuditEvent, EventType
from audit.services import audit_record, audit_retention_enforce
from security.models import SecurityToken, SecurityTokenPurpose
from security.services import security_token_issue
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _every_row_written(settings):
    """Anonymous refusals in bulk: flood control would count most of them instead of writing them."""
    settings.AUDIT = {**settings.AUDIT, "FLOOD_CONTROL": False}


def write(n):
    return [audit_record(event=EventType.LOGIN_FAILED, success=False, n=i) for i in range(n)]


def test_retention_defaults_to_400_days(settings):
    settings.AUDIT = {k: v for k, v in settings.AUDIT.items() if k != "RETENTION_DAYS"}
    settings.SECURITY = {k: v for k, v in settings.SECURITY.items() if k != "AUDIT_RETENTION_DAYS"}
    assert app_settings.RETENTION == timedelta(days=400)


def test_audit_setting_wins_over_the_former_security_one(db, settings):
    settings.SECURITY = {**settings.SECURITY, "AUDIT_RETENTION_DAYS": 100}
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 10}
    assert app_settings.RETENTION == timedelta(days=10)
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=11)):
        write(2)
    write(1)
    assert audit_retention_enforce() == 2
    settings.AUDIT = {k: v for k, v in settings.AUDIT.items() if k != "RETENTION_DAYS"}
    assert app_settings.RETENTION == timedelta(days=100)


def test_security_tokens_cleanup_is_scheduled_and_leaves_the_audit_trail_alone(db, settings):
    from security.tasks import security_tokens_cleanup as task

    assert settings.CELERY_BEAT_SCHEDULE["security-tokens-cleanup"]["task"] == "security.tasks.security_tokens_cleanup"
    user = UserFactory()
    security_token_issue(user=user, purpose=SecurityTokenPurpose.UNLOCK, ttl=timedelta(hours=1))
    SecurityToken.objects.update(expires_at=timezone.now() - timedelta(days=2))
    with mock.patch("audit.services.timezone.now", return_value=timezone.now() - timedelta(days=500)):
        write(2)
    rows = AuditEvent.objects.count()
    task.delay()  # eager in tests
    assert not SecurityToken.objects.exists()
    assert AuditEvent.objects.count() == rows  # retention is audit.tasks.audit_retention_enforce's

"""The mail outbox: written encrypted in the caller's transaction, published after commit, body
erased once delivered, retried with backoff when the mail server fails, given up after MAX_ATTEMPTS."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from core.crypto import DecryptionError, decrypt_at_rest
from notifications import services
from notifications.models import OutboxMessage, OutboxStatus
from notifications.services import MAX_ATTEMPTS, PURPOSE, outbox_deliver, outbox_enqueue, outbox_flush

FAILING = "tests.notifications.backends.FailingSMTPBackend"


def _enqueue(recipient="ada@example.com"):
    return outbox_enqueue(kind="password_reset", recipient=recipient, subject="Reset your password",
                          template="password_reset",
                          context={"user": None, "link": "http://x/reset-password?token=SECRET-LINK-TOKEN",
                                   "minutes": 60})


@pytest.fixture
def published(monkeypatch):
    """Records publications instead of running the task, so a test sees when they happen."""
    calls = []
    monkeypatch.setattr("notifications.tasks.outbox_deliver.delay", lambda message_id: calls.append(message_id))
    return calls


def test_the_message_is_stored_encrypted(db, published):
    with transaction.atomic():
        message = _enqueue()
    stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.status == OutboxStatus.PENDING and stored.recipient == "ada@example.com"
    assert "SECRET-LINK-TOKEN" not in stored.payload_encrypted and "Reset" not in stored.payload_encrypted
    payload = json.loads(decrypt_at_rest(stored.payload_encrypted, purpose=PURPOSE, aad=str(stored.pk).encode()))
    assert payload["subject"] == "Reset your password" and "SECRET-LINK-TOKEN" in payload["body"]
    with pytest.raises(DecryptionError):  # bound to its row: cannot be moved to another message
        decrypt_at_rest(stored.payload_encrypted, purpose=PURPOSE, aad=b"another-id")


def test_published_only_after_commit(db, published):
    with transaction.atomic():
        message = _enqueue()
        assert published == []  # nothing leaves before the change is durable
    assert published == [message.pk]


def test_a_rolled_back_transaction_leaves_no_message_and_sends_nothing(db, published):
    with pytest.raises(RuntimeError), transaction.atomic():
        _enqueue()
        raise RuntimeError("the change failed")
    assert not OutboxMessage.objects.exists() and published == [] and mail.outbox == []


def test_a_failed_flow_sends_no_mail(api, user, monkeypatch):
    """forgot-password writes the mail, then its audit row; if that fails, no mail exists or goes out."""
    from audit import services as audit_services

    monkeypatch.setattr(audit_services._INSERT, "execute", lambda row, **k: (_ for _ in ()).throw(RuntimeError("down")))
    with pytest.raises(RuntimeError):
        api.post("/api/v1/auth/forgot-password", {"email": user.email}, format="json")
    assert not OutboxMessage.objects.exists() and mail.outbox == []


def test_delivery_sends_once_and_erases_the_body(db, published):
    message = _enqueue()
    assert outbox_deliver(message.pk) is True
    assert outbox_deliver(message.pk) is False  # already sent: nothing twice
    assert len(mail.outbox) == 1 and "SECRET-LINK-TOKEN" in mail.outbox[0].body
    stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.status == OutboxStatus.SENT and stored.sent_at is not None and stored.attempts == 1
    assert stored.payload_encrypted == ""
    assert stored.kind == "password_reset" and stored.recipient == "ada@example.com"  # metadata stays


def test_an_api_flow_delivers_through_the_task(api, user):
    """With the eager task (embedded default) the request's mail is delivered after commit."""
    mail.outbox.clear()
    api.post("/api/v1/auth/forgot-password", {"email": user.email}, format="json")
    assert len(mail.outbox) == 1
    message = OutboxMessage.objects.get()
    assert message.status == OutboxStatus.SENT and message.payload_encrypted == ""


def test_smtp_failure_retries_with_backoff(db, settings, published):
    settings.EMAIL_BACKEND = FAILING
    message = _enqueue()
    start = timezone.now()
    assert outbox_deliver(message.pk) is False
    stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.status == OutboxStatus.PENDING and stored.attempts == 1
    assert "SMTPServerDisconnected" in stored.last_error
    assert stored.payload_encrypted  # kept for the next attempt
    first_delay = stored.next_attempt_at - start
    assert timedelta(seconds=25) < first_delay <= timedelta(seconds=35)

    assert outbox_flush() == 0  # not due yet: the flush leaves it alone
    assert OutboxMessage.objects.get(pk=message.pk).attempts == 1

    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    start = timezone.now()
    outbox_flush()
    stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.attempts == 2
    assert stored.next_attempt_at - start > first_delay + timedelta(seconds=20)  # the wait grows

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_flush() == 1
    stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.status == OutboxStatus.SENT and stored.payload_encrypted == "" and stored.last_error == ""
    assert len(mail.outbox) == 1


def test_backoff_is_exponential_and_capped():
    delays = [services._backoff(n).total_seconds() for n in range(1, MAX_ATTEMPTS + 1)]
    assert delays[:4] == [30, 60, 120, 240]
    assert delays == sorted(delays) and max(delays) == 3600


def test_gives_up_after_max_attempts_and_erases_the_payload(db, settings, published):
    settings.EMAIL_BACKEND = FAILING
    message = _enqueue()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        outbox_flush()
        stored = OutboxMessage.objects.get(pk=message.pk)
        assert stored.attempts == attempt
        assert stored.status == (OutboxStatus.FAILED if attempt == MAX_ATTEMPTS else OutboxStatus.PENDING)
    assert stored.payload_encrypted == "" and "SMTPServerDisconnected" in stored.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_flush() == 0 and outbox_deliver(message.pk) is False and mail.outbox == []


def test_flush_delivers_every_due_message(db, published):
    messages = [_enqueue(f"u{i}@example.com") for i in range(3)]
    later = _enqueue("later@example.com")
    OutboxMessage.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert outbox_flush() == 3
    assert sorted(m.to[0] for m in mail.outbox) == sorted(m.recipient for m in messages)
    assert OutboxMessage.objects.get(pk=later.pk).status == OutboxStatus.PENDING


def test_outbox_flush_is_scheduled():
    import config.settings as production_settings

    schedule = {entry["task"]: entry["schedule"] for entry in production_settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["notifications.tasks.outbox_flush"] <= timedelta(minutes=5)

"""The mail outbox: a request writes the message durably, a task delivers it (with retries).

A request never fails and never loses mail because the broker or the mail server is down: the
row is committed with the change, the task is only published after commit, and the periodic
``outbox_flush`` picks up whatever was not delivered.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template import Context
from django.template.loader import get_template
from django.utils import timezone

from core import metrics
from core.crypto import decrypt_at_rest, encrypt_at_rest
from notifications.models import OutboxMessage, OutboxStatus
from notifications.text import SUBJECT_MAX, mail_context, mail_subject, single_line

logger = logging.getLogger(__name__)
PURPOSE = "notifications.outbox"
MAX_ATTEMPTS = 10


def outbox_enqueue(*, kind: str, recipient: str, subject: str, template: str, context: dict,
                   subject_values: dict | None = None) -> OutboxMessage:
    """Render ``templates/emails/<template>.txt`` and queue it. Call inside the caller's transaction.

    The one way user text enters a mail (notifications/text.py): ``subject`` is ours, with
    ``{placeholders}`` for ``subject_values`` (quoted, one line, capped); every string a template
    reads from ``context`` is made one line, capped and defanged. Mail is plain text: nothing is
    HTML-escaped (``O'Brien`` stays ``O'Brien``)."""
    body = render_mail(template, context)
    message = OutboxMessage(kind=kind, recipient=recipient)
    payload = json.dumps({"subject": mail_subject(subject, subject_values), "body": body}).encode()
    message.payload_encrypted = encrypt_at_rest(payload, purpose=PURPOSE, aad=str(message.pk).encode())
    message.save(force_insert=True)
    transaction.on_commit(lambda: _publish(message.pk))
    return message


def render_mail(template: str, context: dict) -> str:
    """A mail body: ``templates/emails/<template>.txt`` over ``mail_context(context)``, as plain text."""
    compiled = get_template(f"emails/{template}.txt").template  # the engine's Template: render unescaped
    return compiled.render(Context(mail_context(context), autoescape=False))


# After a failed publish, requests leave the broker alone for this long (the message stays queued and the
# periodic flush delivers it): a hung broker costs one socket timeout per pause and process, not one per
# request that sends mail (issue 17).
BROKER_PAUSE_SECONDS = 5.0
_broker_failed_at = [float("-inf")]


def _publish(message_id) -> None:
    # Function-local: notifications.tasks imports this module (the task calls the service back), so a
    # module-level import would be a cycle; the one allowed exception of the `acyclic` contract.
    from notifications.tasks import outbox_deliver

    if time.monotonic() - _broker_failed_at[0] < BROKER_PAUSE_SECONDS:
        return  # the broker failed a moment ago: the periodic flush delivers it
    try:
        outbox_deliver.delay(message_id)
    except Exception as exc:  # broker down: the periodic flush delivers it later
        _broker_failed_at[0] = time.monotonic()
        logger.warning("outbox: could not publish delivery of message %s; it stays queued (%s)", message_id,
                       type(exc).__name__)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def outbox_deliver(message_id) -> bool:
    """Send one message if it is still pending. Returns True when it was sent now."""
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status=OutboxStatus.PENDING)
            .first()
        )
        if message is None:
            return False
        try:
            payload = json.loads(decrypt_at_rest(message.payload_encrypted, purpose=PURPOSE,
                                                 aad=str(message.pk).encode()))
            # A subject queued before notifications/text.py existed is made one line here too.
            email = EmailMultiAlternatives(subject=single_line(payload["subject"], max_length=SUBJECT_MAX),
                                           body=payload["body"],
                                           from_email=settings.DEFAULT_FROM_EMAIL, to=[message.recipient])
            email.send()
        except Exception as exc:
            metrics.outbox_delivery_failed()
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxStatus.FAILED
                message.payload_encrypted = ""
            else:
                message.next_attempt_at = timezone.now() + _backoff(message.attempts)
            message.save(update_fields=["attempts", "last_error", "status", "next_attempt_at", "payload_encrypted"])
            logger.warning("outbox: delivery of message %s failed (attempt %s)", message.pk, message.attempts)
            return False
        message.status = OutboxStatus.SENT
        message.sent_at = timezone.now()
        message.attempts += 1
        message.payload_encrypted = ""  # the link inside is a secret: keep nothing once delivered
        message.last_error = ""
        message.save(update_fields=["status", "sent_at", "attempts", "payload_encrypted", "last_error"])
        return True


def outbox_flush(*, limit: int = 500) -> int:
    """Deliver every due message (the periodic task; also what catches up after a broker outage)."""
    sent = 0
    for message_id in OutboxMessage.objects.due().order_by("next_attempt_at").values_list("pk", flat=True)[:limit]:
        sent += outbox_deliver(message_id)
    return sent

"""The one way to write the audit trail: ``audit_record``, called inside the service's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from audit.chain import chain_lock_and_head, row_digest
from audit.models import AuditEvent, EventType
from core.request_meta import client_ip, user_agent

SECRET_KEY_PARTS = ("password", "token", "secret", "code", "key", "authorization", "cookie")
MASK = "********"


def _clean(value: Any, key: str = "") -> Any:
    """Make a context value JSON-safe and mask anything that looks like a secret."""
    if key and any(part in key.lower() for part in SECRET_KEY_PARTS) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_clean(v) for v in value]
    if isinstance(value, models.Model):
        return {"app": value._meta.app_label, "model": value._meta.model_name, "pk": str(value.pk)}
    if isinstance(value, uuid.UUID):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def email_mask(address: str) -> str:
    """``nia@example.com`` -> ``n***@example.com``: enough for the owner to recognise the address,
    not enough to read it (audit context of email changes, notices to the old address)."""
    local, _, domain = (address or "").rpartition("@")
    return f"{local[:1]}***@{domain}" if local and domain else MASK


def audit_record(
    *,
    event: EventType,
    request=None,
    actor=None,
    subject=None,
    session=None,
    organization=None,
    success: bool = True,
    **context: Any,
) -> AuditEvent:
    """Append one event. ``actor`` did it, ``subject`` is whom it concerns (defaults to the actor);
    ``session`` is a DeviceSession or its id, ``organization`` an Organization or its id. Context keys
    that name secrets are masked."""
    if subject is None:
        subject = actor
    session_id = getattr(session, "pk", session)
    row = AuditEvent(
        event=event,
        actor=actor if getattr(actor, "pk", None) else None,
        subject=subject if getattr(subject, "pk", None) else None,
        session_id=session_id,
        organization_id=getattr(organization, "pk", organization),
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        success=success,
        context=_clean(context),
    )
    # JSON round trip: the hash covers exactly what the database will give back.
    row.context = json.loads(json.dumps(row.context))
    with transaction.atomic(savepoint=False):
        # The lock is held until the caller's transaction commits: links follow id order.
        row.prev_hash = chain_lock_and_head()
        row.created_at = timezone.now()
        row.row_hash = row_digest(row, row.prev_hash)
        row.save(force_insert=True)
    return row

"""Shared pieces of the defenses: single-use link tokens, admin actions into the audit trail.
(Audit retention and a user's own security activity are the audit app's: audit/services.py,
audit/selectors.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.cleanup import delete_in_batches
from core.links import (
    ExpiredLinkToken,
    InvalidLinkToken,
    SupersededLinkToken,
    link_security_version,
    link_token_consume,
    link_token_issue,
    link_token_owner,
    same_security_state,
)
from security.models import SecurityToken


# The refusals of a security link are core.links' (the same codes and messages), under the names
# callers know; only the expiry message is shorter than an account link's (no "request a new one").
InvalidSecurityLink = InvalidLinkToken
SupersededSecurityLink = SupersededLinkToken
ExpiredSecurityLink = ExpiredLinkToken
EXPIRED_MESSAGE = "This link has expired."


def security_token_issue(*, user, purpose: str, ttl, **context) -> str:
    """A new single-use token (core.links.link_token_issue; call inside the caller's transaction); only
    the hash is stored. It carries the user's security version: a security-state change ends it
    (docs/security.md)."""
    return link_token_issue(SecurityToken, user=user, purpose=purpose, ttl=ttl, context=context,
                            security_version=link_security_version(user=user, purpose=purpose))


def security_token_owner(raw, purpose: str):
    """The user a security link token was mailed to (core.links.link_token_owner)."""
    return link_token_owner(SecurityToken, raw=raw, purpose=purpose)


def security_token_consume(*, raw: str, purpose: str) -> SecurityToken:
    """Spend a token exactly once (core.links.link_token_consume: a conditional UPDATE, so two racing
    requests cannot both win). A token issued before its user's last security-state change is refused
    like a used one."""
    return link_token_consume(SecurityToken, raw=raw, purpose=purpose, check=same_security_state,
                              expired_message=EXPIRED_MESSAGE)


def security_tokens_end(*, user) -> int:
    """Every pending unlock and "this wasn't me" link of ``user`` stops working (an email change undone:
    they may have been mailed to the address given up). Returns how many were pending."""
    return SecurityToken.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())


def admin_action_record(entry) -> None:
    """One audit row per Django admin add/change/delete (a LogEntry), e.g. on users and sessions."""
    from django.contrib.auth import get_user_model

    model = entry.content_type.model_class() if entry.content_type_id else None
    subject = None
    if model is get_user_model() and entry.object_id:
        subject = model.objects.filter(pk=entry.object_id).first()
    action = {1: "add", 2: "change", 3: "delete"}.get(entry.action_flag, str(entry.action_flag))
    audit_record(event=EventType.ADMIN_ACTION, actor=entry.user, subject=subject or entry.user,
                 action=action, object_model=model._meta.label if model else "",
                 object_id=entry.object_id or "", object_repr=entry.object_repr[:200],
                 change=entry.get_change_message()[:500])


def admin_bulk_deletion_record(*, request, model, deleted: list[tuple]) -> None:
    """Django logs a multi-object admin deletion with one bulk insert (no signal): audit each object.
    ``deleted`` holds (pk, repr, user_id) taken before the deletion."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    for pk, text, user_id in deleted:
        audit_record(event=EventType.ADMIN_ACTION, request=request, actor=request.user,
                     subject=User(pk=user_id) if user_id else request.user, action="delete",
                     object_model=model._meta.label, object_id=str(pk), object_repr=text[:200], change="Deleted.")


def security_tokens_cleanup(*, now: datetime | None = None) -> int:
    """Delete unlock / not-me tokens that stopped working more than a day ago."""
    cutoff = (now or timezone.now()) - timedelta(days=1)
    return (delete_in_batches(SecurityToken.objects.filter(expires_at__lt=cutoff))  # core/cleanup.py
            + delete_in_batches(SecurityToken.objects.filter(used_at__lt=cutoff)))

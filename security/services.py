"""Shared pieces of the defenses: single-use link tokens, admin actions into the audit trail.
(Audit retention and a user's own security activity are the audit app's: audit/services.py,
audit/selectors.py.)"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.errors import ApiError
from core.links import SECURITY_STATE_EXEMPT_PURPOSES, current_security_version
from core.tokens import hash_token
from security.models import SecurityToken


class InvalidSecurityLink(ApiError):
    status_code = 400
    default_code = "invalid_token"
    default_detail = "This link is invalid or has already been used."


class SupersededSecurityLink(InvalidSecurityLink):
    """Issued before its user's last security-state change: the same answer as a used link (the holder
    learns nothing about the account), a reason of its own in the audit trail."""

    audit_reason = "superseded"


class ExpiredSecurityLink(ApiError):
    status_code = 400
    default_code = "token_expired"
    default_detail = "This link has expired."


def security_token_issue(*, user, purpose: str, ttl, **context) -> str:
    """A new single-use token (call inside the caller's transaction); only the hash is stored. It
    carries the user's security version: a security-state change ends it (docs/security.md)."""
    now = timezone.now()
    raw = secrets.token_urlsafe(32)
    version = None if purpose in SECURITY_STATE_EXEMPT_PURPOSES else user.security_version
    SecurityToken.objects.create(user=user, purpose=purpose, token_hash=hash_token(raw), created_at=now,
                                 expires_at=now + ttl, context=context, security_version=version)
    return raw


def security_token_owner(raw, purpose: str):
    """The user a link token of ``purpose`` was mailed to (used, expired or superseded included), or
    None for a token never issued: a refused link is audited against the account it concerns."""
    if not isinstance(raw, str) or not raw:
        return None
    token = SecurityToken.objects.select_related("user").filter(token_hash=hash_token(raw), purpose=purpose).first()
    return token.user if token is not None else None


def security_token_consume(*, raw: str, purpose: str) -> SecurityToken:
    """Spend a token exactly once (conditional UPDATE: two racing requests cannot both win). A token
    issued before its user's last security-state change is refused like a used one."""
    now = timezone.now()
    token = SecurityToken.objects.select_related("user").filter(token_hash=hash_token(raw or ""),
                                                                purpose=purpose).first()
    if token is None or token.used_at is not None:
        raise InvalidSecurityLink()
    if token.expires_at <= now:
        raise ExpiredSecurityLink()
    spend = SecurityToken.objects.filter(pk=token.pk, used_at__isnull=True)
    if token.security_version is not None:
        if token.security_version != token.user.security_version:
            raise SupersededSecurityLink()
        spend = spend.filter(security_version=current_security_version())  # a change committed meanwhile
    if not spend.update(used_at=now):
        raise InvalidSecurityLink()
    token.used_at = now
    return token


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
    return SecurityToken.objects.filter(expires_at__lt=cutoff).delete()[0] + \
        SecurityToken.objects.filter(used_at__lt=cutoff).delete()[0]

"""One-time link tokens (the links mailed to people) and the public URL of a page.

A link token is a row of an app's model with the link-token shape: ``user`` (FK), ``purpose``,
``token_hash`` (unique), ``created_at``, ``expires_at`` and ``used_at`` (accounts.AccountToken,
security.SecurityToken). The raw token goes into the mail and is never stored: only its SHA-256
(core.tokens.hash_token). A token is spent exactly once, by a conditional UPDATE
(``... WHERE used_at IS NULL AND expires_at > now``), so two racing requests cannot both use it.

Call both functions inside the caller's transaction (the use case's ``atomic`` block): a token issued
in a transaction that rolls back never existed, and a token spent in one is unspent again.

Rules an owner adds (for example "a token dies with its user's next security-state change") are
expressed with the two hooks, without a second copy of issue/consume:

- at issue, ``**fields`` are stored on the row (``new_email=...``, ``context={...}``,
  ``security_version=user.security_version``);
- at use, ``check(token)`` runs on the loaded row (``user`` already joined) once it is known, unused
  and unexpired. It raises an ``ApiError`` to refuse, and it may return filter keyword arguments that
  the spending UPDATE must also match, so a change committed between the read and the UPDATE refuses
  too (the UPDATE then matches no row: ``InvalidLinkToken``)::

      def _same_security_state(token):
          if token.security_version is None:          # an exempt purpose
              return None
          if token.security_version != token.user.security_version:
              raise SupersededLinkToken()             # an InvalidLinkToken subclass
          return {"security_version": current_security_version()}   # a subquery, not a join

      link_token_consume(AccountToken, raw=raw, purpose=purpose, check=_same_security_state)

  (that rule is ``same_security_state`` below, with ``link_security_version`` for the issuing side.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse
from django.utils import timezone

from core.app_settings import AppSettings
from core.errors import ApiError
from core.tokens import hash_token

Token = TypeVar("Token", bound=models.Model)


class InvalidLinkToken(ApiError):
    """Unknown, already used, issued for another purpose, or superseded: one answer for all of them,
    so a holder learns nothing about the account."""

    status_code = 400
    default_code = "invalid_token"
    default_detail = "This link is invalid or has already been used."


class ExpiredLinkToken(ApiError):
    status_code = 400
    default_code = "token_expired"
    default_detail = "This link has expired. Request a new one."


def link_token_issue(model: type[Token], *, user, purpose: str, ttl: timedelta, supersede: bool = False,
                     now: datetime | None = None, **fields: Any) -> str:
    """Store a new single-use token of ``purpose`` for ``user``, valid for ``ttl``; return the raw
    token (for the link; only its hash is stored). ``supersede``: the user's earlier unused tokens of
    the same purpose stop working (they are marked used), so only the newest link works. ``fields``:
    what the row carries besides the link-token shape (model fields, e.g. ``new_email``, ``context``)."""
    now = now or timezone.now()
    if supersede:
        model.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(used_at=now)
    raw = secrets.token_urlsafe(32)
    model.objects.create(user=user, purpose=purpose, token_hash=hash_token(raw), created_at=now,
                         expires_at=now + ttl, **fields)
    return raw


def link_token_owner(model: type[Token], *, raw, purpose: str):
    """The user a link token of ``purpose`` was issued to (live, used, expired or superseded), or None for
    a token never issued: a refused link is audited against the account it concerns (never merely
    counted by the audit trail's flood control, which aggregates refusals that concern nobody known)."""
    if not isinstance(raw, str) or not raw:
        return None
    token = model.objects.select_related("user").filter(token_hash=hash_token(raw), purpose=purpose).first()
    return token.user if token is not None else None


def link_token_consume(model: type[Token], *, raw: str, purpose: str, now: datetime | None = None,
                       check: Callable[[Token], Mapping[str, Any] | None] | None = None,
                       expired_message: str | None = None) -> Token:
    """Spend the token ``raw`` of ``purpose`` exactly once and return its row (``user`` joined,
    ``used_at`` set).

    Refusals, in this order: no such token for this purpose, or already used: ``InvalidLinkToken``;
    past ``expires_at``: ``ExpiredLinkToken`` (``expired_message`` replaces its message); whatever
    ``check(token)`` raises (see the module docstring; what it returns narrows the UPDATE); lost the
    race to another request, or the row changed under ``check``'s filters: ``InvalidLinkToken``.
    A refused token is not spent."""
    now = now or timezone.now()
    token = model.objects.select_related("user").filter(
        token_hash=hash_token(raw if isinstance(raw, str) else ""), purpose=purpose
    ).first()
    if token is None or token.used_at is not None:
        raise InvalidLinkToken()
    if token.expires_at <= now:
        raise ExpiredLinkToken(expired_message)
    still = (check(token) if check is not None else None) or {}
    spent = model.objects.filter(pk=token.pk, used_at__isnull=True, expires_at__gt=now, **still).update(used_at=now)
    if not spent:
        raise InvalidLinkToken()
    token.used_at = now
    return token


def public_url(route_name: str, /, **query: Any) -> str:
    """The absolute URL of a page for a mail: ``AUTH_PUBLIC_URL`` + the route's path, plus
    ``?`` and the URL-encoded ``query`` when there is one: ``public_url("web-account-unlock",
    token=raw)`` -> ``https://auth.example.com/account/unlock?token=...``."""
    url = AppSettings().PUBLIC_URL.rstrip("/") + reverse(route_name)
    return f"{url}?{urlencode(query)}" if query else url


# --- the security version of link tokens (docs/security.md, "security state ends links") -----------------
# Link purposes whose tokens are issued without the security version, so no security-state change
# ends them: the undo link mailed to the old address after an email change must survive the new
# owner changing the password (that is the attacker it undoes). A purpose joins this set only with
# that reason written next to it.
SECURITY_STATE_EXEMPT_PURPOSES = frozenset({"email_change_revert"})


def current_security_version(user_field: str = "user_id") -> models.Subquery:
    """The security version of the row's user as a correlated subquery, for the conditional UPDATE that
    spends a link token: a change committed after the token was read still stops it. A subquery, not a
    join: with a join Django turns the UPDATE into ``id IN (SELECT ...)``, and PostgreSQL would not
    re-check ``used_at`` on the row it waited for, so racing requests could all spend one token."""
    user_model = get_user_model()
    return models.Subquery(user_model.objects.filter(pk=models.OuterRef(user_field)).values("security_version")[:1])


class SupersededLinkToken(InvalidLinkToken):
    """Issued before its user's last security-state change: the same answer as a used link (its holder
    learns nothing about the account), a reason of its own in the audit trail."""

    audit_reason = "superseded"


def link_security_version(*, user, purpose: str) -> int | None:
    """What a new token of ``purpose`` stores as ``security_version`` (``link_token_issue(...,
    security_version=...)``): the user's current version, or None for an exempt purpose."""
    return None if purpose in SECURITY_STATE_EXEMPT_PURPOSES else user.security_version


def same_security_state(token) -> dict[str, Any] | None:
    """The ``check`` of ``link_token_consume`` for tokens carrying a security version: a token issued
    before its user's last security-state change is refused (``SupersededLinkToken``), and the spending
    UPDATE re-checks the version through ``current_security_version`` (a change committed after the read
    refuses too). A token without a version (an exempt purpose) passes."""
    if token.security_version is None:
        return None
    if token.security_version != token.user.security_version:
        raise SupersededLinkToken()
    return {"security_version": current_security_version()}

"""Step-up: sensitive actions need a password entry (login or re-authentication) within
AUTH_REAUTH_MAX_AGE_SECONDS. Freshness is ``DeviceSession.reauthenticated_at``: set at login and by
POST reauthenticate, never bumped by ordinary activity or a token refresh.

One rule for the API and the pages: ``SensitiveAction`` is the one list of what needs step-up (docs/
security.md mirrors it, tests/security/test_step_up_rule.py drives every entry through the API and the
page), and every check goes through ``step_up_require`` / ``step_up_check`` with one of its names:

* an action that always needs it, checked where the request comes in: the DRF permission
  ``step_up_for(action, *methods)`` and the page decorator ``web.decorators.step_up(action)``;
* an action that needs it only in some cases (the owner role changes hands): the service decides
  inside its transaction with ``step_up_check`` and is wrapped in ``step_up_audited``; the API answers
  403 ``reauthentication_required``, a page sends the browser to /account/reauthenticate;
* Django admin actions on credentials call ``step_up_require`` and redirect the same way.

A request of None (management commands, internal calls) is not an interactive session: no step-up.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db import models, transaction
from django.http import HttpResponseRedirect
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.permissions import BasePermission

from audit.models import EventType
from audit.services import audit_record
from core.errors import ApiError
from security.app_settings import app_settings

# Where a page session without a DeviceSession keeps its last password entry (ISO 8601).
PAGE_SESSION_KEY = "mca_reauthenticated_at"


class SensitiveAction(models.TextChoices):
    """Every action that needs a fresh password entry, on the API and on the pages alike."""

    PASSWORD_CHANGE = "password.change", "Change the password"
    EMAIL_CHANGE = "email.change", "Change the email address"
    ACCOUNT_DELETE = "account.delete", "Delete the account"
    ORG_DELETE = "org.delete", "Delete an organization"
    # Who the owners are: make someone an owner, change an owner's role, remove an owner (leaving as an
    # owner too), invite someone as an owner.
    ORG_OWNERSHIP = "org.ownership", "Change who owns an organization"
    # A new client secret is shown (Django admin: create a service account, rotate its secret).
    SERVICE_ACCOUNT_SECRET = "service_account.secret", "Issue a service account secret"
    # Set up, confirm or remove an authenticator app, new recovery codes (two-factor; passkeys too).
    MFA_CHANGE = "mfa.change", "Change two-factor sign-in"
    # The same for an OpenID Connect client (Django admin: register a confidential client, rotate its secret).
    OIDC_CLIENT_SECRET = "oidc_client.secret", "Issue an OpenID Connect client secret"


class ReauthenticationRequired(ApiError):
    status_code = 403
    default_code = "reauthentication_required"
    default_detail = "Confirm your password to continue (POST /api/v1/auth/reauthenticate)."

    def __init__(self, *args, action: str = "", audited: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.action = action
        self.audited = audited


def request_reauthenticated_at(request) -> datetime | None:
    """The last password entry behind this request: its DeviceSession (bearer or cookie, or the
    browser's signed-in row on a page), or the page session's PAGE_SESSION_KEY."""
    session = getattr(getattr(request, "auth", None), "session", None)
    if session is None:
        session = getattr(request, "device_session", None)
    if session is None:
        browser = getattr(request, "browser", None)
        session = getattr(browser, "row", None) if browser is not None else None
    if session is not None:
        return session.reauthenticated_at
    page_session = getattr(request, "session", None)
    value = page_session.get(PAGE_SESSION_KEY) if page_session is not None else None
    return parse_datetime(value) if isinstance(value, str) else None


def reauth_fresh(reauthenticated_at: datetime | None, *, now: datetime | None = None) -> bool:
    if reauthenticated_at is None:
        return False
    now = now or timezone.now()
    return timedelta(0) <= now - reauthenticated_at <= app_settings.REAUTH_MAX_AGE


def reauth_is_fresh(request) -> bool:
    return reauth_fresh(request_reauthenticated_at(request))


def _refusal_record(request, action: str) -> None:
    user = getattr(request, "user", None)
    session = getattr(getattr(request, "auth", None), "session", None)
    if session is None:
        browser = getattr(request, "browser", None)
        session = getattr(browser, "row", None) if browser is not None else None
    with transaction.atomic():
        audit_record(event=EventType.REAUTHENTICATION_REQUIRED, request=request,
                     actor=user if getattr(user, "is_authenticated", False) else None, session=session,
                     success=False, action=f"{request.method} {request.path}", step_up=action)


def step_up_check(*, request, action: str) -> None:
    """Inside a service's transaction: raise ReauthenticationRequired (not audited yet: the
    transaction rolls back) unless the session is fresh; ``step_up_audited`` records it."""
    if request is not None and not reauth_is_fresh(request):
        raise ReauthenticationRequired(action=str(action), audited=False)


def step_up_require(*, request, action: str) -> None:
    """Outside a transaction (permissions, pages, admin): raise 403 reauthentication_required,
    audited now, unless the session is fresh."""
    if request is None or reauth_is_fresh(request):
        return
    _refusal_record(request, str(action))
    raise ReauthenticationRequired(action=str(action))


def step_up_audited(service):
    """Wrap a transactional service that calls ``step_up_check``: its refusal is audited after the
    rollback, in a transaction of its own (outermost decorator, above ``@transaction.atomic``)."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except ReauthenticationRequired as refused:
            if not refused.audited and kwargs.get("request") is not None:
                _refusal_record(kwargs["request"], refused.action)
                refused.audited = True
            raise

    return wrapper


def reauth_redirect(back: str) -> HttpResponseRedirect:
    """To the re-authentication page, and from there back to ``back``."""
    return HttpResponseRedirect("/account/reauthenticate?" + urlencode({"next": back}))


def step_up_redirect(*, request, action: str, back: str) -> HttpResponseRedirect | None:
    """Pages and the Django admin: None when the session is fresh; else the refusal is audited and the
    browser goes to /account/reauthenticate, then back to ``back``."""
    try:
        step_up_require(request=request, action=action)
    except ReauthenticationRequired:
        return reauth_redirect(back)
    return None


def reauth_require(*, request, action: str = "") -> None:
    """Raise 403 reauthentication_required (audited) unless the request's session is fresh."""
    step_up_require(request=request, action=action)


class StepUpPermission(BasePermission):
    """DRF permission: the view's ``action`` (a SensitiveAction) for ``methods`` (None: all) needs a
    fresh session. Put it after IsAuthenticated; build it with ``step_up_for``."""

    action: str = ""
    methods: frozenset | None = None

    def has_permission(self, request, view):
        if self.methods is None or request.method in self.methods:
            if getattr(request.user, "is_authenticated", False):
                step_up_require(request=request, action=self.action)
        return True


def step_up_for(action: SensitiveAction, *methods: str) -> type[StepUpPermission]:
    """The permission for ``action`` on some methods (none named: every method)."""
    return type(f"StepUp_{action.name}", (StepUpPermission,),
                {"action": action.value, "methods": frozenset(m.upper() for m in methods) or None})

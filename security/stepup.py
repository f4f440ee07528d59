"""Step-up: sensitive actions need a password entry (login or re-authentication) within
AUTH_REAUTH_MAX_AGE_SECONDS. Freshness is ``DeviceSession.reauthenticated_at``: set at login and by
POST reauthenticate, never bumped by ordinary activity or a token refresh.

API views use the permission ``RecentAuthentication`` (or ``recent_authentication_for("DELETE")``
for one method); pages call ``reauth_is_fresh(request)`` and send the browser to the re-auth page
when it is False; services may call ``reauth_require``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.permissions import BasePermission

from audit.models import EventType
from audit.services import audit_record
from core.errors import ApiError
from security.app_settings import app_settings

# Where a page session without a DeviceSession keeps its last password entry (ISO 8601).
PAGE_SESSION_KEY = "mca_reauthenticated_at"


class ReauthenticationRequired(ApiError):
    status_code = 403
    default_code = "reauthentication_required"
    default_detail = "Confirm your password to continue (POST /api/v1/auth/reauthenticate)."


def request_reauthenticated_at(request) -> datetime | None:
    """The last password entry behind this request: its DeviceSession (bearer or cookie), or the
    page session's PAGE_SESSION_KEY."""
    session = getattr(getattr(request, "auth", None), "session", None)
    if session is None:
        session = getattr(request, "device_session", None)
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


def reauth_require(*, request, action: str = "") -> None:
    """Raise 403 reauthentication_required (audited) unless the request's session is fresh."""
    if reauth_is_fresh(request):
        return
    user = getattr(request, "user", None)
    session = getattr(getattr(request, "auth", None), "session", None)
    audit_record(event=EventType.REAUTHENTICATION_REQUIRED, request=request,
                 actor=user if getattr(user, "is_authenticated", False) else None, session=session,
                 success=False, action=action or f"{request.method} {request.path}")
    raise ReauthenticationRequired()


class RecentAuthentication(BasePermission):
    """DRF permission: every method of the view needs a fresh session (put it after IsAuthenticated)."""

    methods: frozenset | None = None

    def has_permission(self, request, view):
        if self.methods is None or request.method in self.methods:
            if getattr(request.user, "is_authenticated", False):
                reauth_require(request=request)
        return True


def recent_authentication_for(*methods: str) -> type[RecentAuthentication]:
    """The permission for only some methods, e.g. ``recent_authentication_for("DELETE")``."""
    return type("RecentAuthenticationFor" + "".join(m.title() for m in methods), (RecentAuthentication,),
                {"methods": frozenset(m.upper() for m in methods)})

"""The one rule for "is this session usable now" (docs/api.md, "One rule for a usable session").

Pure: it reads the row it is given (with ``user`` and ``active_organization`` loaded) and the settings, runs no
query and writes nothing. The owner of the row applies a refusal (sessions_app.services.session_refusal_apply);
introspection only reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orgs.app_settings import app_settings as orgs_settings
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason

ORGANIZATION_REASONS = frozenset({"organization_max_lifetime", "organization_idle_timeout"})
_ORGANIZATION_MESSAGE = "This session has expired under your organization's session policy. Sign in again."


@dataclass(frozen=True)
class Refusal:
    reason: str  # the audit/refresh reason (stable: docs/api.md)
    code: str  # the 401 code every path answers
    message: str
    revoke_as: str | None = None  # the RevokeReason its owner applies; None: nothing to write
    context: dict = field(default_factory=dict)  # what the revocation's audit row records


def session_refusal(session: DeviceSession | None, now: datetime) -> Refusal | None:
    """Why ``session`` may not be used at ``now``, or None. ``None`` for the session means there is no row (an
    unknown ``sid``, a token whose ``sub`` does not match, a deleted user: the rows cascade). The checks, in order:
    missing, revoked, expired (the absolute cap included), user inactive, the global idle timeout, then the active
    organization's maximum lifetime and idle timeout."""
    if session is None:
        return Refusal("session_missing", "session_revoked", "The session of this token has ended. Sign in again.")
    if session.revoked_at is not None:
        return Refusal("revoked", "session_revoked", "This session has been signed out.")
    if session.expires_at <= now:
        return Refusal("expired", "session_expired", "This session has expired. Sign in again.")
    if not session.user.is_active:
        return Refusal("user_inactive", "session_revoked", "This account is disabled.")
    idle = app_settings.IDLE_TIMEOUT
    if idle is not None and now - session.last_activity_at > idle:
        return Refusal("idle_timeout", "session_revoked", "This session was signed out after a period of inactivity.",
                       revoke_as=RevokeReason.IDLE_TIMEOUT)
    organization = session.active_organization if session.active_organization_id else None
    if organization is not None:
        lifetime, org_idle = organization.max_session_lifetime_seconds, organization.idle_timeout_seconds
        limit = None
        if lifetime is not None and now - session.created_at > timedelta(seconds=lifetime):
            limit = "organization_max_lifetime"
        elif org_idle is not None and now - session.last_activity_at > timedelta(seconds=org_idle):
            limit = "organization_idle_timeout"
        if limit is not None:
            return Refusal(limit, "session_expired", _ORGANIZATION_MESSAGE, revoke_as=RevokeReason.ORGANIZATION_POLICY,
                           context={"organization": session.active_organization_id, "limit": limit})
    return None


def session_fresh_until(session: DeviceSession, now: datetime) -> datetime:
    """Until when a copy of ``session`` read at ``now`` (the browser's cookie cache) may answer without the row:
    the rule above must be judged again by then. Its expiry, its organization's maximum lifetime, and half of
    each idle timeout (activity on cache hits is not recorded, so the row must be seen again in time)."""
    ends = [session.expires_at]
    idle = app_settings.IDLE_TIMEOUT
    if idle is not None:
        ends.append(now + idle / 2)
    organization = session.active_organization if session.active_organization_id else None
    if organization is not None:
        if organization.max_session_lifetime_seconds is not None:
            ends.append(session.created_at + timedelta(seconds=organization.max_session_lifetime_seconds))
        if organization.idle_timeout_seconds is not None:
            ends.append(now + timedelta(seconds=organization.idle_timeout_seconds) / 2)
    return min(ends)


def session_policy_limits() -> dict[str, tuple[int, int]]:
    """The allowed range, in seconds, of each session-policy value: at least ORGS.POLICY_MIN_SECONDS, at
    most the longest the global rules allow (the absolute lifetime for the session age, the longest
    sliding lifetime for idleness)."""
    low = orgs_settings.POLICY_MIN_SECONDS
    return {
        "maxSessionLifetimeSeconds": (low, int(app_settings.ABSOLUTE_LIFETIME.total_seconds())),
        "idleTimeoutSeconds": (low, int(max(app_settings.LIFETIME, app_settings.REMEMBER_ME_LIFETIME).total_seconds())),
    }

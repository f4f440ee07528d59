"""Signing sessions out from the sessions list: one session (it ends with its device's lockout
exemption, security.lockout), or every other one ("sign out everywhere else": a security-state change
of the account, accounts.services.security_version_bump)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.services import security_version_bump
from security.lockout import known_devices_end
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import session_revoke, sessions_revoke_all


@transaction.atomic
def session_sign_out(*, user: User, session: DeviceSession, request=None) -> bool:
    """The user signs one of their sessions out from the sessions list: it ends, and so does the
    lockout exemption of the device that signed in with it. Returns False when it had ended already."""
    revoked = session_revoke(session=session, reason=RevokeReason.USER_REVOKED, request=request, actor=user)
    known_devices_end(user=user, session=session, reason=RevokeReason.USER_REVOKED)
    return revoked


@transaction.atomic
def sessions_sign_out_others(*, user: User, keep: DeviceSession | None, request=None) -> int:
    """"Sign out everywhere else": a security-state change. Every other session ends, every link token
    mailed so far stops working, and so does every known device except this one's. Returns how many
    sessions ended."""
    security_version_bump(user=user, keep_session=keep)  # the user row first: audit rows take the chain lock
    return sessions_revoke_all(user=user, reason=RevokeReason.OTHERS_REVOKED, request=request, actor=user,
                               keep=keep)

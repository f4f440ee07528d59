"""Deleting an account: the user row (accounts), the memberships it ends (orgs), its sessions
(sessions_app), the audit rows."""

from __future__ import annotations

from accounts.models import User
from audit.models import EventType
from audit.refusals import audited_refusals
from audit.services import audit_record
from orgs.services import memberships_end_for_account_deletion
from sessions_app.models import RevokeReason
from sessions_app.services import sessions_revoke_all


def user_delete(*, user: User, request=None) -> None:
    """Delete the account (the caller checks step-up): every session is revoked first, then the user
    row goes with its tokens and sessions; the audit trail stays (its rows have no FK constraint).
    The only owner of an organization is refused (409 ``last_owner``), nothing changes, and the
    refusal is audited (in its own transaction: the deletion's was rolled back)."""
    with audited_refusals(event=EventType.ACCOUNT_DELETE_REFUSED, request=request, actor=user, subject=user):
        User.objects.select_for_update().filter(pk=user.pk).first()  # row locks before the audit chain lock
        # Organizations locked before sessions; the only owner is refused here (SoleOwner: its audit row
        # names the organizations).
        memberships_end_for_account_deletion(user=user, request=request)
        sessions_revoke_all(user=user, reason=RevokeReason.USER_REVOKED, request=request, actor=user)
        audit_record(event=EventType.ACCOUNT_DELETED, request=request, actor=user, email=user.email)
        user.delete()

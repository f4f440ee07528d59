"""Incident response: the "this wasn't me" link of a new-sign-in or email-change mail (security's link
token) ends the account's sessions (sessions_app), disables its password and mails a reset (accounts),
undoing an email change first when the account moved away from the address the link was mailed to."""

from __future__ import annotations

from accounts.services import email_change_cancel_pending, password_forgot, user_security_state_save
from audit.models import EventType
from audit.refusals import audited_refusals
from audit.services import audit_record
from flows.email_change import email_change_revert_for_not_me
from security.models import SecurityTokenPurpose
from security.services import security_token_consume, security_token_owner
from sessions_app.models import RevokeReason
from sessions_app.services import sessions_revoke_all


def not_me_report(*, token: str, request=None):
    """"This wasn't me": end every session of the account, make the password unusable (the person
    who signed in knows it), end every other link token and known device (a security-state change),
    cancel a pending email change and mail a password-reset link. Returns the user. The reset goes only
    to the address the link was mailed to: if the account moved away from it since, the email change is
    undone first (flows.email_change.email_change_revert_for_not_me); if that cannot be done, no reset
    link is sent at all. One transaction; a refused link (unknown, used, expired, superseded) changes
    nothing and is audited (``auth.login.not_me_failed``, against the account it was mailed to)."""
    with audited_refusals(event=EventType.NOT_ME_FAILED, request=request,
                          subject=security_token_owner(token, SecurityTokenPurpose.NOT_ME)):
        return _not_me_report(token=token, request=request)


def _not_me_report(*, token: str, request=None):
    link = security_token_consume(raw=token, purpose=SecurityTokenPurpose.NOT_ME)
    user = link.user
    moved = email_change_revert_for_not_me(user=user, mailed_to=link.context.get("email", ""),
                                           link_issued_at=link.created_at, request=request)
    if moved == "restored":  # sessions, links, password and the reset were the revert's work
        audit_record(event=EventType.NOT_ME_REPORTED, request=request, actor=user, email_restored=True)
        return user
    user.set_unusable_password()  # row locks before the audit chain lock (see audit/chain.py)
    # Every other link (this one is spent) and every known device end; the reset link below is new.
    user_security_state_save(user=user, update_fields=["password", "updated_at"])
    cancelled = email_change_cancel_pending(user=user)
    revoked = sessions_revoke_all(user=user, reason=RevokeReason.USER_REVOKED, request=request, actor=user)
    audit_record(event=EventType.NOT_ME_REPORTED, request=request, actor=user, sessions_revoked=revoked,
                 email_changes_cancelled=cancelled, reset_sent=moved is None)
    if moved is None:
        password_forgot(email=user.email, request=request)
    return user

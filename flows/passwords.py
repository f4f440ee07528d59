"""Password reset, password change and re-authentication: the account's password (accounts), the
sessions they end or refresh (sessions_app), and for a reset the organizations of a business sign-up
(orgs)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.app_settings import app_settings
from accounts.models import TokenPurpose, User
from accounts.services import (
    InvalidCredentials,
    InvalidCurrentPassword,
    account_token_consume,
    account_token_find,
    password_changed_mail,
    password_validate,
    user_security_state_save,
)
from audit.models import EventType
from audit.refusals import audit_refusal, audited_refusals
from audit.services import audit_record
from core.errors import ApiError
from flows.two_factor import totp_reauthenticate_check
from mfa.services import MfaCodeInvalid, MfaNotEnabled, totp_enabled
from orgs.services import pending_organizations_create
from passkeys import services as passkeys
from passkeys.models import CeremonyKind
from passkeys.services import PasskeyInvalid
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import session_mark_reauthenticated, sessions_revoke_all


def password_reset(*, token: str, password: str, request=None) -> User:
    """Set a new password from a reset link: every session ends, the email counts as verified."""
    with audited_refusals(event=EventType.PASSWORD_RESET_FAILED, request=request) as scope:
        record = account_token_find(token, TokenPurpose.RESET_PASSWORD)
        if record is not None:
            scope.subject = record.user  # a refusal concerns the link's account
            password_validate(password, record.user, "password")  # before spending the token
        user = account_token_consume(token, TokenPurpose.RESET_PASSWORD).user
        user.set_password(password)
        user.email_verified_at = user.email_verified_at or timezone.now()
        # Every other link (the pending email change too) and every known device end with the password.
        user_security_state_save(user=user, update_fields=["password", "email_verified_at", "updated_at"])
        sessions_revoke_all(user=user, reason=RevokeReason.PASSWORD_RESET, request=request, actor=user)
        audit_record(event=EventType.PASSWORD_RESET_COMPLETED, request=request, actor=user)
        pending_organizations_create(user=user, request=request)  # a reset verifies the email too
        password_changed_mail(user)
        return user


def password_change(*, user: User, session: DeviceSession | None, current_password: str, new_password: str,
                    request=None) -> None:
    """Change the password: every other session ends; this one counts as freshly authenticated."""
    if not user.check_password(current_password):
        raise audit_refusal(InvalidCurrentPassword(fields={"currentPassword": ["The current password is incorrect."]}),
                            event=EventType.PASSWORD_CHANGE_FAILED, reason="invalid_password", request=request,
                            actor=user, session=session)
    try:
        password_validate(new_password, user, "newPassword")
    except ApiError as exc:
        audit_refusal(exc, event=EventType.PASSWORD_CHANGE_FAILED, reason="password_policy", request=request,
                      actor=user, session=session)
        raise
    with transaction.atomic():
        user.set_password(new_password)
        # Every link mailed so far and every known device end, except this device's (its session stays).
        user_security_state_save(user=user, update_fields=["password", "updated_at"], keep_session=session)
        sessions_revoke_all(user=user, reason=RevokeReason.PASSWORD_CHANGED, request=request, actor=user,
                            keep=session)
        if session is not None:
            session_mark_reauthenticated(session)
        audit_record(event=EventType.PASSWORD_CHANGED, request=request, actor=user, session=session)
        password_changed_mail(user)


def user_reauthenticate(*, user: User, session: DeviceSession, password: str = "", code: str = "",
                        ceremony_id=None, credential=None, request=None) -> datetime:
    """Confirm the password again, or (a user with TOTP) a code of the authenticator app, or a passkey
    (``ceremony_id`` of ``reauthenticate_passkey_options``, the assertion ``credential``); the session
    counts as fresh for AUTH_REAUTH_MAX_AGE_SECONDS. Returns the time until which it is fresh. A code is
    spent like at sign-in, and a wrong one counts in the account's budget of wrong codes; a refused
    passkey is 401 invalid_passkey (audited)."""
    method = "passkey" if ceremony_id is not None else "totp" if code else "password"
    if method == "passkey":
        return _reauthenticate_with_passkey(user=user, session=session, ceremony_id=ceremony_id,
                                            credential=credential, request=request)
    if code:
        if not totp_enabled(user):
            raise MfaNotEnabled("This account has no authenticator app: confirm with the password.")
        if not totp_reauthenticate_check(user=user, code=code, request=request):
            raise audit_refusal(MfaCodeInvalid(), event=EventType.REAUTHENTICATION_FAILED, reason="invalid_code",
                                request=request, actor=user, session=session)
    elif not user.check_password(password):
        raise audit_refusal(InvalidCredentials("The password is incorrect."), event=EventType.REAUTHENTICATION_FAILED,
                            reason="invalid_password", request=request, actor=user, session=session)
    with transaction.atomic():
        session_mark_reauthenticated(session)
        audit_record(event=EventType.REAUTHENTICATED, request=request, actor=user, session=session,
                     method=method)
    return session.reauthenticated_at + app_settings.REAUTH_MAX_AGE


def reauthenticate_passkey_options(*, user: User) -> passkeys.Options:
    """Request options for step-up with a passkey: ``user``'s passkeys only."""
    return passkeys.authentication_options(user=user)


def _reauthenticate_with_passkey(*, user: User, session: DeviceSession, ceremony_id, credential,
                                 request) -> datetime:
    try:
        ceremony = passkeys.ceremony_take(ceremony_id=ceremony_id, kind=CeremonyKind.AUTHENTICATION)
        if ceremony.user_id != user.pk:  # a passwordless or another user's ceremony
            raise PasskeyInvalid("ceremony", user=user)
        with transaction.atomic():
            passkey = passkeys.passkey_authenticate(ceremony=ceremony, credential=credential, user=user)
            session_mark_reauthenticated(session)
            audit_record(event=EventType.PASSKEY_USED, request=request, actor=user, session=session,
                         passkey=str(passkey.pk), use="step_up")
            audit_record(event=EventType.REAUTHENTICATED, request=request, actor=user, session=session,
                         method="passkey")
    except PasskeyInvalid as exc:
        with transaction.atomic():
            audit_record(event=EventType.PASSKEY_REFUSED, request=request, subject=user, session=session,
                         success=False, reason=exc.reason, use="step_up")
            audit_record(event=EventType.REAUTHENTICATION_FAILED, request=request, actor=user, session=session,
                         success=False, reason="invalid_passkey")
        raise
    return session.reauthenticated_at + app_settings.REAUTH_MAX_AGE

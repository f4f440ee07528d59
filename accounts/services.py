"""Account flows: register, verify, log in, reset and change passwords, change the email address,
profile, re-authentication.

Each flow validates, changes state, writes its audit row and queues its mail in one transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.app_settings import app_settings
from accounts.models import AccountToken, Role, TokenPurpose, User
from audit.models import EventType
from audit.services import audit_record, email_mask
from core.email import normalize_email
from core.errors import ApiError
from core.tokens import hash_token
from notifications.services import outbox_enqueue
from orgs.services import (
    memberships_end_for_account_deletion,
    pending_organization_store,
    pending_organizations_create,
)
from security.devices import login_seen_check
from security.lockout import login_authenticate
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import (
    TokenPair,
    session_create,
    session_mark_reauthenticated,
    session_revoke,
    sessions_revoke_all,
)


class InvalidCredentials(ApiError):
    status_code = 401
    default_code = "invalid_credentials"
    default_detail = "The email or password is incorrect."


class EmailNotVerified(ApiError):
    status_code = 403
    default_code = "email_not_verified"
    default_detail = "Verify your email address before signing in. We can send the link again."


class InvalidLinkToken(ApiError):
    status_code = 400
    default_code = "invalid_token"
    default_detail = "This link is invalid or has already been used."


class ExpiredLinkToken(ApiError):
    status_code = 400
    default_code = "token_expired"
    default_detail = "This link has expired. Request a new one."


def _password_errors(password: str, user, field: str) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ApiError("The password does not meet the policy.", code="validation_error",
                       fields={field: list(exc.messages)}) from None


def _link(path: str, raw_token: str) -> str:
    return f"{app_settings.PUBLIC_URL}/{path}?token={raw_token}"


def _token_issue(user: User, purpose: str, ttl, **fields) -> str:
    """A new single-use token; earlier unused tokens of the same purpose stop working. ``fields``:
    what the token carries (an email change's ``new_email`` and ``requested_session_id``)."""
    now = timezone.now()
    AccountToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(used_at=now)
    raw = secrets.token_urlsafe(32)
    AccountToken.objects.create(user=user, purpose=purpose, token_hash=hash_token(raw), created_at=now,
                                expires_at=now + ttl, **fields)
    return raw


def _token_consume(raw: str, purpose: str) -> AccountToken:
    """Spend a token exactly once (a conditional UPDATE, so two racing requests cannot both win)."""
    now = timezone.now()
    token = AccountToken.objects.select_related("user").filter(
        token_hash=hash_token(raw or ""), purpose=purpose
    ).first()
    if token is None or token.used_at is not None:
        raise InvalidLinkToken()
    if token.expires_at <= now:
        raise ExpiredLinkToken()
    if not AccountToken.objects.filter(pk=token.pk, used_at__isnull=True).update(used_at=now):
        raise InvalidLinkToken()
    token.used_at = now
    return token


def _send_verification(user: User) -> None:
    raw = _token_issue(user, TokenPurpose.VERIFY_EMAIL, app_settings.EMAIL_VERIFICATION_TTL)
    outbox_enqueue(kind="verify_email", recipient=user.email, subject="Confirm your email address",
                   template="verify_email", context={"user": user, "link": _link("verify-email", raw),
                                                     "hours": int(app_settings.EMAIL_VERIFICATION_TTL.total_seconds() // 3600)})


@transaction.atomic
def user_register(*, email: str, password: str, name: str, request=None) -> User | None:
    """Create an unverified account and mail a verification link. If the email is taken, mail the
    owner a notice instead; the caller answers the same either way (no enumeration), and the same
    argon2 work is done either way (no timing oracle). Returns the new user, or None."""
    email = normalize_email(email)
    candidate = User(email=email, name=name)
    _password_errors(password, candidate, "password")
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        make_password(password)  # same cost as creating the account
        outbox_enqueue(kind="account_exists", recipient=existing.email, subject="You already have an account",
                       template="account_exists", context={"user": existing,
                                                           "login_link": f"{app_settings.PUBLIC_URL}/login",
                                                           "reset_link": f"{app_settings.PUBLIC_URL}/forgot-password"})
        audit_record(event=EventType.REGISTER_EXISTING, request=request, subject=existing, success=False)
        return None
    candidate.role = Role.USER
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
    except IntegrityError:  # a concurrent registration of the same email won
        return None
    audit_record(event=EventType.USER_REGISTERED, request=request, actor=candidate)
    _send_verification(candidate)
    return candidate


@transaction.atomic
def user_register_b2b(*, email: str, password: str, name: str, organization_name: str, request=None) -> User | None:
    """``register`` for a business: the same answer and mail, and the organization to create with the
    user as owner once the email address is verified. Nothing is stored for a taken email."""
    user = user_register(email=email, password=password, name=name, request=request)
    if user is not None:
        pending_organization_store(user=user, name=organization_name)
    return user


def email_verify(*, token: str, request=None) -> User:
    try:
        with transaction.atomic():
            user = _token_consume(token, TokenPurpose.VERIFY_EMAIL).user
            if user.email_verified_at is None:
                user.email_verified_at = timezone.now()
                user.save(update_fields=["email_verified_at", "updated_at"])
            audit_record(event=EventType.EMAIL_VERIFIED, request=request, actor=user)
            pending_organizations_create(user=user, request=request)  # register-b2b
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        audit_record(event=EventType.EMAIL_VERIFICATION_FAILED, request=request, success=False, reason=exc.code)
        raise


@transaction.atomic
def verification_resend(*, email: str, request=None) -> None:
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None or user.email_verified:
        return
    _send_verification(user)
    audit_record(event=EventType.VERIFICATION_RESENT, request=request, subject=user)


def user_login(*, email: str, password: str, remember_me: bool = False, device_id: str = "",
               device_name: str = "", device_token: str = "", request=None) -> TokenPair:
    """Check the password (unknown emails cost the same argon2 work as wrong passwords), then open a
    device session. A correct password on an unverified account answers email_not_verified.
    Lockout (django-axes, 429 account_locked) and known devices (``device_token``): security/lockout.py."""
    email = normalize_email(email)
    user = login_authenticate(request=request, email=email, password=password, device_token=device_token)
    if user is None:
        subject = User.objects.filter(email=email).first()
        audit_record(event=EventType.LOGIN_FAILED, request=request, subject=subject, success=False,
                     reason="invalid_credentials", email=email[:254])
        raise InvalidCredentials()
    if not user.email_verified:
        audit_record(event=EventType.LOGIN_FAILED, request=request, subject=user, success=False,
                     reason="email_not_verified")
        raise EmailNotVerified()
    with transaction.atomic():
        # The user row first: audit rows take the chain lock (audit/chain.py), so row locks come before it.
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        pair = session_create(user=user, request=request, remember_me=remember_me, device_id=device_id,
                              device_name=device_name)
        audit_record(event=EventType.LOGIN_SUCCEEDED, request=request, actor=user, session=pair.session,
                     remember_me=remember_me)
        login_seen_check(user=user, session=pair.session, request=request)  # new device: mail + audit
    return pair


def session_logout(*, session: DeviceSession, request=None) -> None:
    with transaction.atomic():
        session_revoke(session=session, reason=RevokeReason.LOGOUT, request=request, actor=session.user)
        audit_record(event=EventType.LOGOUT, request=request, actor=session.user, session=session)


@transaction.atomic
def user_update(*, user: User, name: str, request=None) -> User:
    old = user.name
    user.name = name
    user.save(update_fields=["name", "updated_at"])
    audit_record(event=EventType.PROFILE_UPDATED, request=request, actor=user, changed=["name"],
                 old_name=old, new_name=name)
    return user


@transaction.atomic
def password_forgot(*, email: str, request=None) -> None:
    """Mail a reset link to an account, or a "no account here" notice to an unknown address, so the
    work and the answer are the same either way."""
    email = normalize_email(email)
    user = User.objects.filter(email=email, is_active=True).first()
    if user is None:
        outbox_enqueue(kind="reset_unknown", recipient=email, subject="Password reset requested",
                       template="password_reset_unknown",
                       context={"email": email, "register_link": f"{app_settings.PUBLIC_URL}/register"})
        audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, success=False,
                     reason="unknown_email", email=email[:254])
        return
    raw = _token_issue(user, TokenPurpose.RESET_PASSWORD, app_settings.PASSWORD_RESET_TTL)
    outbox_enqueue(kind="password_reset", recipient=user.email, subject="Reset your password",
                   template="password_reset",
                   context={"user": user, "link": _link("reset-password", raw),
                            "minutes": int(app_settings.PASSWORD_RESET_TTL.total_seconds() // 60)})
    audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, subject=user)


def _mail_password_changed(user: User) -> None:
    outbox_enqueue(kind="password_changed", recipient=user.email, subject="Your password was changed",
                   template="password_changed",
                   context={"user": user, "reset_link": f"{app_settings.PUBLIC_URL}/forgot-password",
                            "sessions_link": f"{app_settings.PUBLIC_URL}/account/sessions"})


def password_reset(*, token: str, password: str, request=None) -> User:
    """Set a new password from a reset link: every session ends, the email counts as verified."""
    try:
        with transaction.atomic():
            record = AccountToken.objects.select_related("user").filter(
                token_hash=hash_token(token or ""), purpose=TokenPurpose.RESET_PASSWORD
            ).first()
            if record is not None:
                _password_errors(password, record.user, "password")  # before spending the token
            user = _token_consume(token, TokenPurpose.RESET_PASSWORD).user
            user.set_password(password)
            user.email_verified_at = user.email_verified_at or timezone.now()
            user.save(update_fields=["password", "email_verified_at", "updated_at"])
            AccountToken.objects.filter(user=user, purpose=TokenPurpose.RESET_PASSWORD,
                                        used_at__isnull=True).update(used_at=timezone.now())
            sessions_revoke_all(user=user, reason=RevokeReason.PASSWORD_RESET, request=request, actor=user)
            audit_record(event=EventType.PASSWORD_RESET_COMPLETED, request=request, actor=user)
            pending_organizations_create(user=user, request=request)  # a reset verifies the email too
            _mail_password_changed(user)
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        audit_record(event=EventType.PASSWORD_RESET_FAILED, request=request, success=False, reason=exc.code)
        raise


class InvalidCurrentPassword(ApiError):
    status_code = 400
    default_code = "invalid_password"
    default_detail = "The current password is incorrect."


def password_change(*, user: User, session: DeviceSession | None, current_password: str, new_password: str,
                    request=None) -> None:
    """Change the password: every other session ends; this one counts as freshly authenticated."""
    if not user.check_password(current_password):
        audit_record(event=EventType.PASSWORD_CHANGE_FAILED, request=request, actor=user, session=session,
                     success=False, reason="invalid_password")
        raise InvalidCurrentPassword(fields={"currentPassword": ["The current password is incorrect."]})
    try:
        _password_errors(new_password, user, "newPassword")
    except ApiError:
        audit_record(event=EventType.PASSWORD_CHANGE_FAILED, request=request, actor=user, session=session,
                     success=False, reason="password_policy")
        raise
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password", "updated_at"])
        sessions_revoke_all(user=user, reason=RevokeReason.PASSWORD_CHANGED, request=request, actor=user,
                            keep=session)
        if session is not None:
            session_mark_reauthenticated(session)
        audit_record(event=EventType.PASSWORD_CHANGED, request=request, actor=user, session=session)
        _mail_password_changed(user)


def user_reauthenticate(*, user: User, session: DeviceSession, password: str, request=None) -> datetime:
    """Confirm the password again; the session counts as fresh for AUTH_REAUTH_MAX_AGE_SECONDS.
    Returns the time until which it is fresh."""
    if not user.check_password(password):
        audit_record(event=EventType.REAUTHENTICATION_FAILED, request=request, actor=user, session=session,
                     success=False, reason="invalid_password")
        raise InvalidCredentials("The password is incorrect.")
    with transaction.atomic():
        session_mark_reauthenticated(session)
        audit_record(event=EventType.REAUTHENTICATED, request=request, actor=user, session=session)
    return session.reauthenticated_at + app_settings.REAUTH_MAX_AGE


def account_tokens_cleanup(*, now: datetime | None = None) -> int:
    """Delete verification and reset tokens that stopped working more than TOKEN_CLEANUP_AFTER ago."""
    cutoff = (now or timezone.now()) - app_settings.TOKEN_CLEANUP_AFTER
    expired = AccountToken.objects.filter(expires_at__lt=cutoff).delete()[0]
    return expired + AccountToken.objects.filter(used_at__lt=cutoff).delete()[0]


def user_delete(*, user: User, request=None) -> None:
    """Delete the account (the caller checks step-up): every session is revoked first, then the user
    row goes with its tokens and sessions; the audit trail stays (its rows have no FK constraint).
    The only owner of an organization is refused (409 ``last_owner``), nothing changes, and the
    refusal is audited (in its own transaction: the deletion's was rolled back)."""
    from orgs.services import SoleOwner

    try:
        _user_delete(user=user, request=request)
    except SoleOwner as refused:
        with transaction.atomic():
            audit_record(event=EventType.ACCOUNT_DELETE_REFUSED, request=request, actor=user, subject=user,
                         success=False, reason=refused.default_code,
                         organizations=[str(o.pk) for o in refused.organizations])
        raise


@transaction.atomic
def _user_delete(*, user: User, request=None) -> None:
    User.objects.select_for_update().filter(pk=user.pk).first()  # row locks before the audit chain lock
    memberships_end_for_account_deletion(user=user, request=request)  # organizations locked before sessions
    sessions_revoke_all(user=user, reason=RevokeReason.USER_REVOKED, request=request, actor=user)
    audit_record(event=EventType.ACCOUNT_DELETED, request=request, actor=user, email=user.email)
    user.delete()


# --- email change (step-up; docs/security.md) ---------------------------------------------------------
class EmailTaken(ApiError):
    status_code = 409
    default_code = "email_taken"
    default_detail = "This email address belongs to another account now. Your email was not changed."


def _new_email_errors(new_email: str, user: User) -> None:
    try:
        validate_email(new_email)
    except DjangoValidationError:
        raise ApiError("The request has invalid fields.", code="validation_error",
                       fields={"newEmail": ["Enter a valid email address."]}) from None
    if new_email == user.email:
        raise ApiError("The request has invalid fields.", code="validation_error",
                       fields={"newEmail": ["This is already your email address."]})


def email_change_request(*, user: User, session: DeviceSession | None, new_email: str, password: str | None = None,
                         request=None) -> None:
    """Ask to move the account to ``new_email`` (the caller checked step-up). The new address gets a
    single-use confirmation link (only its hash is stored), or, if it already belongs to an account, a
    notice instead; the old address is told either way, with a "this wasn't me" link. The caller
    answers the same in both cases, and the requester's audit row looks the same too (no enumeration).
    ``password``, when given, must be the account's (400 invalid_password). A new request replaces
    every earlier pending one."""
    from security.app_settings import app_settings as security_settings
    from security.models import SecurityTokenPurpose
    from security.services import security_token_issue

    new_email = normalize_email(new_email)
    _new_email_errors(new_email, user)
    if password is not None and not user.check_password(password):
        audit_record(event=EventType.EMAIL_CHANGE_FAILED, request=request, actor=user, session=session,
                     success=False, reason="invalid_password")
        raise InvalidCurrentPassword("The password is incorrect.", fields={"password": ["The password is incorrect."]})
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # row locks before the audit chain lock
        owner = User.objects.filter(email=new_email).first()
        if owner is None:
            raw = _token_issue(user, TokenPurpose.CHANGE_EMAIL, app_settings.EMAIL_CHANGE_TTL, new_email=new_email,
                               requested_session_id=getattr(session, "pk", None))
            outbox_enqueue(kind="email_change_confirm", recipient=new_email, subject="Confirm your new email address",
                           template="email_change_confirm",
                           context={"user": user, "new_email": new_email, "link": _link("account/email/confirm", raw),
                                    "hours": int(app_settings.EMAIL_CHANGE_TTL.total_seconds() // 3600)})
        else:
            # What issuing a link does to earlier requests, so both cases leave the same state behind.
            AccountToken.objects.filter(user=user, purpose=TokenPurpose.CHANGE_EMAIL,
                                        used_at__isnull=True).update(used_at=timezone.now())
            outbox_enqueue(kind="email_change_taken", recipient=owner.email, subject="Your email address was entered",
                           template="email_change_taken",
                           context={"user": owner, "login_link": f"{app_settings.PUBLIC_URL}/login",
                                    "reset_link": f"{app_settings.PUBLIC_URL}/forgot-password"})
        not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME,
                                      ttl=security_settings.NOT_ME_TTL, session_id=str(getattr(session, "pk", "")))
        outbox_enqueue(kind="email_change_requested", recipient=user.email,
                       subject="Your email address is being changed", template="email_change_requested",
                       context={"user": user, "masked_new_email": email_mask(new_email), "time": timezone.now(),
                                "hours": int(app_settings.EMAIL_CHANGE_TTL.total_seconds() // 3600),
                                "not_me_link": f"{app_settings.PUBLIC_URL}/account/not-me?token={not_me}",
                                "sessions_link": f"{app_settings.PUBLIC_URL}/account/sessions"})
        # address_in_use is not among the details users see (security.serializers.VISIBLE_CONTEXT).
        audit_record(event=EventType.EMAIL_CHANGE_REQUESTED, request=request, actor=user, session=session,
                     new_email=email_mask(new_email), address_in_use=owner is not None)


def email_change_confirm(*, token: str, request=None) -> User:
    """Apply a confirmed change (the link mailed to the new address): the address must still be free
    (checked, and guarded by the unique constraint: 409 email_taken), it counts as verified now, every
    other link token of the account stops working, every session except the one that asked ends.
    Audited with both addresses masked; the old address is told. Atomic: a refusal changes nothing."""
    user_id = None
    try:
        with transaction.atomic():
            pending = AccountToken.objects.filter(token_hash=hash_token(token or ""),
                                                  purpose=TokenPurpose.CHANGE_EMAIL).values("user_id").first()
            user_id = pending and pending["user_id"]
            # The user row before the token row (the order of email_change_request), then the audit chain.
            user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first() if user_id else None
            record = _token_consume(token, TokenPurpose.CHANGE_EMAIL)
            if user is None or record.user_id != user.pk:
                raise InvalidLinkToken()
            old, new, now = user.email, record.new_email, timezone.now()
            if User.objects.filter(email=new).exclude(pk=user.pk).exists():
                raise EmailTaken()
            user.email, user.email_verified_at = new, now
            try:
                with transaction.atomic():
                    user.save(update_fields=["email", "email_verified_at", "updated_at"])
            except IntegrityError:  # taken by a concurrent registration or change (case-insensitive constraint)
                raise EmailTaken() from None
            # Links mailed to the old address (reset, verification) and other pending changes stop working.
            AccountToken.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
            keep = None
            if record.requested_session_id:
                keep = DeviceSession.objects.alive().filter(pk=record.requested_session_id, user=user).first()
            revoked = sessions_revoke_all(user=user, reason=RevokeReason.EMAIL_CHANGED, request=request, actor=user,
                                          keep=keep)
            audit_record(event=EventType.EMAIL_CHANGED, request=request, actor=user, session=keep,
                         old_email=email_mask(old), new_email=email_mask(new), sessions_revoked=revoked)
            outbox_enqueue(kind="email_changed", recipient=old, subject="Your email address was changed",
                           template="email_changed",
                           context={"user": user, "masked_new_email": email_mask(new), "time": now})
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        subject = User.objects.filter(pk=user_id).first() if user_id else None
        audit_record(event=EventType.EMAIL_CHANGE_FAILED, request=request, subject=subject, success=False,
                     reason=exc.code)
        raise


def email_change_cancel_pending(*, user: User) -> int:
    """Pending email changes stop working ("this wasn't me"). Returns how many were pending."""
    return AccountToken.objects.filter(user=user, purpose=TokenPurpose.CHANGE_EMAIL,
                                       used_at__isnull=True).update(used_at=timezone.now())

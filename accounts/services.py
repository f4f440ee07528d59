"""Account flows: register, verify, log in, reset and change passwords, change the email address,
profile, re-authentication.

Each flow validates, changes state, writes its audit row and queues its mail in one transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth.hashers import is_password_usable, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from accounts.app_settings import app_settings
from accounts.models import (
    SECURITY_STATE_EXEMPT_PURPOSES,
    AccountToken,
    Role,
    TokenPurpose,
    User,
    current_security_version,
)
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
from security.lockout import known_devices_end, known_devices_keep, login_authenticate
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


class SupersededLinkToken(InvalidLinkToken):
    """Issued before its user's last security-state change: the same answer as a used link (its holder
    learns nothing about the account), a reason of its own in the audit trail."""

    audit_reason = "superseded"


def _failure_reason(exc: ApiError) -> str:
    return getattr(exc, "audit_reason", exc.code)


class ExpiredLinkToken(ApiError):
    status_code = 400
    default_code = "token_expired"
    default_detail = "This link has expired. Request a new one."


class PasswordRequired(ApiError):
    status_code = 400
    default_code = "password_required"
    default_detail = "Choose the password of this account to finish confirming the address."


def _password_errors(password: str, user, field: str) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ApiError("The password does not meet the policy.", code="validation_error",
                       fields={field: list(exc.messages)}) from None


def _link(path: str, raw_token: str) -> str:
    return f"{app_settings.PUBLIC_URL}/{path}?token={raw_token}"


def _token_issue(user: User, purpose: str, ttl, *, replace: bool = True, **fields) -> str:
    """A new single-use token; earlier unused tokens of the same purpose stop working (``replace=False``
    keeps them: each email change keeps its own way back). ``fields``: what the token carries (an email
    change's ``new_email`` and ``requested_session_id``). It carries the user's security version too, so
    a security-state change ends it (security_version_bump), unless its purpose is in
    SECURITY_STATE_EXEMPT_PURPOSES."""
    now = timezone.now()
    if replace:
        AccountToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(used_at=now)
    raw = secrets.token_urlsafe(32)
    version = None if purpose in SECURITY_STATE_EXEMPT_PURPOSES else user.security_version
    AccountToken.objects.create(user=user, purpose=purpose, token_hash=hash_token(raw), created_at=now,
                                expires_at=now + ttl, security_version=version, **fields)
    return raw


def _token_consume(raw: str, purpose: str) -> AccountToken:
    """Spend a token exactly once (a conditional UPDATE, so two racing requests cannot both win). A
    token issued before its user's last security-state change is refused (SupersededLinkToken)."""
    now = timezone.now()
    token = AccountToken.objects.select_related("user").filter(
        token_hash=hash_token(raw or ""), purpose=purpose
    ).first()
    if token is None or token.used_at is not None:
        raise InvalidLinkToken()
    if token.expires_at <= now:
        raise ExpiredLinkToken()
    spend = AccountToken.objects.filter(pk=token.pk, used_at__isnull=True)
    if token.security_version is not None:
        if token.security_version != token.user.security_version:
            raise SupersededLinkToken()
        spend = spend.filter(security_version=current_security_version())  # a change committed meanwhile
    if not spend.update(used_at=now):
        raise InvalidLinkToken()
    token.used_at = now
    return token


def _token_owner(raw: str, purpose: str) -> User | None:
    """The account a link token (live, spent or expired) was issued to: a refusal of a known token
    concerns that account and is audited as its own (never merely counted by the audit trail's flood
    control, which only aggregates refusals that concern nobody known)."""
    return User.objects.filter(account_tokens__token_hash=hash_token(raw or ""),
                               account_tokens__purpose=purpose).first()


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
    revert = _revert_link_holding(email)
    if revert is not None:
        # The address an account just moved away from stays that account's while its way back is open:
        # an account registered on it (by anyone: it needs no proof) would block the revert.
        make_password(password)
        outbox_enqueue(kind="address_reserved", recipient=email, subject="This address is reserved for now",
                       template="address_reserved", context={"email": email, "until": revert.expires_at})
        audit_record(event=EventType.REGISTER_EXISTING, request=request, subject=revert.user, success=False,
                     reason="address_reserved")
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


def email_verify(*, token: str, password: str | None = None, request=None) -> User:
    """Confirm the address from the mailed link. An account that has never signed in gets its password
    here, from whoever opened the link (the holder of the address): ``password`` is required then
    (400 ``password_required``) and replaces the one given at registration, so a password chosen by
    someone who registered another person's address does not survive the verification. It is ignored
    for an account that has signed in before. Checked before the token is spent: a refusal keeps the
    link working. Creates the organizations of a ``register-b2b`` sign-up."""
    try:
        with transaction.atomic():
            record = AccountToken.objects.select_related("user").filter(
                token_hash=hash_token(token or ""), purpose=TokenPurpose.VERIFY_EMAIL).first()
            # No row lock needed: of racing requests only the one whose conditional UPDATE spends the
            # token goes on to set the password.
            sets_password = record is not None and record.user.last_login is None
            # A dead link answers invalid_token / token_expired (below) before any password question.
            if sets_password and record.used_at is None and record.expires_at > timezone.now():
                if not password:
                    raise PasswordRequired(fields={"password": ["Choose a password for this account."]})
                _password_errors(password, record.user, "password")
            user = _token_consume(token, TokenPurpose.VERIFY_EMAIL).user
            fields = ["updated_at"]
            if user.email_verified_at is None:
                user.email_verified_at = timezone.now()
                fields.append("email_verified_at")
            if sets_password:
                user.set_password(password)
                fields.append("password")
            if sets_password:  # a security-state change: links the registrant may hold end with it
                user_security_state_save(user=user, update_fields=fields)
            elif len(fields) > 1:
                user.save(update_fields=fields)
            audit_record(event=EventType.EMAIL_VERIFIED, request=request, actor=user, credentials_set=sets_password)
            pending_organizations_create(user=user, request=request)  # register-b2b
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        audit_record(event=EventType.EMAIL_VERIFICATION_FAILED, request=request, success=False, reason=_failure_reason(exc),
                     subject=_token_owner(token, TokenPurpose.VERIFY_EMAIL))
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
    user = login_authenticate(request=request, email=email, password=password, device_token=device_token,
                              device_id=device_id)
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
    """Sign this device out: its session ends, and so does the lockout exemption (known device) it got
    when it signed in."""
    with transaction.atomic():
        session_revoke(session=session, reason=RevokeReason.LOGOUT, request=request, actor=session.user)
        known_devices_end(user=session.user, session=session, reason=RevokeReason.LOGOUT)
        audit_record(event=EventType.LOGOUT, request=request, actor=session.user, session=session)


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
    _reset_link_send(user)
    audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, subject=user)


def _reset_link_send(user: User) -> None:
    """Mail a reset link to the account's address (earlier reset links stop working). The caller audits."""
    raw = _token_issue(user, TokenPurpose.RESET_PASSWORD, app_settings.PASSWORD_RESET_TTL)
    outbox_enqueue(kind="password_reset", recipient=user.email, subject="Reset your password",
                   template="password_reset",
                   context={"user": user, "link": _link("reset-password", raw),
                            "minutes": int(app_settings.PASSWORD_RESET_TTL.total_seconds() // 60)})


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
            # Every other link (the pending email change too) and every known device end with the password.
            user_security_state_save(user=user, update_fields=["password", "email_verified_at", "updated_at"])
            sessions_revoke_all(user=user, reason=RevokeReason.PASSWORD_RESET, request=request, actor=user)
            audit_record(event=EventType.PASSWORD_RESET_COMPLETED, request=request, actor=user)
            pending_organizations_create(user=user, request=request)  # a reset verifies the email too
            _mail_password_changed(user)
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        audit_record(event=EventType.PASSWORD_RESET_FAILED, request=request, success=False, reason=_failure_reason(exc),
                     subject=_token_owner(token, TokenPurpose.RESET_PASSWORD))
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
        # Every link mailed so far and every known device end, except this device's (its session stays).
        user_security_state_save(user=user, update_fields=["password", "updated_at"], keep_session=session)
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


def email_change_request(*, user: User, session: DeviceSession | None, new_email: str, password: str,
                         request=None) -> None:
    """Ask to move the account to ``new_email`` (the caller checked step-up). ``password`` must be the
    account's (400 invalid_password, audited, nothing sent): a fresh session alone is not enough, since
    the address is the recovery channel. The new address gets a single-use confirmation link (only its
    hash is stored), or, if it already belongs to an account, a notice instead; the old address is told
    either way, with a "this wasn't me" link. The caller answers the same in both cases, and the
    requester's audit row looks the same too (no enumeration). A new request replaces every earlier
    pending one."""
    from security.app_settings import app_settings as security_settings
    from security.models import SecurityTokenPurpose
    from security.services import security_token_issue

    if not user.check_password(password or ""):
        audit_record(event=EventType.EMAIL_CHANGE_FAILED, request=request, actor=user, session=session,
                     success=False, reason="invalid_password")
        raise InvalidCurrentPassword("The password is incorrect.", fields={"password": ["The password is incorrect."]})
    new_email = normalize_email(new_email)
    _new_email_errors(new_email, user)
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
        # ``email``: the address the link goes to. Opened after the change took effect, it undoes the
        # change instead of mailing a reset to the new address (email_change_revert_for_not_me).
        not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME,
                                      ttl=security_settings.NOT_ME_TTL, session_id=str(getattr(session, "pk", "")),
                                      email=user.email)
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
    other link token of the account stops working (except the ways back of earlier changes), every
    session except the one that asked ends. The old address is told, with a single-use link that undoes
    the change (email_change_revert). Audited with both addresses masked. Atomic: a refusal changes
    nothing."""
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
            # Links mailed to the old address (reset, verification) and other pending changes stop working;
            # not the exempt ones (an earlier change's undo link must outlive the next change, whoever holds
            # the new address must not end it).
            AccountToken.objects.filter(user=user, used_at__isnull=True).exclude(
                purpose__in=SECURITY_STATE_EXEMPT_PURPOSES).update(used_at=now)
            revert = _token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, app_settings.EMAIL_CHANGE_REVERT_TTL,
                                  replace=False, new_email=old)
            keep = None
            if record.requested_session_id:
                keep = DeviceSession.objects.alive().filter(pk=record.requested_session_id, user=user).first()
            revoked = sessions_revoke_all(user=user, reason=RevokeReason.EMAIL_CHANGED, request=request, actor=user,
                                          keep=keep)
            audit_record(event=EventType.EMAIL_CHANGED, request=request, actor=user, session=keep,
                         old_email=email_mask(old), new_email=email_mask(new), sessions_revoked=revoked)
            outbox_enqueue(kind="email_changed", recipient=old, subject="Your email address was changed",
                           template="email_changed",
                           context={"user": user, "masked_new_email": email_mask(new), "time": now,
                                    "revert_link": _link("account/email/revert", revert),
                                    "days": app_settings.EMAIL_CHANGE_REVERT_TTL.days})
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        subject = User.objects.filter(pk=user_id).first() if user_id else None
        audit_record(event=EventType.EMAIL_CHANGE_FAILED, request=request, subject=subject, success=False,
                     reason=_failure_reason(exc))
        raise


def email_change_cancel_pending(*, user: User) -> int:
    """Pending email changes stop working ("this wasn't me"). Returns how many were pending."""
    return AccountToken.objects.filter(user=user, purpose=TokenPurpose.CHANGE_EMAIL,
                                       used_at__isnull=True).update(used_at=timezone.now())


# --- undoing an email change (docs/security.md, "Hardening: email change and account verification") -------
class AddressNotRestorable(EmailTaken):
    default_detail = ("This address belongs to another account now, so it cannot be given back. Nothing was "
                      "changed; contact support.")


def _revert_link_holding(email: str) -> AccountToken | None:
    """The live revert link that will give ``email`` back to the account it was taken from, if any: until
    it is used or expires, the address stays reserved for that account."""
    return (AccountToken.objects.usable().select_related("user")
            .filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT, new_email=email).order_by("-created_at").first())


def email_change_revert(*, token: str, request=None) -> User:
    """The link mailed to the old address when a change was applied: give that address back. In one
    transaction the account gets the old address again (verified: the link proves it), its password
    becomes unusable (whoever made the change knows it), every session ends, every pending link ends
    (resets, verification, pending email changes, unlock and "this wasn't me" links, the ways back of
    later changes), and a reset link goes to the restored address. 409 email_taken when the address
    belongs to another account now (nothing changes, the link stays unspent). Audited either way."""
    user_id = None
    try:
        with transaction.atomic():
            pending = AccountToken.objects.filter(token_hash=hash_token(token or ""),
                                                  purpose=TokenPurpose.EMAIL_CHANGE_REVERT).values("user_id").first()
            user_id = pending and pending["user_id"]
            # The user row before the token row (every flow's order), then the audit chain.
            user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first() if user_id else None
            record = _token_consume(token, TokenPurpose.EMAIL_CHANGE_REVERT)
            if user is None or record.user_id != user.pk:
                raise InvalidLinkToken()
            _email_change_undo(user=user, record=record, request=request, via="revert_link")
            return user
    except ApiError as exc:  # the failed transaction rolled back; its audit row goes in after
        subject = User.objects.filter(pk=user_id).first() if user_id else None
        audit_record(event=EventType.EMAIL_CHANGE_REVERT_FAILED, request=request, subject=subject, success=False,
                     reason=exc.code)
        raise


def email_change_revert_for_not_me(*, user: User, mailed_to: str, link_issued_at: datetime,
                                   request=None) -> str | None:
    """A "this wasn't me" link proves the address it was mailed to (``mailed_to``; for links issued
    before it was recorded: the address the account had at ``link_issued_at``). If the account moved
    away from that address since, a reset must not go to the new one: the change is undone with that
    address's revert link, as email_change_revert does (call inside the report's transaction, before
    it locks anything else). Returns None when the address did not change (the caller mails the reset
    to it), ``"restored"``, or ``"unavailable"`` (no live revert link for it, or it belongs to another
    account now: then no reset link is sent anywhere)."""
    address = normalize_email(mailed_to) or _address_at(user, link_issued_at)
    if address == user.email:
        return None
    record = (AccountToken.objects.usable().filter(user=user, purpose=TokenPurpose.EMAIL_CHANGE_REVERT,
                                                   new_email=address).order_by("-created_at").first())
    if record is None:
        return "unavailable"
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()
            if not AccountToken.objects.filter(pk=record.pk, used_at__isnull=True).update(used_at=timezone.now()):
                return "unavailable"  # spent by a concurrent request
            _email_change_undo(user=user, record=record, request=request, via="not_me")
    except EmailTaken:
        user.refresh_from_db()
        return "unavailable"
    return "restored"


def _address_at(user: User, moment: datetime) -> str:
    """The address the account had at ``moment``: the one the first change after it replaced (each applied
    change leaves a revert link naming the address it replaced), else the current one."""
    first_change = (AccountToken.objects.filter(user=user, purpose=TokenPurpose.EMAIL_CHANGE_REVERT,
                                                created_at__gt=moment).order_by("created_at").first())
    return first_change.new_email if first_change is not None else user.email


def _email_change_undo(*, user: User, record: AccountToken, request, via: str) -> None:
    """The work of a revert (the caller locked the user row and spent ``record``): row locks first,
    then the sessions (each revocation writes its audit row), then the audit rows and mail."""
    from security.services import security_tokens_end

    restored, replaced, now = record.new_email, user.email, timezone.now()
    if User.objects.filter(email=restored).exclude(pk=user.pk).exists():
        raise AddressNotRestorable()
    previous = (user.email, user.email_verified_at, user.password)
    user.email, user.email_verified_at = restored, now
    user.set_unusable_password()
    try:
        with transaction.atomic():
            # a security-state change: known devices and versioned links end (the revert links are exempt)
            user_security_state_save(user=user, update_fields=["email", "email_verified_at", "password", "updated_at"])
    except IntegrityError:  # taken by a concurrent registration or change (case-insensitive constraint)
        user.email, user.email_verified_at, user.password = previous
        raise AddressNotRestorable() from None
    # Every pending link ends, except the ways back of earlier changes (they restore addresses held
    # before this one); the revert links of later changes (to addresses given up now) end too.
    links = AccountToken.objects.filter(user=user, used_at__isnull=True).exclude(
        purpose=TokenPurpose.EMAIL_CHANGE_REVERT, created_at__lt=record.created_at).update(used_at=now)
    links += security_tokens_end(user=user)
    _reset_link_send(user)  # to the restored address
    revoked = sessions_revoke_all(user=user, reason=RevokeReason.EMAIL_CHANGE_REVERTED, request=request, actor=user)
    audit_record(event=EventType.EMAIL_CHANGE_REVERTED, request=request, actor=user, via=via,
                 restored_email=email_mask(restored), replaced_email=email_mask(replaced), sessions_revoked=revoked,
                 links_ended=links)
    audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, subject=user, via=via)
    if replaced != restored:
        outbox_enqueue(kind="email_change_reverted", recipient=replaced,
                       subject="This address was removed from an account", template="email_change_reverted",
                       context={"user": user, "masked_restored_email": email_mask(restored), "time": now})


# --- security state (docs/security.md "Hardening: security state ends links, sessions and known devices") --
# A security-state change (a password reset, change or set by staff or a script, "this wasn't me",
# "sign out everywhere else", deactivation) advances User.security_version. Link tokens (AccountToken,
# security.SecurityToken) and known devices (security.KnownDevice) carry the version they were issued
# under and stop working once it moves on. Flows end sessions with their own rule and audit row; a
# password or deactivation saved anywhere else (the admin, ``changepassword``, a shell) is caught by the
# User save receivers (accounts/receivers.py) and ends every session, link and known device.

def security_version_bump(*, user: User, keep_session: DeviceSession | None = None) -> int:
    """Advance ``user``'s security version: every link token issued so far (except the purposes in
    SECURITY_STATE_EXEMPT_PURPOSES) and every known device stop working; the known devices of
    ``keep_session`` (the session a change keeps signed in) move to the new version. Sessions are the
    caller's to end. Call inside the caller's transaction, after spending the link that made the change
    and before issuing a new one. Returns the new version."""
    User.objects.filter(pk=user.pk).update(security_version=F("security_version") + 1)
    user.security_version = User.objects.filter(pk=user.pk).values_list("security_version", flat=True).get()
    if keep_session is not None:
        known_devices_keep(user=user, session=keep_session, from_version=user.security_version - 1,
                           to_version=user.security_version)
    return user.security_version


def user_security_state_save(*, user: User, update_fields: list[str], keep_session: DeviceSession | None = None) -> int:
    """Save a security-state change that the calling flow ends and audits itself (a password reset or
    change, "this wasn't me"): the save receiver stands aside (it would end every session and audit a
    second time), then the version advances (security_version_bump). Returns the new version."""
    user._security_state_flow = True
    try:
        user.save(update_fields=update_fields)
    finally:
        user._security_state_flow = False
    return security_version_bump(user=user, keep_session=keep_session)


_WATCHED_FIELDS = frozenset({"password", "is_active"})


def _is_hash_upgrade(user: User) -> bool:
    """``check_password`` re-hashing the same password (new hasher parameters): Django's own setter calls
    set_password, then clears ``_password`` because an upgrade is no password change."""
    return (user._password is None and getattr(user, "_password_hash_set", None) == user.password
            and is_password_usable(user.password))


def user_save_check(*, user: User, update_fields) -> None:
    """pre_save of User (accounts/receivers.py): note whether this save sets a password or deactivates
    the account outside a flow, for ``user_save_settle``. A full save never writes the security
    version (only security_version_bump moves it; a stale copy saved back must not revive old links)."""
    user._security_state_change = None
    if user._state.adding:
        return
    if update_fields is None:
        user.security_version = F("security_version")
    elif not _WATCHED_FIELDS & set(update_fields):
        return
    if getattr(user, "_security_state_flow", False):
        return
    stored = User.objects.filter(pk=user.pk).values("password", "is_active").first()
    if stored is None:
        return
    saves = _WATCHED_FIELDS if update_fields is None else _WATCHED_FIELDS & set(update_fields)
    if "is_active" in saves and stored["is_active"] and not user.is_active:
        user._security_state_change = "deactivated"
    elif "password" in saves and stored["password"] != user.password and not _is_hash_upgrade(user):
        user._security_state_change = "password"


def user_save_settle(*, user: User) -> None:
    """post_save of User: end what the change noted by ``user_save_check`` ends."""
    if isinstance(user.__dict__.get("security_version"), Combinable):
        del user.__dict__["security_version"]  # deferred: read again from the row when next used
    change = user.__dict__.pop("_security_state_change", None)
    if change is not None:
        _security_state_changed_outside_flows(user=user, change=change)


@transaction.atomic
def _security_state_changed_outside_flows(*, user: User, change: str) -> None:
    """A password set (or disabled) or the account deactivated by the admin's forms, ``changepassword``
    or a shell: everything a password reset ends ends here too (every session, link token and known
    device), audited as ``auth.password.set`` or ``auth.account.deactivated`` (the staff member, when
    the admin did it, is the actor of the ``admin.action`` row the admin writes next to it)."""
    security_version_bump(user=user)
    revoked = sessions_revoke_all(user=user, reason=RevokeReason.ADMIN)
    if change == "deactivated":
        audit_record(event=EventType.ACCOUNT_DEACTIVATED, subject=user, sessions_revoked=revoked)
    else:
        audit_record(event=EventType.PASSWORD_SET, subject=user, sessions_revoked=revoked,
                     usable=user.has_usable_password())

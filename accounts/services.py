"""Account services: register, resend the verification, profile, forgotten password, pending email
changes, link tokens, the security version. Use cases that span apps (login, verification, password
reset and change, email change, deletion) are in flows/ and call the public helpers here.

Each service validates, changes state, writes its audit row and queues its mail in one transaction.
"""

from __future__ import annotations

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
    AccountToken,
    Role,
    TokenPurpose,
    User,
)
from accounts.signals import security_state_changed
from audit.models import EventType
from audit.services import audit_record
from core.cleanup import delete_in_batches
from core.email import normalize_email
from core.errors import ApiError
from core.links import (  # noqa: F401  (the link errors are re-exported: callers import them from here)
    ExpiredLinkToken,
    InvalidLinkToken,
    SupersededLinkToken,
    link_security_version,
    link_token_consume,
    link_token_issue,
    link_token_owner,
    public_url,
    same_security_state,
)
from notifications.services import outbox_enqueue
from security.lockout import known_devices_keep


class InvalidCredentials(ApiError):
    status_code = 401
    default_code = "invalid_credentials"
    default_detail = "The email or password is incorrect."


class EmailNotVerified(ApiError):
    status_code = 403
    default_code = "email_not_verified"
    default_detail = "Verify your email address before signing in. We can send the link again."


class PasswordRequired(ApiError):
    status_code = 400
    default_code = "password_required"
    default_detail = "Choose the password of this account to finish confirming the address."


def password_validate(password: str, user, field: str) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ApiError("The password does not meet the policy.", code="validation_error",
                       fields={field: list(exc.messages)}) from None


def account_token_issue(user: User, purpose: str, ttl, *, replace: bool = True, **fields) -> str:
    """A new single-use token (core.links.link_token_issue); earlier unused tokens of the same purpose
    stop working (``replace=False`` keeps them: each email change keeps its own way back). ``fields``:
    what the token carries (an email change's ``new_email`` and ``requested_session_id``). It carries the
    user's security version too, so a security-state change ends it (security_version_bump), unless its
    purpose is in SECURITY_STATE_EXEMPT_PURPOSES."""
    return link_token_issue(AccountToken, user=user, purpose=purpose, ttl=ttl, supersede=replace,
                            security_version=link_security_version(user=user, purpose=purpose), **fields)


def account_token_consume(raw: str, purpose: str) -> AccountToken:
    """Spend a token exactly once (core.links.link_token_consume: a conditional UPDATE, so two racing
    requests cannot both win). A token issued before its user's last security-state change is refused
    (SupersededLinkToken)."""
    return link_token_consume(AccountToken, raw=raw, purpose=purpose, check=same_security_state)


def account_token_owner(raw: str, purpose: str) -> User | None:
    """The account a link token was issued to (core.links.link_token_owner)."""
    return link_token_owner(AccountToken, raw=raw, purpose=purpose)


def account_token_find(raw: str, purpose: str, *, usable: bool = False) -> AccountToken | None:
    """Read only: the token ``raw`` of ``purpose`` with its user, in any state (``usable=True``: only
    while unused and unexpired), or None. For what a flow checks before spending it; spend it with
    account_token_consume."""
    tokens = AccountToken.objects.usable() if usable else AccountToken.objects.all()
    return tokens.by_value(raw or "").filter(purpose=purpose).select_related("user").first()


def account_token_spend(token: AccountToken, *, now: datetime | None = None) -> bool:
    """Spend a token the caller has already chosen (not from a link: a flow picked it, e.g. the revert
    link of an address "this wasn't me" proves): a conditional UPDATE, False when a concurrent request
    spent it first."""
    return bool(AccountToken.objects.filter(pk=token.pk, used_at__isnull=True).update(used_at=now or timezone.now()))


def account_tokens_end(*, user: User, now: datetime | None = None, keep_purposes=(),
                       keep_reverts_before: datetime | None = None) -> int:
    """End (mark used) every unused link token of ``user``, except those of ``keep_purposes`` and the
    email-change revert links issued before ``keep_reverts_before``. Returns how many ended."""
    tokens = AccountToken.objects.filter(user=user, used_at__isnull=True).exclude(purpose__in=keep_purposes)
    if keep_reverts_before is not None:
        tokens = tokens.exclude(purpose=TokenPurpose.EMAIL_CHANGE_REVERT, created_at__lt=keep_reverts_before)
    return tokens.update(used_at=now or timezone.now())


def _send_verification(user: User) -> None:
    raw = account_token_issue(user, TokenPurpose.VERIFY_EMAIL, app_settings.EMAIL_VERIFICATION_TTL)
    hours = int(app_settings.EMAIL_VERIFICATION_TTL.total_seconds() // 3600)
    outbox_enqueue(kind="verify_email", recipient=user.email, subject="Confirm your email address",
                   template="verify_email", context={"user": user, "link": public_url("web-verify-email", token=raw),
                                                     "hours": hours})


@transaction.atomic
def user_register(*, email: str, password: str, name: str, request=None) -> User | None:
    """Create an unverified account and mail a verification link. If the email is taken, mail the
    owner a notice instead; the caller answers the same either way (no enumeration), and the same
    argon2 work is done either way (no timing oracle). Returns the new user, or None."""
    email = normalize_email(email)
    candidate = User(email=email, name=name)
    password_validate(password, candidate, "password")
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        make_password(password)  # same cost as creating the account
        outbox_enqueue(kind="account_exists", recipient=existing.email, subject="You already have an account",
                       template="account_exists", context={"user": existing,
                                                           "login_link": public_url("web-login"),
                                                           "reset_link": public_url("web-forgot-password")})
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
def verification_resend(*, email: str, request=None) -> None:
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None or user.email_verified:
        return
    _send_verification(user)
    audit_record(event=EventType.VERIFICATION_RESENT, request=request, subject=user)


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
                       context={"email": email, "register_link": public_url("web-register")})
        audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, success=False,
                     reason="unknown_email", email=email[:254])
        return
    password_reset_link_send(user)
    audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, subject=user)


def password_reset_link_send(user: User) -> None:
    """Mail a reset link to the account's address (earlier reset links stop working). The caller audits."""
    raw = account_token_issue(user, TokenPurpose.RESET_PASSWORD, app_settings.PASSWORD_RESET_TTL)
    outbox_enqueue(kind="password_reset", recipient=user.email, subject="Reset your password",
                   template="password_reset",
                   context={"user": user, "link": public_url("web-reset-password", token=raw),
                            "minutes": int(app_settings.PASSWORD_RESET_TTL.total_seconds() // 60)})


def password_changed_mail(user: User) -> None:
    outbox_enqueue(kind="password_changed", recipient=user.email, subject="Your password was changed",
                   template="password_changed",
                   context={"user": user, "reset_link": public_url("web-forgot-password"),
                            "sessions_link": public_url("web-account-sessions")})


class InvalidCurrentPassword(ApiError):
    status_code = 400
    default_code = "invalid_password"
    default_detail = "The current password is incorrect."


def account_tokens_cleanup(*, now: datetime | None = None) -> int:
    """Delete verification and reset tokens that stopped working more than TOKEN_CLEANUP_AFTER ago."""
    cutoff = (now or timezone.now()) - app_settings.TOKEN_CLEANUP_AFTER
    # In bounded batches, each its own short transaction (core/cleanup.py).
    return (delete_in_batches(AccountToken.objects.filter(expires_at__lt=cutoff))
            + delete_in_batches(AccountToken.objects.filter(used_at__lt=cutoff)))


# --- email change (step-up; docs/security.md) ---------------------------------------------------------
class EmailTaken(ApiError):
    status_code = 409
    default_code = "email_taken"
    default_detail = "This email address belongs to another account now. Your email was not changed."


def new_email_validate(new_email: str, user: User) -> None:
    try:
        validate_email(new_email)
    except DjangoValidationError:
        raise ApiError("The request has invalid fields.", code="validation_error",
                       fields={"newEmail": ["Enter a valid email address."]}) from None
    if new_email == user.email:
        raise ApiError("The request has invalid fields.", code="validation_error",
                       fields={"newEmail": ["This is already your email address."]})


def email_change_cancel_pending(*, user: User) -> int:
    """Pending email changes stop working ("this wasn't me"). Returns how many were pending."""
    return AccountToken.objects.filter(user=user, purpose=TokenPurpose.CHANGE_EMAIL,
                                       used_at__isnull=True).update(used_at=timezone.now())


# --- undoing an email change (docs/security.md, "Hardening: email change and account verification") -------
def email_change_revert_link(*, user: User, address: str) -> AccountToken | None:
    """The newest live revert link of ``user`` that gives ``address`` back, or None."""
    return (AccountToken.objects.usable().filter(user=user, purpose=TokenPurpose.EMAIL_CHANGE_REVERT,
                                                 new_email=address).order_by("-created_at").first())


def email_change_first_revert_after(*, user: User, moment: datetime) -> AccountToken | None:
    """The revert link of the first email change of ``user`` applied after ``moment`` (in any state): its
    ``new_email`` is the address the account had at ``moment``."""
    return (AccountToken.objects.filter(user=user, purpose=TokenPurpose.EMAIL_CHANGE_REVERT, created_at__gt=moment)
            .order_by("created_at").first())



def _revert_link_holding(email: str) -> AccountToken | None:
    """The live revert link that will give ``email`` back to the account it was taken from, if any: until
    it is used or expires, the address stays reserved for that account."""
    return (AccountToken.objects.usable().select_related("user")
            .filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT, new_email=email).order_by("-created_at").first())


# --- security state (docs/security.md "Hardening: security state ends links, sessions and known devices") --
# A security-state change (a password reset, change or set by staff or a script, "this wasn't me",
# "sign out everywhere else", deactivation) advances User.security_version. Link tokens (AccountToken,
# security.SecurityToken) and known devices (security.KnownDevice) carry the version they were issued
# under and stop working once it moves on. Flows end sessions with their own rule and audit row; a
# password or deactivation saved anywhere else (the admin, ``changepassword``, a shell) is caught by the
# User save receivers (accounts/receivers.py) and ends every link and known device here, every session
# through the ``accounts.signals.security_state_changed`` receiver of sessions_app.

def security_version_bump(*, user: User, keep_session=None) -> int:
    """Advance ``user``'s security version: every link token issued so far (except the purposes in
    SECURITY_STATE_EXEMPT_PURPOSES) and every known device stop working; the known devices of
    ``keep_session`` (a sessions_app DeviceSession a change keeps signed in) move to the new version.
    Sessions are the caller's to end. Call inside the caller's transaction, after spending the link that
    made the change and before issuing a new one. Returns the new version."""
    User.objects.filter(pk=user.pk).update(security_version=F("security_version") + 1)
    user.security_version = User.objects.filter(pk=user.pk).values_list("security_version", flat=True).get()
    if keep_session is not None:
        known_devices_keep(user=user, session=keep_session, from_version=user.security_version - 1,
                           to_version=user.security_version)
    return user.security_version


def user_security_state_save(*, user: User, update_fields: list[str], keep_session=None) -> int:
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
    # sessions_app ends every session (sessions_app/receivers.py); the row locks come before the audit row.
    answers = security_state_changed.send(sender=User, user=user, change=change)
    revoked = sum(answer for _, answer in answers if isinstance(answer, int))
    if change == "deactivated":
        audit_record(event=EventType.ACCOUNT_DEACTIVATED, subject=user, sessions_revoked=revoked)
    else:
        audit_record(event=EventType.PASSWORD_SET, subject=user, sessions_revoked=revoked,
                     usable=user.has_usable_password())

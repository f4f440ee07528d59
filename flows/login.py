"""Signing in: one state machine for every way in.

A first factor (the password: ``user_login``; a passkey: ``passkey_login``) proves who the user is;
``sign_in`` then decides, in one place, between **signed in** (a device session and its tokens) and
**second factor needed** (a challenge, no session: ``SecondFactorRequired``). A passkey with user
verification is two factors at once (something held, and the PIN or biometric that unlocked it: amr
``["hwk", "user", "mfa"]``), so it never gets a challenge. ``second_factor_verify`` answers the
challenge with a TOTP code, a recovery code or a passkey and ends in the same place. The API login, the /login page, the
"add account" sign-in and the OpenID Connect authorization endpoint (through the /login page) all go
through here, so none of them can hand out a session before the second factor.

Lock order (audit/chain.py): row locks (user, challenge, TOTP step, recovery code) before the audit rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import User
from accounts.services import EmailNotVerified, InvalidCredentials
from audit.models import EventType
from audit.services import audit_record
from core.email import normalize_email
from core.errors import ApiError
from mfa import services as mfa
from mfa.app_settings import app_settings as mfa_settings
from mfa.models import Channel, MfaChallenge
from notifications.services import outbox_enqueue
from core.links import public_url
from core.prepared import PreparedUpdate
from passkeys import services as passkeys
from passkeys.models import CeremonyKind
from passkeys.services import PasskeyInvalid
from security.devices import login_seen_check
from security.lockout import (
    login_lookup,
    login_authenticate,
    second_factor_failure_record,
    second_factor_locked_check,
    second_factor_reset,
)
from sessions_app.models import PASSWORD_AMR
from sessions_app.selectors import sessions_active_for
from sessions_app.services import TokenPair, last_active_membership, session_create

# RFC 8176: "hwk" a proof of possession of a hardware-held key, "user" the user was present (and
# verified: userVerification is required), "mfa" more than one factor.
PASSKEY_AMR = ("hwk", "user", "mfa")
SECOND_FACTOR_AMR = {"totp": ["pwd", "otp", "mfa"], "recovery_code": ["pwd", "otp", "mfa"],
                     "passkey": ["pwd", *PASSKEY_AMR]}


@dataclass(frozen=True)
class SecondFactorRequired:
    """The first factor passed; nothing is signed in until ``token`` is answered (``second_factor_verify``)."""

    token: str
    methods: list[str]
    expires_in: int
    user: User


@dataclass(frozen=True)
class SignedIn:
    """A finished sign-in: the session's pair, and the trusted-device token when one was asked for."""

    pair: TokenPair
    trusted_device_token: str = ""


def user_login(*, email: str, password: str, remember_me: bool = False, device_id: str = "",
               device_name: str = "", device_token: str = "", trusted_device_token: str = "",
               channel: str = Channel.API, request=None) -> TokenPair | SecondFactorRequired:
    """Check the password (unknown emails cost the same argon2 work as wrong passwords), then ``sign_in``.
    A correct password on an unverified account answers email_not_verified.
    Lockout (django-axes, 429 account_locked) and known devices (``device_token``): security/lockout.py."""
    email = normalize_email(email)
    if device_id:  # does this device have a live session to replace (session_create)? Read with the account.
        lookup, values = _sign_in_lookup_with_device(), {"device_id": device_id, "now": timezone.now()}
    else:
        lookup, values = _sign_in_lookup(), {}
    user = login_authenticate(request=request, email=email, password=password, device_token=device_token,
                              device_id=device_id, lookup=lookup, lookup_values=values)
    if user is None:
        subject = User.objects.filter(email=email).first()
        audit_record(event=EventType.LOGIN_FAILED, request=request, subject=subject, success=False,
                     reason="invalid_credentials", email=email[:254])
        raise InvalidCredentials()
    if not user.email_verified:
        audit_record(event=EventType.LOGIN_FAILED, request=request, subject=user, success=False,
                     reason="email_not_verified")
        raise EmailNotVerified()
    return sign_in(user=user, amr=PASSWORD_AMR, remember_me=remember_me, device_id=device_id,
                   device_name=device_name, trusted_device_token=trusted_device_token, channel=channel,
                   request=request)


@functools.cache
def _sign_in_users():
    """The account, loaded with what ``sign_in`` asks next (its second factors, the organization the new
    session starts in), in the statement that reads it and its lockout state (issue 15: a password login
    is at most 8 SQL statements, docs/benchmarks.md). Built once per process (never evaluated itself:
    every use filters a clone)."""
    return User.objects.annotate(**mfa.second_factor_presence(),
                                 last_active_membership=last_active_membership(OuterRef("pk")))


@functools.cache
def _sign_in_lookup():
    """The login's one statement (security.lockout.login_lookup), compiled once per process."""
    return login_lookup(_sign_in_users)


@functools.cache
def _sign_in_lookup_with_device():
    """The same, with whether the device (``deviceId``) has a live session of the account to replace."""
    return login_lookup(
        lambda device_id, now: _sign_in_users().annotate(
            device_live=Exists(sessions_active_for(OuterRef("pk"), now=now).filter(device_id=device_id))),
        device_id=(models.CharField(), "prepared:device-id"),
        now=(models.DateTimeField(), datetime(1901, 1, 3, tzinfo=UTC)))


def passkey_login(*, ceremony_id, credential, remember_me: bool = False, device_id: str = "",
                  device_name: str = "", channel: str = Channel.API, request=None) -> TokenPair:
    """Passwordless: a discoverable passkey answers a ceremony opened without a user
    (passkeys.services.authentication_options); its user is the passkey's, and the user handle must
    say the same. Right: ``sign_in`` with amr ``["hwk", "user", "mfa"]`` (no second factor asked).
    Anything wrong: 401 invalid_passkey, no session, a ``passkey.refused`` audit row."""
    try:
        ceremony = passkeys.ceremony_take(ceremony_id=ceremony_id, kind=CeremonyKind.AUTHENTICATION)
        if ceremony.user_id is not None:  # a second-factor or step-up ceremony does not sign in alone
            raise PasskeyInvalid("ceremony_of_other_use", user=ceremony.user)
        with transaction.atomic():
            passkey = passkeys.passkey_authenticate(ceremony=ceremony, credential=credential)
            user = passkey.user
            if not user.is_active or not user.email_verified:
                raise PasskeyInvalid("inactive", user=user)
            # "mfa" in amr: sign_in opens the session, never a challenge. Its row locks (the user's) come
            # before this audit row (the chain lock).
            pair = sign_in(user=user, amr=PASSKEY_AMR, remember_me=remember_me, device_id=device_id,
                           device_name=device_name, channel=channel, request=request)
            audit_record(event=EventType.PASSKEY_USED, request=request, actor=user, session=pair.session,
                         passkey=str(passkey.pk), use="sign_in")
    except PasskeyInvalid as exc:
        if exc.user is None:  # a spent or unknown ceremony: the row is about whoever's passkey answered
            exc.user = passkeys.credential_owner(credential)
        _passkey_refused(exc, use="sign_in", request=request)
        raise
    return pair


def _passkey_refused(exc: PasskeyInvalid, *, use: str, request) -> None:
    with transaction.atomic():
        audit_record(event=EventType.PASSKEY_REFUSED, request=request, subject=exc.user, success=False,
                     reason=exc.reason, use=use)


def sign_in(*, user: User, amr, remember_me: bool = False, device_id: str = "", device_name: str = "",
            trusted_device_token: str = "", channel: str = Channel.API,
            request=None) -> TokenPair | SecondFactorRequired:
    """The one decision after a first factor: a user with a second factor gets a challenge (no session,
    no token, no cookie), unless ``amr`` already has more than one factor (a passkey with user
    verification) or ``trusted_device_token`` is a live trusted device of this user. Everyone else is
    signed in: ``session_open``."""
    methods = [] if "mfa" in amr else mfa.second_factor_methods(user)
    if methods and trusted_device_token and _trusted_device_accepted(user=user, token=trusted_device_token,
                                                                     request=request):
        methods = []
    if not methods:
        return session_open(user=user, amr=amr, remember_me=remember_me, device_id=device_id,
                            device_name=device_name, request=request)
    with transaction.atomic():
        raw = mfa.challenge_open(user=user, channel=channel, amr=amr, remember_me=remember_me,
                                 device_id=device_id, device_name=device_name)
        audit_record(event=EventType.MFA_CHALLENGED, request=request, subject=user, methods=methods,
                     channel=str(channel))
    return SecondFactorRequired(token=raw, methods=methods, user=user,
                                expires_in=int(mfa_settings.CHALLENGE_TTL.total_seconds()))


def _trusted_device_accepted(*, user: User, token: str, request) -> bool:
    row = mfa.trusted_device_lookup(token)
    reason = mfa.trusted_device_refusal(row, user=user, now=timezone.now())
    with transaction.atomic():
        if reason is None:
            mfa.trusted_device_touch(row)
            audit_record(event=EventType.TRUSTED_DEVICE_USED, request=request, subject=user,
                         trusted_device=str(row.pk))
        else:
            audit_record(event=EventType.TRUSTED_DEVICE_REFUSED, request=request, subject=user, success=False,
                         reason=reason)
    return reason is None


_LAST_LOGIN = PreparedUpdate(User, where=("pk",), set=("last_login",))  # every sign-in (core/prepared.py)


def session_open(*, user: User, amr, remember_me: bool = False, device_id: str = "", device_name: str = "",
                 request=None, **audit_context) -> TokenPair:
    """Signed in: the device session and its first pair, the audit row, the new-device notice."""
    with transaction.atomic():
        # The user row first: audit rows take the chain lock (audit/chain.py), so row locks come before it.
        _LAST_LOGIN.execute((user.pk,), (timezone.now(),))
        pair = session_create(user=user, request=request, remember_me=remember_me, device_id=device_id,
                              device_name=device_name, amr=amr, device_live=getattr(user, "device_live", True))
        audit_record(event=EventType.LOGIN_SUCCEEDED, request=request, actor=user, session=pair.session,
                     remember_me=remember_me, amr=list(amr), **audit_context)
        login_seen_check(user=user, session=pair.session, request=request)  # new device: mail + audit
    return pair


def second_factor_verify(*, token: str, code: str = "", recovery_code: str = "", ceremony_id=None,
                         credential=None, trust_device: bool = False, channel: str = Channel.API,
                         request=None) -> SignedIn:
    """Answer a sign-in's challenge with a TOTP code, a recovery code, or a passkey (``ceremony_id`` of
    ``second_factor_passkey_options`` and the assertion ``credential``). Right: the challenge is spent,
    the session opens (amr says how), and with ``trust_device`` a trusted-device token comes back.
    Wrong: 401 invalid_mfa_code (a passkey: invalid_passkey, with a ``passkey.refused`` row too),
    counted against the challenge (dead after CHALLENGE_MAX_FAILURES) and against the account's own
    budget of wrong codes (security/lockout.py: 429 account_locked, mailed unlock). A dead, spent or
    unknown challenge: 401 mfa_token_invalid."""
    method = "passkey" if ceremony_id is not None else "recovery_code" if recovery_code else "totp"
    wrong = refusal = None
    try:
        ceremony = None
        if method == "passkey":  # spent now, in its own statement: single-use whatever follows
            try:
                ceremony = passkeys.ceremony_take(ceremony_id=ceremony_id, kind=CeremonyKind.AUTHENTICATION)
            except PasskeyInvalid:
                ceremony = None
        with transaction.atomic():
            challenge = mfa.challenge_lock(token, channel=channel)
            user = challenge.user
            second_factor_locked_check(user=user, request=request)
            if method == "passkey":
                refusal = _passkey_second_factor(ceremony=ceremony, credential=credential, user=user,
                                                 request=request)
                accepted = refusal is None
            else:
                accepted = (mfa.recovery_code_use(user=user, code=recovery_code) if recovery_code
                            else mfa.totp_code_use(user=user, code=code))
            if not accepted:
                wrong = challenge
                raise PasskeyInvalid("refused", user=user) if method == "passkey" else mfa.MfaCodeInvalid()
            mfa.challenge_spend(challenge)
            second_factor_reset(user=user)
            amr = _amr_after(challenge, method)
            audit_record(event=EventType.MFA_VERIFIED, request=request, actor=user, method=method)
            if recovery_code:
                left = mfa.recovery_codes_left(user)
                audit_record(event=EventType.RECOVERY_CODE_USED, request=request, actor=user, left=left)
                if left <= mfa_settings.RECOVERY_CODES_LOW:
                    _recovery_codes_low_mail(user, left)
            pair = session_open(user=user, amr=amr, remember_me=challenge.remember_me,
                                device_id=challenge.device_id, device_name=challenge.device_name,
                                request=request, second_factor=method)
            trusted = ""
            if trust_device:
                trusted = mfa.trusted_device_issue(user=user, request=request, label=challenge.device_name)
                audit_record(event=EventType.TRUSTED_DEVICE_ADDED, request=request, actor=user,
                             session=pair.session)
            return SignedIn(pair=pair, trusted_device_token=trusted)
    except ApiError as exc:  # rolled back: the refusal is written (and counted) in a transaction of its own
        _second_factor_refused(exc, token=token, wrong=wrong, method=method, refusal=refusal, request=request)
        raise


def second_factor_passkey_options(*, token: str, channel: str = Channel.API) -> passkeys.Options:
    """Request options for answering the challenge ``token`` with a passkey: only that user's passkeys
    are allowed, and the ceremony answers only for them. 401 mfa_token_invalid for a dead challenge."""
    with transaction.atomic():
        challenge = mfa.challenge_lock(token, channel=channel)
    return passkeys.authentication_options(user=challenge.user)


def _passkey_second_factor(*, ceremony, credential, user: User, request) -> PasskeyInvalid | None:
    """The passkey answer of a second factor: a ceremony opened for this user, a passkey of theirs.
    None when accepted; else the refusal (audited after the rollback, in _second_factor_refused)."""
    if ceremony is None or ceremony.user_id != user.pk:
        return PasskeyInvalid("ceremony", user=user)
    try:
        passkey = passkeys.passkey_authenticate(ceremony=ceremony, credential=credential, user=user)
    except PasskeyInvalid as exc:
        return exc
    audit_record(event=EventType.PASSKEY_USED, request=request, actor=user, passkey=str(passkey.pk),
                 use="second_factor")
    return None


def _amr_after(challenge: MfaChallenge, method: str) -> list[str]:
    first = [m for m in challenge.amr if m not in ("mfa",)]
    second = [m for m in SECOND_FACTOR_AMR[method] if m not in first and m != "mfa"]
    return [*first, *second, "mfa"]


def _second_factor_refused(exc: ApiError, *, token: str, wrong: MfaChallenge | None, method: str,
                           refusal: PasskeyInvalid | None, request) -> None:
    with transaction.atomic():
        if refusal is not None:
            audit_record(event=EventType.PASSKEY_REFUSED, request=request, subject=refusal.user, success=False,
                         reason=refusal.reason, use="second_factor")
        if wrong is not None:  # a wrong code: it counts against the challenge and the account
            left = mfa.challenge_fail(wrong)
            audit_record(event=EventType.MFA_FAILED, request=request, subject=wrong.user, success=False,
                         reason="invalid_passkey" if method == "passkey" else "invalid_code",
                         method=method, tries_left=left)
            second_factor_failure_record(user=wrong.user, request=request)
        else:
            audit_record(event=EventType.MFA_FAILED, request=request, subject=mfa.challenge_owner(token),
                         success=False, reason=exc.code, method=method)


def _recovery_codes_low_mail(user: User, left: int) -> None:
    outbox_enqueue(kind="recovery_codes_low", recipient=user.email,
                   subject="You are running out of recovery codes", template="recovery_codes_low",
                   context={"user": user, "left": left, "link": public_url("web-account-two-factor")})

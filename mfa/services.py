"""The second factor's own rows: set up and check TOTP, issue and spend recovery codes, trust a device,
open and spend a sign-in's challenge. Use cases that also end sessions or mail (turning TOTP on, signing
in) are flows (flows/two_factor.py, flows/login.py); the decision "is a second factor needed" is
``second_factor_methods``.

Every check that spends something is one conditional UPDATE, so concurrent requests cannot spend it
twice: a TOTP time step (``last_step < step``), a recovery code (``used_at IS NULL``), a challenge."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from pyotp.exceptions import OTPVerificationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from core.cleanup import delete_in_batches
from core.crypto import decrypt_at_rest, derive_key, encrypt_at_rest, key_encryption_root
from core.errors import ApiError
from core.request_meta import client_ip, device_label, user_agent
from core.tokens import hash_token
from mfa.app_settings import app_settings
from mfa.models import MfaChallenge, RecoveryCode, TotpDevice, TrustedDevice
from passkeys.services import passkeys_exist

TOTP_PURPOSE = "mfa.totp-secret"
RECOVERY_PURPOSE = "mfa.recovery-code"
CHALLENGE_PREFIX = "mfa_"
TRUSTED_PREFIX = "mtd_"
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper, typed on a phone


class MfaCodeInvalid(ApiError):
    status_code = 401
    default_code = "invalid_mfa_code"
    default_detail = "The code is not valid."


class MfaTokenInvalid(ApiError):
    status_code = 401
    default_code = "mfa_token_invalid"
    default_detail = "This sign-in has expired. Sign in again."


class TotpAlreadyEnabled(ApiError):
    status_code = 409
    default_code = "totp_already_enabled"
    default_detail = "Two-factor authentication is already on. Turn it off first to set up another app."


class TotpNotSetUp(ApiError):
    status_code = 409
    default_code = "totp_not_set_up"
    default_detail = "Start the setup first (POST mfa/totp/setup)."


class MfaNotEnabled(ApiError):
    status_code = 409
    default_code = "mfa_not_enabled"
    default_detail = "Two-factor authentication is not on."


# --- TOTP ----------------------------------------------------------------------------------------

def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)  # RFC 6238 defaults: SHA-1, 6 digits, 30 s


def _secret_encrypt(user, secret: str) -> str:
    return encrypt_at_rest(secret.encode(), purpose=TOTP_PURPOSE, aad=str(user.pk).encode())


def totp_secret(device: TotpDevice) -> str:
    return decrypt_at_rest(device.secret_encrypted, purpose=TOTP_PURPOSE, aad=str(device.user_id).encode()).decode()


def totp_device_of(user, *, confirmed: bool = True) -> TotpDevice | None:
    rows = TotpDevice.objects.filter(user=user)
    if confirmed:
        rows = rows.filter(confirmed_at__isnull=False)
    return rows.first()


def _confirmed_totp(user):
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False)


def totp_enabled(user) -> bool:
    return _confirmed_totp(user).exists()


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    otpauth_url: str


def totp_setup_start(*, user) -> TotpSetup:
    """A new secret for ``user``'s authenticator app, stored encrypted and not enforced until confirmed;
    a setup started earlier and never confirmed is replaced. 409 while TOTP is on."""
    if totp_enabled(user):
        raise TotpAlreadyEnabled()
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    TotpDevice.objects.update_or_create(user=user, defaults={
        "secret_encrypted": _secret_encrypt(user, secret), "created_at": timezone.now(), "confirmed_at": None,
        "last_step": 0, "last_used_at": None})
    url = _totp(secret).provisioning_uri(name=user.email, issuer_name=app_settings.ISSUER_NAME)
    return TotpSetup(secret=secret, otpauth_url=url)


def totp_setup_pending(*, user) -> TotpSetup | None:
    """The setup started and not confirmed yet (the page shows its QR code again), or None."""
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        return None
    secret = totp_secret(device)
    return TotpSetup(secret=secret, otpauth_url=_totp(secret).provisioning_uri(
        name=user.email, issuer_name=app_settings.ISSUER_NAME))


def totp_step_match(device: TotpDevice, code: str, *, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (one step of drift either way), or None."""
    if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    try:
        return _totp(totp_secret(device)).verify_and_get_timecode(
            code, for_time=now, valid_window=app_settings.TOTP_DRIFT_STEPS)
    except OTPVerificationError:
        return None


def totp_step_use(device: TotpDevice, step: int, *, now: datetime | None = None) -> bool:
    """Spend time step ``step``: True for the one request that advances ``last_step`` past it. The
    same code again, or an older one, finds ``last_step >= step`` and gets False (replay)."""
    now = now or timezone.now()
    return bool(TotpDevice.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step, last_used_at=now))


def totp_code_use(*, user, code: str, confirmed: bool = True) -> bool:
    """Check and spend a TOTP code of ``user``: True once per code (and never for an older one)."""
    device = totp_device_of(user, confirmed=confirmed) if confirmed else \
        TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        return False
    step = totp_step_match(device, code)
    return step is not None and totp_step_use(device, step)


def totp_confirm(*, user, code: str) -> bool:
    """Turn the pending setup on with its first code (spent like any other). False for a wrong code;
    409 without a pending setup, or when TOTP is already on."""
    if totp_enabled(user):
        raise TotpAlreadyEnabled()
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        raise TotpNotSetUp()
    step = totp_step_match(device, code)
    if step is None or not totp_step_use(device, step):
        return False
    return bool(TotpDevice.objects.filter(pk=device.pk, confirmed_at__isnull=True).update(confirmed_at=timezone.now()))


def totp_remove(*, user) -> bool:
    return bool(TotpDevice.objects.filter(user=user).delete()[0])


# --- recovery codes ------------------------------------------------------------------------------

def _recovery_normalize(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _recovery_hash(user_id, code: str) -> str:
    """A keyed hash (HMAC-SHA256 under a key derived from the at-rest root), bound to the user: a copy
    of the table alone cannot be brute-forced, and one code means nothing for another account."""
    key = derive_key(key_encryption_root(), purpose=RECOVERY_PURPOSE)
    return hmac.new(key, f"{user_id}:{_recovery_normalize(code)}".encode(), hashlib.sha256).hexdigest()


def _recovery_code_new() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))  # ~49 bits
    return f"{raw[:5]}-{raw[5:]}"


@transaction.atomic
def recovery_codes_issue(*, user) -> list[str]:
    """New recovery codes for ``user`` (shown once); every earlier code stops working."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = [_recovery_code_new() for _ in range(app_settings.RECOVERY_CODES)]
    RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_recovery_hash(user.pk, c)) for c in codes])
    return codes


def recovery_code_use(*, user, code: str) -> bool:
    """Spend a recovery code: True for exactly one request, however many send it at once."""
    if not isinstance(code, str) or not 8 <= len(_recovery_normalize(code)) <= 16:
        return False
    return bool(RecoveryCode.objects.filter(user=user, code_hash=_recovery_hash(user.pk, code),
                                            used_at__isnull=True).update(used_at=timezone.now()))


def recovery_codes_left(user) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def recovery_codes_remove(*, user) -> int:
    return RecoveryCode.objects.filter(user=user).delete()[0]


# --- what a sign-in needs ------------------------------------------------------------------------

SECOND_FACTOR_METHODS = ("totp", "recovery_code", "passkey")


def second_factor_presence() -> dict:
    """Annotations for a user lookup that answer ``second_factor_methods`` without a statement of its
    own (the password login loads the account with them: flows/login.py, issue 15)."""
    user = OuterRef("pk")
    return {"mfa_totp": Exists(_confirmed_totp(user)),
            "mfa_recovery_codes": Exists(RecoveryCode.objects.filter(user=user, used_at__isnull=True)),
            "mfa_passkeys": passkeys_exist(user)}  # a passkey is a second factor after a password too


def second_factor_methods(user) -> list[str]:
    """The second factors ``user`` can answer with, in the contract's order; empty: none needed.
    A user loaded with ``second_factor_presence`` costs no statement; any other one statement."""
    if not hasattr(user, "mfa_totp"):
        user = (type(user).objects.filter(pk=user.pk).annotate(**second_factor_presence())
                .only("pk").get())
    methods = []
    if user.mfa_totp:
        methods.append("totp")
        if user.mfa_recovery_codes:
            methods.append("recovery_code")
    if user.mfa_passkeys:
        methods.append("passkey")
    return methods


# --- trusted devices -----------------------------------------------------------------------------

def trusted_device_issue(*, user, request=None, label: str = "", now: datetime | None = None) -> str:
    """A trusted-device token for ``user`` (shown once; stored hashed), valid TRUST_MAX_AGE."""
    now = now or timezone.now()
    raw = TRUSTED_PREFIX + secrets.token_urlsafe(32)
    TrustedDevice.objects.create(
        user=user, token_hash=hash_token(raw), label=(label or device_label(user_agent(request)))[:128],
        ip_address=client_ip(request), security_version=user.security_version, created_at=now,
        expires_at=now + app_settings.TRUST_MAX_AGE)
    return raw


def trusted_device_refusal(row: TrustedDevice | None, *, user, now: datetime) -> str | None:
    """Why ``row`` does not skip ``user``'s second factor now, or None when it does."""
    if row is None:
        return "unknown"
    if row.user_id != user.pk:
        return "other_user"
    if row.revoked_at is not None:
        return row.revoked_reason or "revoked"
    if row.expires_at <= now:
        return "expired"
    if row.security_version != user.security_version:
        return "superseded"  # a password change or reset, "this wasn't me", a change of factors
    return None


def trusted_device_lookup(token: str) -> TrustedDevice | None:
    if not isinstance(token, str) or not token.startswith(TRUSTED_PREFIX) or len(token) > 128:
        return None
    return TrustedDevice.objects.filter(token_hash=hash_token(token)).first()


def trusted_device_touch(row: TrustedDevice, *, now: datetime | None = None) -> None:
    TrustedDevice.objects.filter(pk=row.pk).update(last_used_at=now or timezone.now())


def trusted_devices_of(user, *, now: datetime | None = None):
    """The live trusted devices of ``user``, newest first (what "Where you're signed in" lists)."""
    now = now or timezone.now()
    return (TrustedDevice.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now,
                                         security_version=user.security_version).order_by("-created_at"))


def trusted_device_revoke(*, user, device_id, reason: str = "user_revoked") -> bool:
    return bool(TrustedDevice.objects.filter(user=user, pk=device_id, revoked_at__isnull=True)
                .update(revoked_at=timezone.now(), revoked_reason=reason))


def trusted_devices_end(*, user, reason: str) -> int:
    return TrustedDevice.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason)


# --- challenges (a sign-in waiting for its second factor) ----------------------------------------

def challenge_open(*, user, channel: str, amr, remember_me: bool = False, device_id: str = "",
                   device_name: str = "", now: datetime | None = None) -> str:
    """The raw token of a new challenge (the ``mfaToken``, or the page's pending cookie)."""
    now = now or timezone.now()
    raw = CHALLENGE_PREFIX + secrets.token_urlsafe(32)
    MfaChallenge.objects.create(token_hash=hash_token(raw), user=user, channel=channel, amr=list(amr),
                                security_version=user.security_version, remember_me=remember_me,
                                device_id=device_id, device_name=device_name, created_at=now,
                                expires_at=now + app_settings.CHALLENGE_TTL)
    return raw


def challenge_lock(raw: str, *, channel: str, now: datetime | None = None) -> MfaChallenge:
    """The live challenge behind ``raw``, row-locked for this transaction (concurrent answers to one
    challenge take turns: the first right code spends it). 401 mfa_token_invalid for anything else:
    unknown, spent, expired, out of tries, opened on another channel, or superseded by a security-state
    change of the account since the password step."""
    now = now or timezone.now()
    if not isinstance(raw, str) or not raw.startswith(CHALLENGE_PREFIX) or len(raw) > 128:
        raise MfaTokenInvalid()
    row = (MfaChallenge.objects.select_for_update().select_related("user")
           .filter(token_hash=hash_token(raw), channel=channel).first())
    if (row is None or row.used_at is not None or row.expires_at <= now
            or row.failures >= app_settings.CHALLENGE_MAX_FAILURES
            or row.security_version != row.user.security_version or not row.user.is_active):
        raise MfaTokenInvalid()
    return row


def challenge_owner(raw: str):
    """Whose sign-in ``raw`` was (for the audit row of a refusal), or None."""
    if not isinstance(raw, str) or not raw.startswith(CHALLENGE_PREFIX) or len(raw) > 128:
        return None
    row = MfaChallenge.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    return row.user if row is not None else None


def challenge_fail(row: MfaChallenge) -> int:
    """Count a wrong code against the challenge; returns the tries left."""
    MfaChallenge.objects.filter(pk=row.pk).update(failures=F("failures") + 1)
    return max(0, app_settings.CHALLENGE_MAX_FAILURES - row.failures - 1)


def challenge_spend(row: MfaChallenge, *, now: datetime | None = None) -> bool:
    return bool(MfaChallenge.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now or timezone.now()))


def challenges_cleanup(*, now: datetime | None = None) -> int:
    return delete_in_batches(MfaChallenge.objects.filter(expires_at__lt=now or timezone.now()))  # core/cleanup.py


def trusted_devices_cleanup(*, now: datetime | None = None) -> int:
    """Trusted devices expired or ended more than a day ago (superseded ones at once: a version never
    goes back)."""
    cutoff = (now or timezone.now()) - timedelta(days=1)
    return (delete_in_batches(TrustedDevice.objects.filter(expires_at__lt=cutoff))
            + delete_in_batches(TrustedDevice.objects.filter(revoked_at__lt=cutoff))
            + delete_in_batches(TrustedDevice.objects.filter(security_version__lt=F("user__security_version"))))

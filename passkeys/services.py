"""Passkeys: the WebAuthn ceremonies (py_webauthn 3 verifies) and the user's list of passkeys. Use cases
that also change the account, sign in or mail (adding and removing a passkey, signing in with one) are
flows (flows/passkeys.py, flows/login.py).

Rules held here, for every ceremony:
* the challenge lives server-side (``WebAuthnCeremony``), is spent by one conditional UPDATE before its
  answer is looked at (single-use, even when the answer is wrong), expires after CEREMONY_TTL and
  answers only its own kind (and its own user, when it has one);
* exact origins (``ORIGINS``) and relying-party id (``RP_ID``); user verification required;
* the credential must be a passkey of the user the ceremony is for, and the user handle it answers with
  must be that same user's (an attacker's own credential with the victim's handle gets nothing);
* the signature counter may not go back or stand still when non-zero (py_webauthn), advanced by a
  conditional UPDATE (two concurrent assertions with one counter value: one wins).

Every refusal is ``PasskeyInvalid`` (``invalid_passkey``) with a ``reason`` for the audit row.
"""

from __future__ import annotations

import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Exists
from django.utils import timezone
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import generate_challenge, parse_authentication_credential_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts.models import User
from core.cleanup import delete_in_batches
from core.errors import ApiError
from passkeys.app_settings import app_settings
from passkeys.models import CeremonyKind, Passkey, WebAuthnCeremony

# EdDSA and ES256 (every passkey provider), RS256 (Windows Hello on older machines).
ALGORITHMS = [COSEAlgorithmIdentifier.EDDSA, COSEAlgorithmIdentifier.ECDSA_SHA_256,
              COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]
_TRANSPORTS = {t.value for t in AuthenticatorTransport}
_PARSE_ERRORS = (WebAuthnException, ValueError, TypeError, KeyError, binascii.Error)


class PasskeyInvalid(ApiError):
    """A passkey answer refused. ``reason`` goes to the audit row only (never to the client);
    ``user`` is whose passkey or ceremony it was, when known."""

    status_code = 401
    default_code = "invalid_passkey"
    default_detail = "This passkey could not be used. Try again."

    def __init__(self, reason: str, *, user=None, status_code: int | None = None):
        super().__init__(status_code=status_code)
        self.reason = reason
        self.user = user


class PasskeyLimitReached(ApiError):
    status_code = 409
    default_code = "passkey_limit_reached"
    default_detail = "You have too many passkeys. Remove one first."


def user_handle(user) -> bytes:
    """The WebAuthn user handle of ``user``: its id's 16 bytes (random, no personal data)."""
    return user.pk.bytes


# --- ceremonies ----------------------------------------------------------------------------------

def _ceremony_open(*, kind: str, user=None, now: datetime | None = None) -> WebAuthnCeremony:
    now = now or timezone.now()
    return WebAuthnCeremony.objects.create(kind=kind, user=user, challenge=generate_challenge(), created_at=now,
                                           expires_at=now + app_settings.CEREMONY_TTL)


def ceremony_take(*, ceremony_id, kind: str, now: datetime | None = None) -> WebAuthnCeremony:
    """Spend the live ceremony ``ceremony_id`` of ``kind`` (one conditional UPDATE: only one request ever
    gets it) and return it. PasskeyInvalid("ceremony") for an unknown, spent, expired or other-kind one."""
    now = now or timezone.now()
    try:
        pk = uuid.UUID(str(ceremony_id))
    except ValueError:
        raise PasskeyInvalid("ceremony") from None
    taken = WebAuthnCeremony.objects.filter(pk=pk, kind=kind, used_at__isnull=True, expires_at__gt=now) \
        .update(used_at=now)
    if not taken:
        owner = WebAuthnCeremony.objects.filter(pk=pk).values_list("user", flat=True).first()
        raise PasskeyInvalid("ceremony", user=_user(owner))
    return WebAuthnCeremony.objects.select_related("user").get(pk=pk)


def _user(pk) -> User | None:
    return User.objects.filter(pk=pk).first() if pk is not None else None


def ceremonies_cleanup(*, now: datetime | None = None) -> int:
    return delete_in_batches(WebAuthnCeremony.objects.filter(expires_at__lt=now or timezone.now()))  # core/cleanup.py


def _options_json(options) -> dict:
    return json.loads(options_to_json(options))


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in passkey.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=bytes(passkey.credential_id), transports=transports or None)


# --- registration --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    ceremony_id: str
    options: dict


def registration_options(*, user, now: datetime | None = None) -> Options:
    """Creation options for a new passkey of ``user``: a discoverable credential (``residentKey:
    required``) with user verification, EdDSA/ES256/RS256, and ``excludeCredentials`` listing the
    user's passkeys (an authenticator that holds one already says so instead of making a second)."""
    if passkeys_of(user).count() >= app_settings.MAX_PER_USER:
        raise PasskeyLimitReached()
    ceremony = _ceremony_open(kind=CeremonyKind.REGISTRATION, user=user, now=now)
    options = generate_registration_options(
        rp_id=app_settings.RP_ID, rp_name=app_settings.RP_NAME, user_name=user.email, user_id=user_handle(user),
        user_display_name=user.name or user.email, challenge=bytes(ceremony.challenge),
        timeout=app_settings.TIMEOUT_MS, supported_pub_key_algs=ALGORITHMS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[_descriptor(p) for p in passkeys_of(user)])
    return Options(ceremony_id=str(ceremony.pk), options=_options_json(options))


def _registration_challenge(credential) -> bytes:
    """The challenge a registration answers (from its clientDataJSON): it names the ceremony, since the
    contract's register/verify sends no ceremonyId. b"" when it cannot be read (then nothing matches)."""
    try:
        return _b64(json.loads(_b64(credential["response"]["clientDataJSON"]))["challenge"])
    except (*_PARSE_ERRORS, json.JSONDecodeError):
        return b""


def _b64(value: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return base64url_to_bytes(value)


def passkey_register(*, user, credential, name: str = "", ceremony_id=None,
                     now: datetime | None = None) -> Passkey:
    """Verify a registration (RegistrationResponseJSON) for ``user`` and store the passkey. Its ceremony
    is ``ceremony_id`` or, when none is sent, the user's live registration ceremony whose challenge the
    answer carries. PasskeyInvalid (400: the user is signed in, the request is what is wrong) for a
    wrong or spent challenge, origin, rp id, a missing user verification, an attestation that does not
    verify, or a credential registered already."""
    now = now or timezone.now()
    if not isinstance(credential, dict):
        raise PasskeyInvalid("malformed", user=user, status_code=400)
    if ceremony_id is None:
        challenge = _registration_challenge(credential)
        ceremony_id = WebAuthnCeremony.objects.filter(
            user=user, kind=CeremonyKind.REGISTRATION, challenge=challenge).values_list("pk", flat=True).first() \
            if challenge else None
    try:
        ceremony = ceremony_take(ceremony_id=ceremony_id, kind=CeremonyKind.REGISTRATION, now=now)
    except PasskeyInvalid as exc:
        raise PasskeyInvalid(exc.reason, user=user, status_code=400) from None
    if ceremony.user_id != user.pk:
        raise PasskeyInvalid("ceremony_of_other_user", user=user, status_code=400)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=bytes(ceremony.challenge), expected_rp_id=app_settings.RP_ID,
            expected_origin=app_settings.ORIGINS, require_user_presence=True, require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS)
    except _PARSE_ERRORS as exc:
        raise PasskeyInvalid(f"verification: {str(exc)[:160]}", user=user, status_code=400) from None
    transports = credential["response"].get("transports")
    transports = [t for t in transports if isinstance(t, str) and t in _TRANSPORTS][:8] \
        if isinstance(transports, list) else []
    if passkeys_of(user).count() >= app_settings.MAX_PER_USER:
        raise PasskeyLimitReached()
    try:
        with transaction.atomic():
            return Passkey.objects.create(
                user=user, credential_id=verified.credential_id, public_key=verified.credential_public_key,
                sign_count=verified.sign_count, name=_name(name, user), transports=transports,
                aaguid=str(verified.aaguid)[:36],
                backup_eligible=verified.credential_device_type == "multi_device",
                backed_up=verified.credential_backed_up, created_at=now)
    except IntegrityError:
        raise PasskeyInvalid("already_registered", user=user, status_code=400) from None


def _name(name: str, user) -> str:
    name = " ".join((name or "").split())[:64]
    return name or f"Passkey {passkeys_of(user).count() + 1}"


# --- authentication ------------------------------------------------------------------------------

def authentication_options(*, user=None, now: datetime | None = None) -> Options:
    """Request options. Without ``user`` (passwordless): an empty ``allowCredentials``, the browser offers
    the discoverable passkeys it holds for this site. With ``user`` (second factor, step-up): that user's
    passkeys, and only a passkey of theirs answers the ceremony."""
    ceremony = _ceremony_open(kind=CeremonyKind.AUTHENTICATION, user=user, now=now)
    allow = [_descriptor(p) for p in passkeys_of(user)] if user is not None else []
    options = generate_authentication_options(
        rp_id=app_settings.RP_ID, challenge=bytes(ceremony.challenge), timeout=app_settings.TIMEOUT_MS,
        allow_credentials=allow, user_verification=UserVerificationRequirement.REQUIRED)
    return Options(ceremony_id=str(ceremony.pk), options=_options_json(options))


def passkey_authenticate(*, ceremony: WebAuthnCeremony, credential, user=None,
                         now: datetime | None = None) -> Passkey:
    """Check an assertion (AuthenticationResponseJSON) against a ceremony already spent
    (``ceremony_take``): the passkey it names, whose user must be ``user`` (when given), the ceremony's
    user (when it has one) and the user handle's; then py_webauthn (challenge, origin, rp id, user
    verification, signature, counter). Returns the passkey, its counter and last use advanced (by a
    conditional UPDATE: call inside the caller's transaction). PasskeyInvalid otherwise."""
    now = now or timezone.now()
    try:
        parsed = parse_authentication_credential_json(credential)
    except _PARSE_ERRORS:
        raise PasskeyInvalid("malformed", user=user or ceremony.user) from None
    passkey = Passkey.objects.select_related("user").filter(credential_id=parsed.raw_id).first()
    if passkey is None:
        raise PasskeyInvalid("unknown_credential", user=user or ceremony.user)
    owner = passkey.user
    if user is not None and owner.pk != user.pk:
        raise PasskeyInvalid("credential_of_other_user", user=user)
    if ceremony.user_id is not None and ceremony.user_id != owner.pk:
        raise PasskeyInvalid("credential_of_other_user", user=ceremony.user)
    handle = parsed.response.user_handle
    if handle is not None and handle != user_handle(owner):
        # The credential is someone's, the handle another's: an attacker's passkey answering for a victim.
        raise PasskeyInvalid("user_handle_mismatch", user=_handle_user(handle) or owner)
    if handle is None and ceremony.user_id is None:
        raise PasskeyInvalid("user_handle_missing", user=owner)  # a discoverable sign-in must name its user
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=bytes(ceremony.challenge), expected_rp_id=app_settings.RP_ID,
            expected_origin=app_settings.ORIGINS, credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count, require_user_verification=True)
    except _PARSE_ERRORS as exc:
        message = str(exc)
        reason = "counter" if "sign count" in message else f"verification: {message[:160]}"
        raise PasskeyInvalid(reason, user=owner) from None
    advanced = Passkey.objects.filter(pk=passkey.pk, sign_count=passkey.sign_count).update(
        sign_count=verified.new_sign_count, last_used_at=now, backed_up=verified.credential_backed_up)
    if not advanced:  # another assertion with this counter value won
        raise PasskeyInvalid("counter", user=owner)
    passkey.sign_count, passkey.last_used_at = verified.new_sign_count, now
    return passkey


def credential_owner(credential) -> User | None:
    """Whose passkey ``credential`` (a JSON answer) names, if anyone's: the subject of a refusal's audit row."""
    raw_id = credential.get("rawId") if isinstance(credential, dict) else None
    try:
        raw = _b64(raw_id)
    except _PARSE_ERRORS:
        return None
    passkey = Passkey.objects.select_related("user").filter(credential_id=raw).first() if raw else None
    return passkey.user if passkey is not None else None


def _handle_user(handle: bytes):
    try:
        return _user(uuid.UUID(bytes=handle)) if len(handle) == 16 else None
    except ValueError:
        return None


# --- the user's list -----------------------------------------------------------------------------

def passkeys_of(user):
    return Passkey.objects.filter(user=user).order_by("created_at")


def passkey_count(user) -> int:
    return Passkey.objects.filter(user=user).count()


def passkeys_exist(user) -> Exists:
    """Has ``user`` a passkey, as an expression (``user`` may be ``OuterRef("pk")`` of a user lookup)."""
    return Exists(Passkey.objects.filter(user=user))


def passkey_of(*, user, passkey_id) -> Passkey | None:
    """``user``'s passkey ``passkey_id``, or None (unknown, or someone else's)."""
    try:
        pk = uuid.UUID(str(passkey_id))
    except ValueError:
        return None
    return Passkey.objects.filter(user=user, pk=pk).first()


def passkey_rename(*, passkey: Passkey, name: str) -> Passkey:
    passkey.name = _name(name, passkey.user)
    Passkey.objects.filter(pk=passkey.pk).update(name=passkey.name)
    return passkey


def passkey_delete(*, passkey: Passkey) -> bool:
    return bool(Passkey.objects.filter(pk=passkey.pk).delete()[0])


def passkeys_remove(*, user) -> int:
    return Passkey.objects.filter(user=user).delete()[0]

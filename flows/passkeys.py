"""Managing passkeys: add one (after a WebAuthn registration), rename, remove. Adding or removing a
passkey is a change of factors, like turning TOTP on or off (flows/two_factor.py): the account's
security version moves on (every trusted device, link token and known device issued before it ends;
this session's known device stays), the user is mailed, and everything is audited. A user's first
second factor also ends every other session (they were signed in with a password alone), as turning
TOTP on does.

Step-up (a fresh session) is the entry points' check (security.stepup.SensitiveAction.MFA_CHANGE).
Signing in with a passkey is flows/login.py (``passkey_login``, ``second_factor_verify``)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.services import security_version_bump
from audit.models import EventType
from audit.services import audit_record
from core.links import public_url
from mfa import services as mfa
from notifications.services import outbox_enqueue
from passkeys import services as passkeys
from passkeys.models import Passkey
from passkeys.services import PasskeyInvalid
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import sessions_revoke_all


def _passkey_mail(user: User, *, change: str, name: str) -> None:
    outbox_enqueue(kind="passkey_changed", recipient=user.email,
                   subject="A passkey was added to your account" if change == "added"
                   else "A passkey was removed from your account",
                   template="passkey_changed",
                   context={"user": user, "change": change, "name": name,
                            "link": public_url("web-account-two-factor"),
                            "reset_link": public_url("web-forgot-password")})


def passkey_add(*, user: User, session: DeviceSession | None, credential, name: str = "", ceremony_id=None,
                request=None) -> Passkey:
    """Verify a registration and keep the passkey (passkeys.services.passkey_register). A change of
    factors: trusted devices end, the security version moves on; the user's first second factor also
    signs every other session out. Mailed and audited. A refusal: 400 invalid_passkey, audited."""
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()  # one change of factors at a time
            first = not mfa.second_factor_methods(user)
            passkey = passkeys.passkey_register(user=user, credential=credential, name=name,
                                                ceremony_id=ceremony_id)
            trusted = mfa.trusted_devices_end(user=user, reason="factors_changed")
            security_version_bump(user=user, keep_session=session)
            ended = (sessions_revoke_all(user=user, reason=RevokeReason.TWO_FACTOR_ENABLED, request=request,
                                         actor=user, keep=session) if first else 0)
            audit_record(event=EventType.PASSKEY_ADDED, request=request, actor=user, session=session,
                         passkey=str(passkey.pk), name=passkey.name, aaguid=passkey.aaguid,
                         trusted_devices_ended=trusted, sessions_revoked=ended)
            _passkey_mail(user, change="added", name=passkey.name)
            return passkey
    except PasskeyInvalid as exc:
        with transaction.atomic():
            audit_record(event=EventType.PASSKEY_ADD_REFUSED, request=request, actor=user, session=session,
                         success=False, reason=exc.reason)
        raise


@transaction.atomic
def passkey_rename(*, user: User, passkey_id, name: str, request=None) -> Passkey | None:
    """A new name for one of ``user``'s passkeys; None when it is not theirs."""
    passkey = passkeys.passkey_of(user=user, passkey_id=passkey_id)
    if passkey is None:
        return None
    before = passkey.name
    passkeys.passkey_rename(passkey=passkey, name=name)
    audit_record(event=EventType.PASSKEY_RENAMED, request=request, actor=user, passkey=str(passkey.pk),
                 name=passkey.name, previous_name=before)
    return passkey


@transaction.atomic
def passkey_remove(*, user: User, session: DeviceSession | None, passkey_id, request=None) -> bool:
    """Remove one of ``user``'s passkeys (False when it is not theirs). A change of factors: trusted
    devices end, the security version moves on; mailed and audited."""
    User.objects.select_for_update().filter(pk=user.pk).first()
    passkey = passkeys.passkey_of(user=user, passkey_id=passkey_id)
    if passkey is None or not passkeys.passkey_delete(passkey=passkey):
        return False
    trusted = mfa.trusted_devices_end(user=user, reason="factors_changed")
    security_version_bump(user=user, keep_session=session)
    audit_record(event=EventType.PASSKEY_REMOVED, request=request, actor=user, session=session,
                 passkey=str(passkey.pk), name=passkey.name, trusted_devices_ended=trusted)
    _passkey_mail(user, change="removed", name=passkey.name)
    return True

"""Managing the second factor: set up and confirm TOTP, turn it off, new recovery codes, trusted
devices, and staff removing a user's factors. Each change of factors is a security-state change of
the account (accounts.services.security_version_bump): every trusted device, link token and known
device issued before it ends (this session's known device stays). Turning TOTP on also ends every
other session (they were signed in with one factor). Every change is audited and mailed.

Step-up (a fresh session) is the entry points' check (security.stepup.SensitiveAction.MFA_CHANGE)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from accounts.services import security_version_bump
from audit.models import EventType
from audit.services import audit_record
from core.links import public_url
from mfa import services as mfa
from mfa.services import MfaCodeInvalid, TotpSetup
from notifications.services import outbox_enqueue
from passkeys.services import passkeys_remove
from security.lockout import second_factor_failure_record, second_factor_locked_check
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import sessions_revoke_all


def _factors_mail(user: User, *, change: str) -> None:
    outbox_enqueue(kind="two_factor_changed", recipient=user.email, subject="Two-factor sign-in changed",
                   template="two_factor_changed",
                   context={"user": user, "change": change, "link": public_url("web-account-two-factor"),
                            "reset_link": public_url("web-forgot-password")})


def totp_setup(*, user: User, session: DeviceSession | None, request=None) -> TotpSetup:
    """A new authenticator secret (replacing a setup never confirmed); nothing is enforced yet."""
    with transaction.atomic():
        setup = mfa.totp_setup_start(user=user)
        audit_record(event=EventType.TOTP_SETUP_STARTED, request=request, actor=user, session=session)
    return setup


def totp_enable(*, user: User, session: DeviceSession | None, code: str, request=None) -> list[str]:
    """Confirm the setup with its first code: TOTP is on, ten recovery codes are issued (returned, shown
    once), every other session of the user ends, and the user is mailed. A wrong code: 400
    invalid_mfa_code (audited, counted in the account's budget of wrong codes)."""
    second_factor_locked_check(user=user, request=request)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one confirmation at a time
        confirmed = mfa.totp_confirm(user=user, code=code)
        if confirmed:
            codes = mfa.recovery_codes_issue(user=user)
            security_version_bump(user=user, keep_session=session)
            ended = sessions_revoke_all(user=user, reason=RevokeReason.TWO_FACTOR_ENABLED, request=request,
                                        actor=user, keep=session)
            audit_record(event=EventType.TOTP_ENABLED, request=request, actor=user, session=session,
                         sessions_revoked=ended)
            _factors_mail(user, change="enabled")
            return codes
    with transaction.atomic():
        audit_record(event=EventType.TOTP_CONFIRM_FAILED, request=request, actor=user, session=session,
                     success=False, reason="invalid_code")
        second_factor_failure_record(user=user, request=request)
    raise MfaCodeInvalid("The code is not valid. Check the time on your phone and try the newest code.",
                         status_code=400)


@transaction.atomic
def totp_disable(*, user: User, session: DeviceSession | None, request=None, staff: User | None = None) -> bool:
    """Turn the authenticator app off: it, the recovery codes and every trusted device end. Returns
    False when it was not on (nothing changes). ``staff``: an administrator removing the user's
    factors, passkeys too (audited as theirs; the user is mailed either way)."""
    User.objects.select_for_update().filter(pk=user.pk).first()
    had = mfa.totp_remove(user=user)
    codes = mfa.recovery_codes_remove(user=user)
    keys = passkeys_remove(user=user) if staff is not None else 0
    if not had and not codes and not keys:
        return False
    trusted = mfa.trusted_devices_end(user=user, reason="factors_changed")
    security_version_bump(user=user, keep_session=session)
    if staff is not None:
        audit_record(event=EventType.MFA_REMOVED_BY_STAFF, request=request, actor=staff, subject=user,
                     trusted_devices_ended=trusted, credentials_removed=keys)
    else:
        audit_record(event=EventType.TOTP_DISABLED, request=request, actor=user, session=session,
                     trusted_devices_ended=trusted)
    _factors_mail(user, change="removed_by_staff" if staff is not None else "disabled")
    return True


@transaction.atomic
def recovery_codes_regenerate(*, user: User, session: DeviceSession | None, request=None) -> list[str]:
    """New recovery codes; the previous ones stop working. A change of factors: trusted devices end."""
    User.objects.select_for_update().filter(pk=user.pk).first()
    if not mfa.totp_enabled(user):
        raise mfa.MfaNotEnabled()
    codes = mfa.recovery_codes_issue(user=user)
    trusted = mfa.trusted_devices_end(user=user, reason="factors_changed")
    security_version_bump(user=user, keep_session=session)
    audit_record(event=EventType.RECOVERY_CODES_GENERATED, request=request, actor=user, session=session,
                 trusted_devices_ended=trusted)
    _factors_mail(user, change="recovery_codes")
    return codes


@transaction.atomic
def trusted_device_remove(*, user: User, device_id, request=None) -> bool:
    """The user stops trusting one device (the next sign-in there asks for the code again)."""
    removed = mfa.trusted_device_revoke(user=user, device_id=device_id)
    if removed:
        audit_record(event=EventType.TRUSTED_DEVICE_REVOKED, request=request, actor=user,
                     trusted_device=str(device_id))
    return removed


def totp_reauthenticate_check(*, user: User, code: str, request=None) -> bool:
    """Step-up with a TOTP code (``reauthenticate``'s ``code``): spends the code like a sign-in does;
    a wrong one counts in the account's budget of wrong codes. Raises 429 while that budget is spent."""
    second_factor_locked_check(user=user, request=request)
    if mfa.totp_code_use(user=user, code=code):
        return True
    with transaction.atomic():
        second_factor_failure_record(user=user, request=request)
    return False

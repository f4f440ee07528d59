"""Signing in: the password check (security.lockout), the account's answers, the device session
(sessions_app), the audit row, then the new-device notice (security.devices)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import EmailNotVerified, InvalidCredentials
from audit.models import EventType
from audit.services import audit_record
from core.email import normalize_email
from security.devices import login_seen_check
from security.lockout import login_authenticate
from sessions_app.services import TokenPair, session_create


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

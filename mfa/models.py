"""The second factor's rows: a TOTP secret (encrypted), recovery codes (keyed hashes), trusted devices
(hashed tokens) and sign-ins waiting for their second factor (hashed ``mfaToken``). Nothing here is
stored in a form that signs anybody in."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TotpDevice(models.Model):
    """A user's authenticator app (RFC 6238, SHA-1, 6 digits, 30 s). Not enforced until ``confirmed_at``.
    ``last_step`` is the last time step accepted: a code of that step or an older one is refused (replay),
    advanced only by a conditional UPDATE (mfa.services.totp_step_use)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device")
    secret_encrypted = models.TextField()  # core.crypto.encrypt_at_rest, bound to the user id
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_step = models.BigIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"TOTP of {self.user_id} ({'on' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """One single-use recovery code; only its keyed hash (HMAC-SHA256, mfa.services) is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="mfa_recovery_code_unique")]

    def __str__(self):
        return f"recovery code of {self.user_id}"


class TrustedDevice(models.Model):
    """"Trust this browser for 30 days": the second factor is skipped for this user on the device holding
    the token (only its SHA-256 is stored). It ends at ``expires_at``, when the user revokes it, and with
    any security-state change of the account (``security_version``: a password change or reset, "this
    wasn't me", a change of factors)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trusted_devices")
    token_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=128, blank=True, default="")  # "Chrome on Linux", the app's deviceName
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    security_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="mfa_trusted_user_expiry")]

    def __str__(self):
        return f"trusted device of {self.user_id}"


class Channel(models.TextChoices):
    API = "api"
    PAGE = "page"


class MfaChallenge(models.Model):
    """A sign-in whose password (or other first factor) passed and whose second factor has not: no
    session exists yet. The client holds the raw token (the API's ``mfaToken``, the page's pending
    cookie); it is single-use, dies after CHALLENGE_MAX_FAILURES wrong codes, at ``expires_at``, and
    with a security-state change of the account. What the sign-in asked for waits here."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    amr = models.JSONField(default=list)  # the first factor's methods (["pwd"])
    security_version = models.PositiveIntegerField()
    remember_me = models.BooleanField(default=False)
    device_id = models.CharField(max_length=128, blank=True, default="")
    device_name = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    failures = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"second-factor challenge of {self.user_id}"

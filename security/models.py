import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SecurityTokenPurpose(models.TextChoices):
    UNLOCK = "unlock"  # mailed at a lockout: lifts it for the device that follows the link
    NOT_ME = "not_me"  # in a new sign-in mail: ends every session and starts a password reset


class SecurityToken(models.Model):
    """A single-use link token; only its SHA-256 is stored. It dies with a security-state change of its
    user (``security_version``, as accounts.AccountToken)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=16, choices=SecurityTokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    # The user's security_version at issue; NULL only for purposes exempt from security-state changes
    # (accounts.models.SECURITY_STATE_EXEMPT_PURPOSES; none of this model's today).
    security_version = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose", "created_at"], name="security_token_user_recent")]

    def __str__(self):
        return f"{self.purpose} token of {self.user_id}"


class SeenDevice(models.Model):
    """A (device, network) pair an account has signed in from; decides the "new sign-in" mail.
    ``device_key`` is a hash (of the client's deviceId, or of browser + OS + device family);
    ``network`` is the /24 (IPv4) or /48 (IPv6) of the address."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    device_key = models.CharField(max_length=64)
    network = models.CharField(max_length=64, blank=True, default="")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "device_key", "network"],
                                               name="security_seen_device_unique")]

    def __str__(self):
        return f"{self.user_id} from {self.network or 'unknown network'}"


class SecondFactorFailure(models.Model):
    """A wrong second-factor code (TOTP or recovery code) of an account: the second factor's own budget
    (security/lockout.py, ``second_factor_*``), apart from django-axes' password counter, so guessing
    codes never locks the password step and failed passwords never lock the codes. Counted per account
    (whoever guesses has the password); the mailed unlock link clears it."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="security_2fa_failure_recent")]

    def __str__(self):
        return f"wrong second factor of {self.user_id}"


class KnownDevice(models.Model):
    """A ``deviceToken`` (security/lockout.py): the lockout exemption of one device of an account.
    Only the token's SHA-256 is stored. It works only for the device that received it (``device_key``,
    security.devices.device_fingerprint of that request), only under the security version it was
    issued with, and not after the user signed out the session that received it (``session_id``)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    device_key = models.CharField(max_length=64)
    session_id = models.UUIDField(null=True, blank=True)  # none for the unlock link's token
    security_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["user", "session_id"], name="security_known_device_session"),
            models.Index(fields=["expires_at"], name="security_known_device_expiry"),
        ]

    def __str__(self):
        return f"known device of {self.user_id}"

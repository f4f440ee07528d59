import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SecurityTokenPurpose(models.TextChoices):
    UNLOCK = "unlock"  # mailed at a lockout: lifts it for the device that follows the link
    NOT_ME = "not_me"  # in a new sign-in mail: ends every session and starts a password reset


class SecurityToken(models.Model):
    """A single-use link token; only its SHA-256 is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=16, choices=SecurityTokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)

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
        constraints = [models.UniqueConstraint(fields=["user", "device_key", "network"], name="security_seen_device_unique")]

    def __str__(self):
        return f"{self.user_id} from {self.network or 'unknown network'}"

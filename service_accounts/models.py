"""Service accounts: a User with role ``service`` and no usable password, plus its client credentials.

The secret is 256 random bits and only its SHA-256 is kept (see ``service_accounts.services`` for why
not argon2). ``secret_version`` counts rotations; every service token carries it, so a rotation ends
the tokens issued with the old secret at once, not only the secret itself.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ServiceClientQuerySet(models.QuerySet):
    def usable(self):
        """Clients that may obtain and use tokens: the client and its account are both active."""
        return self.filter(is_active=True, user__is_active=True, user__role="service")


class ServiceClient(models.Model):
    id = models.BigAutoField(primary_key=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_client")
    name = models.CharField(max_length=150)
    client_id = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=64)
    secret_version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Last time a token was issued.")

    objects = ServiceClientQuerySet.as_manager()

    class Meta:
        ordering = ["name", "client_id"]
        verbose_name = "service account"

    def __str__(self):
        return f"{self.name} ({self.client_id})"

"""Passkeys (WebAuthn credentials) and the server-side challenges of their ceremonies.

Nothing here signs anybody in on its own: a passkey row holds a public key; a ceremony row holds a
random challenge that can be answered once, within CEREMONY_TTL, for its kind (and, when set, its user)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Passkey(models.Model):
    """One WebAuthn credential of a user: its id and COSE public key (py_webauthn verifies with it), the
    authenticator's signature counter (never allowed to go back when non-zero: a cloned authenticator),
    and what the user calls it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    credential_id = models.BinaryField(max_length=1023, unique=True)
    public_key = models.BinaryField()  # COSE_Key, as the attestation gave it
    sign_count = models.PositiveBigIntegerField(default=0)
    name = models.CharField(max_length=64)
    transports = models.JSONField(default=list, blank=True)
    aaguid = models.CharField(max_length=36, blank=True, default="")
    backup_eligible = models.BooleanField(default=False)
    backed_up = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"passkey {self.name!r} of {self.user_id}"


class CeremonyKind(models.TextChoices):
    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


class WebAuthnCeremony(models.Model):
    """A challenge handed to a browser or app (the contract's ``ceremonyId`` is this row's id). Spent by
    one conditional UPDATE (``used_at IS NULL``) before its answer is even looked at, so it is single-use
    whatever the answer. ``user``: the account a registration is for, or whose passkey a second-factor
    or step-up assertion must come from; empty for a passwordless sign-in (any user's passkey)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=CeremonyKind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="+")
    challenge = models.BinaryField(max_length=64)  # random, not a secret: what matters is single use
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="passkeys_ceremony_expires")]

    def __str__(self):
        return f"{self.kind} ceremony {self.pk}"

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class SigningKeyQuerySet(models.QuerySet):
    def usable(self):
        """Keys that were not revoked: a revoked key never signs, verifies or appears in the JWKS again."""
        return self.filter(revoked_at__isnull=True)

    def signing_at(self, when):
        """Keys allowed to sign at ``when``, newest first (the first is the signer)."""
        return self.usable().filter(Q(retires_at__isnull=True) | Q(retires_at__gt=when),
                                    activates_at__lte=when).order_by("-activates_at", "-created_at")

    def pending_at(self, when):
        """Keys published ahead that will start signing after ``when`` (a key superseded before its
        start, ``retires_at <= activates_at``, never signs and is not pending)."""
        return self.usable().filter(Q(retires_at__isnull=True) | Q(retires_at__gt=models.F("activates_at")),
                                    activates_at__gt=when).order_by("activates_at")

    def not_retired_by(self, when):
        """Keys that would still sign at or after ``when``: the ones a rotation starting then retires."""
        return self.usable().filter(Q(retires_at__isnull=True) | Q(retires_at__gt=when))

    def published_at(self, when, *, keep_after_retire):
        """Keys the JWKS lists at ``when``: every key that can still have live tokens, plus the next one."""
        return self.usable().filter(Q(retires_at__isnull=True) | Q(retires_at__gt=when - keep_after_retire)).order_by(
            "activates_at", "created_at"
        )


class KeyLifecycle(models.Model):
    """What every signing key has (Ed25519 access-token keys, RSA id_token keys): its kid, the encrypted
    private part, and its life (created -> activates_at -> retires_at -> revoked_at), read by one queryset."""

    kid = models.CharField(max_length=64, primary_key=True)
    private_encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    activates_at = models.DateTimeField(default=timezone.now)
    retires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["activates_at"]

    def __str__(self):
        return self.kid


class SigningKey(KeyLifecycle):
    """An Ed25519 key. The public part is stored as-is, the private part AES-GCM encrypted under
    the key-encryption key (core.crypto), with the kid as associated data.

    Life: created (published in the JWKS) -> activates_at (starts signing) -> retires_at (stops
    signing; a successor took over) -> left in the JWKS until its last token has expired.
    A compromised key is revoked instead (``revoked_at``, ``manage.py rotate_signing_key --revoke``): it
    leaves the JWKS and stops verifying at once, so every token it signed stops working.
    """

    public_x = models.CharField(max_length=64)  # base64url raw public key (JWK "x")

    def public_jwk(self) -> dict:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    @staticmethod
    def new_kid() -> str:
        return f"{timezone.now():%Y%m%d}-{uuid.uuid4().hex[:12]}"


class RsaSigningKey(KeyLifecycle):
    """An RSA key (RS256, 2048 bits) for OpenID Connect id_tokens (identity/services/rsa_keys.py), with the
    life of a SigningKey: created -> activates_at -> retires_at -> left in the JWKS until its last id_token
    has expired; revoked_at removes it at once. The private part is AES-GCM encrypted (PKCS#8 DER) under
    the key-encryption key, with the kid as associated data."""

    public_n = models.TextField()  # base64url modulus (JWK "n")
    public_e = models.CharField(max_length=16)  # base64url exponent (JWK "e")

    def public_jwk(self) -> dict:
        return {"kty": "RSA", "n": self.public_n, "e": self.public_e, "kid": self.kid, "alg": "RS256", "use": "sig"}

    @staticmethod
    def new_kid() -> str:
        return f"rsa-{timezone.now():%Y%m%d}-{uuid.uuid4().hex[:12]}"

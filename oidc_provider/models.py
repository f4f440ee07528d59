"""The OpenID Connect provider's rows: clients, authorization codes, grants (the device session a code
redemption opened for a client) and consents. Secrets and codes are stored as hashes (core.tokens)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.tokens import hash_token


class IdTokenAlg(models.TextChoices):
    RS256 = "RS256", "RS256 (RSA; every OpenID Connect library)"
    EDDSA = "EdDSA", "EdDSA (Ed25519)"


class OidcClientQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(is_active=True)


class OidcClient(models.Model):
    """A relying party. ``redirect_uris`` and ``post_logout_redirect_uris`` match exactly (no prefix, no
    wildcard). A public client (a single-page or mobile app) has no secret and must use PKCE; a
    confidential one authenticates with ``client_secret_basic`` or ``client_secret_post``. First-party
    clients skip the consent page. Implements Authlib's ClientMixin."""

    client_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=150)
    secret_hash = models.CharField(max_length=64, blank=True, default="")
    is_public = models.BooleanField(default=False, help_text="No secret (single-page and mobile apps); PKCE required.")
    is_first_party = models.BooleanField(default=False, help_text="Our own app: no consent page.")
    redirect_uris = models.JSONField(default=list)
    post_logout_redirect_uris = models.JSONField(default=list, blank=True)
    allowed_scopes = models.JSONField(default=list)
    id_token_alg = models.CharField(max_length=8, choices=IdTokenAlg.choices, default=IdTokenAlg.RS256)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    objects = OidcClientQuerySet.as_manager()

    class Meta:
        ordering = ["name", "client_id"]
        verbose_name = "OpenID Connect client"

    def __str__(self):
        return f"{self.name} ({self.client_id})"

    # --- Authlib's ClientMixin -------------------------------------------------------------------------
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None  # OpenID Connect: redirect_uri is required in every authorization request

    def get_allowed_scope(self, scope):
        """The requested scopes this client may have, in the request's order; unknown ones are dropped."""
        from oidc_provider.app_settings import app_settings

        allowed = set(self.allowed_scopes) & set(app_settings.SCOPES)
        requested = scope.split() if isinstance(scope, str) else []
        return " ".join(dict.fromkeys(s for s in requested if s in allowed))

    def check_redirect_uri(self, redirect_uri):
        return isinstance(redirect_uri, str) and redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        if self.is_public or not self.secret_hash or not isinstance(client_secret, str):
            return False
        return hmac.compare_digest(hash_token(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


class AuthorizationCode(models.Model):
    """An authorization code: only its hash is kept. Redeemed once, by a conditional UPDATE of
    ``redeemed_at`` (oidc_provider/services/tokens.py); ``grant_session`` is what the redemption issued,
    revoked if the code is presented again. ``browser_session`` is the signed-in browser (the ``sid`` of
    the id_token), ``auth_time`` and ``amr`` are copied from it."""

    code_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(OidcClient, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    browser_session = models.ForeignKey("sessions_app.DeviceSession", null=True, on_delete=models.SET_NULL,
                                        related_name="+")
    redirect_uri = models.TextField()
    scope = models.TextField()
    nonce = models.TextField(blank=True, default="")
    code_challenge = models.CharField(max_length=128, blank=True, default="")
    code_challenge_method = models.CharField(max_length=8, blank=True, default="")
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    grant_session = models.ForeignKey("sessions_app.DeviceSession", null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="oidc_code_expiry")]

    def __str__(self):
        return f"code for {self.client_id}"

    # --- Authlib's AuthorizationCodeMixin (OpenID Connect) ---------------------------------------------
    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce or None

    def get_auth_time(self):
        return int(self.auth_time.timestamp())

    def get_acr(self):
        return None

    def get_amr(self):
        return list(self.amr or [])


class OidcGrantQuerySet(models.QuerySet):
    def alive(self, now=None):
        now = now or timezone.now()
        return self.filter(session__revoked_at__isnull=True, session__expires_at__gt=now)


class OidcGrant(models.Model):
    """The device session a code redemption opened for a client (its access tokens' ``sid``; with
    ``offline_access`` its refresh token rotates as every refresh token does, sessions_app.services).
    sessions_app knows nothing of it: this row links session, client and what the user signed in with."""

    session = models.OneToOneField("sessions_app.DeviceSession", on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(OidcClient, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scope = models.TextField()
    offline = models.BooleanField(default=False)
    browser_session_id = models.UUIDField(null=True, blank=True)  # the id_token's sid
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    objects = OidcGrantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "client"], name="oidc_grant_user_client",
                                condition=Q(offline=True))]

    def __str__(self):
        return f"{self.client_id} for {self.user_id}"

    # --- what Authlib's refresh grant asks of a token ----------------------------------------------------
    def check_client(self, client):
        return self.client_id == client.pk

    def get_scope(self):
        return self.scope


class Consent(models.Model):
    """What a user allowed a third-party client: the scopes (sorted). A request for scopes within them
    shows no consent page; withdrawn at /account/apps."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(OidcClient, on_delete=models.CASCADE, related_name="consents")
    scopes = models.JSONField(default=list)
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "client"], name="oidc_consent_one_per_client")]

    def __str__(self):
        return f"{self.user_id} allowed {self.client_id}"

    def covers(self, scopes) -> bool:
        return set(scopes) <= set(self.scopes)

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class RevokeReason(models.TextChoices):
    LOGOUT = "logout"
    USER_REVOKED = "user_revoked"
    OTHERS_REVOKED = "others_revoked"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGED = "password_changed"
    DEVICE_REPLACED = "device_replaced"
    ADMIN = "admin"
    ORGANIZATION_POLICY = "organization_policy"
    IDLE_TIMEOUT = "idle_timeout"
    SUSPICIOUS_REFRESH = "suspicious_refresh"
    EMAIL_CHANGED = "email_changed"
    EMAIL_CHANGE_REVERTED = "email_change_reverted"
    TWO_FACTOR_ENABLED = "two_factor_enabled"  # signed in with one factor before two-factor was turned on


PASSWORD_AMR = ("pwd",)  # RFC 8176: how the user signed in to a session


def default_amr() -> list[str]:
    return list(PASSWORD_AMR)


def alive_q(now) -> models.Q:
    """A session that is neither revoked nor expired at ``now`` (the one definition; ``alive()`` uses it)."""
    return models.Q(revoked_at__isnull=True, expires_at__gt=now)


class DeviceSessionQuerySet(models.QuerySet):
    def alive(self, now=None):
        return self.filter(alive_q(now or timezone.now()))


class DeviceSession(models.Model):
    """One signed-in device. Its id is the ``sid`` of every access token minted for it and stays the
    same across refreshes, so "where you're signed in" shows one row per device.

    Only the hash of the current refresh token is kept (``refresh_secret_hash``, or ``refresh_token_hash``
    for a token issued before tokens named their session). A spent one is recognised as reuse by its tag
    (sessions_app.refresh_tokens), or by its row in SpentRefreshToken (a switch of organization spent it, or
    it was issued before tokens carried a tag).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: sessions_user_alive (user, revoked_at, expires_at) serves every lookup by user. A
    # refresh rewrites the row with a new refresh_token_hash, so PostgreSQL adds an entry to every index of
    # the table each time (no HOT update): an index too many is paid on every refresh (migration 0012).
    # Since migration 0013 a refresh changes no indexed column (refresh_secret_hash) and is a HOT update,
    # except when it slides expires_at (at most once per SESSIONS["UPDATE_AGE_SECONDS"]).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_sessions",
                             db_index=False)
    device_id = models.CharField(max_length=128, blank=True, default="")
    device_name = models.CharField(max_length=128, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    remember_me = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    absolute_expires_at = models.DateTimeField()
    reauthenticated_at = models.DateTimeField(null=True, blank=True)
    # Authentication methods (RFC 8176) of the sign-in that opened the session: ["pwd"], ["pwd", "otp",
    # "mfa"], ["hwk", "user", "mfa"]. Access tokens carry it; a refresh keeps it.
    amr = models.JSONField(default=default_amr)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, choices=RevokeReason.choices, blank=True, default="")
    # The live refresh token's hash. A token names its session (sessions_app.refresh_tokens: ``mrt_`` + the
    # session id + its generation + 256 bits + a tag), so it is found by primary key and this column needs no index: a
    # refresh, which rewrites it, changes no indexed column and PostgreSQL updates the row in place (HOT:
    # no new entry in any index; docs/benchmarks.md, ninth pass).
    refresh_secret_hash = models.CharField(max_length=64, blank=True, default="")
    # A live refresh token of the format before that (``mrt_`` + 256 random bits, naming no session), found
    # by this unique index until its first refresh replaces it with one of the current format (then NULL).
    refresh_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    refresh_rotated_at = models.DateTimeField(null=True, blank=True)
    # Routine refreshes are session activity, not audit rows (docs/audit.md "What is recorded"): each
    # successful rotation counts here and moves last_activity_at / refresh_rotated_at.
    refresh_count = models.PositiveBigIntegerField(default=0)
    # Browser sign-ins (sessions_app.browser): the hash of the session cookie's key, never the key,
    # and the data Django keeps in ``request.session`` (JSON).
    browser_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    browser_data = models.TextField(blank=True, default="")
    # The organization chosen with switch-organization: its id and the caller's role go into every
    # access token of this session, and its session policy applies while it is active.
    active_organization = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL,
                                            related_name="+")

    objects = DeviceSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [
            models.Index(fields=["user", "revoked_at", "expires_at"], name="sessions_user_alive"),
            models.Index(fields=["expires_at"], name="sessions_expiry"),
            models.Index(fields=["revoked_at"], name="sessions_revoked", condition=Q(revoked_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__lte=models.F("absolute_expires_at")),
                                   name="sessions_expiry_within_cap"),
        ]

    def __str__(self):
        return f"{self.user_id} on {self.device_name or self.device_id or 'unknown device'}"

    def is_alive(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now


class SealedWith(models.TextChoices):
    """What the successor pair of a spent refresh token is encrypted under."""

    SPENT_TOKEN = "spent_token"  # a refresh: a key derived from the spent token itself
    KEY_ENCRYPTION_KEY = "key_encryption_key"  # a switch-organization: its request does not carry the token


class SpentRefreshToken(models.Model):
    """A refresh token spent by a switch of organization, or one without a tag (the formats before
    sessions_app.refresh_tokens) spent by a refresh; a tagged token spent by a refresh has no row (its tag
    says it was ours, its successor is derived from it). Presenting it again revokes the session, except
    within the grace window, where the successor pair is returned again: after a refresh that pair is
    kept only encrypted under a key derived from the spent token itself, so nobody without it can read
    it; after a switch-organization (which spends the token without seeing it) under the key-encryption
    key, like the signing keys, and erased by the hourly cleanup once the window has passed."""

    token_hash = models.CharField(max_length=64, primary_key=True)
    session = models.ForeignKey(DeviceSession, on_delete=models.CASCADE, related_name="spent_refresh_tokens")
    spent_at = models.DateTimeField(default=timezone.now)
    successor_hash = models.CharField(max_length=64)
    successor_encrypted = models.TextField(blank=True, default="")
    successor_sealed_with = models.CharField(max_length=32, choices=SealedWith.choices, default=SealedWith.SPENT_TOKEN)
    # A switch of organization: when the token it spent was itself made by a refresh, if that was within the
    # grace window. The token that refresh spent (tagged, so it has no row: sessions_app.refresh_tokens) then
    # gets this row's pair within its own window.
    predecessor_spent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The cleanup's erasure of switch grace pairs (sessions_app.services.sessions_cleanup).
            models.Index(fields=["spent_at"], name="spent_sealed_by_kek",
                         condition=Q(successor_sealed_with="key_encryption_key") & ~Q(successor_encrypted="")),
        ]

    def __str__(self):
        return f"spent token of {self.session_id}"


class PendingRevocationMark(models.Model):
    """A cookie-cache mark (sessions_app.cookie_cache) that could not be written to Redis (down, hung):
    kept here and sent again by the next write that gets through, by the process that saw the outage on
    its next lookup, and by the ``revocation_marks_resend`` task. Several rows may name one key; the
    newest value wins in Redis. Useless once ``expires_at`` has passed: every snapshot the mark could
    refuse has expired by then."""

    key = models.CharField(max_length=128)
    value = models.CharField(max_length=64)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.key

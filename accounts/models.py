import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.auth.password_validation import validate_password
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from core.email import normalize_email
from core.links import SECURITY_STATE_EXEMPT_PURPOSES, current_security_version  # noqa: F401  (re-exported)
from core.tokens import hash_token


class Role(models.TextChoices):
    USER = "user", "User"
    ADMIN = "admin", "Admin"
    SERVICE = "service", "Service"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email):
        return self.get(email=normalize_email(email))

    def _create(self, email, password, **extra):
        """Every account made here (``createsuperuser`` in both modes, scripts) meets the password
        policy: Django's command skips AUTH_PASSWORD_VALIDATORS with --noinput and offers a bypass
        when interactive, so the check lives where both end up. ``None`` makes an unusable password."""
        user = self.model(email=normalize_email(email), **extra)
        if password is not None:
            validate_password(password, user)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        extra.setdefault("role", Role.ADMIN)
        extra.setdefault("email_verified_at", timezone.now())
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True, default="")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Advanced by every security-state change (docs/security.md "Hardening: security state ends links,
    # sessions and known devices"): link tokens and known devices carry the version they were issued
    # under and stop working once it moves on. Only ``accounts.services.security_version_bump`` writes it.
    security_version = models.PositiveIntegerField(default=0, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="accounts_user_role_valid"),
        ]

    def __str__(self):
        return self.email

    def clean(self):
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def set_password(self, raw_password):
        """Django's, remembering the hash it made: the save receiver (accounts/receivers.py) tells a
        hash upgrade at login (``check_password`` re-hashes the same password) from a new password."""
        super().set_password(raw_password)
        self._password_hash_set = self.password


# The security version's rule for link tokens lives in core.links (security's tokens use it too).



class TokenPurpose(models.TextChoices):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"  # sent to the new address; ``new_email`` holds it until confirmed
    # Sent to the old address when a change is applied; ``new_email`` holds the address it restores. It
    # survives later changes of the account (another email change, a password change): see
    # flows.email_change.email_change_revert.
    EMAIL_CHANGE_REVERT = "email_change_revert"


class AccountTokenQuerySet(models.QuerySet):
    def by_value(self, raw: str):
        return self.filter(token_hash=hash_token(raw))

    def usable(self):
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class AccountToken(models.Model):
    """A single-use, expiring link token (email verification, password reset, email change and its
    undoing). Only its hash is kept. ``new_email`` is the address the account moves to when the token
    is spent: an email-change token carries the address it confirms (and the session that asked for the
    change, which stays signed in), a revert token the old address it restores. Every token dies
    with a security-state change of its user (``security_version``), unless its purpose is exempt."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_tokens")
    purpose = models.CharField(max_length=32, choices=TokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    new_email = models.EmailField(max_length=254, blank=True, default="")
    requested_session_id = models.UUIDField(null=True, blank=True)
    # The user's security_version when the token was issued; it works only while that is still the
    # user's version. NULL: a purpose in SECURITY_STATE_EXEMPT_PURPOSES, which outlives such changes.
    security_version = models.PositiveIntegerField(null=True, blank=True)

    objects = AccountTokenQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], name="accounts_token_expiry"),
            # Registration asks whether a live revert link holds an address (accounts.services.user_register).
            models.Index(fields=["new_email"], name="accounts_token_revert_address",
                         condition=models.Q(purpose="email_change_revert")),
        ]

    def __str__(self):
        return f"{self.purpose} for {self.user_id}"

"""Organizations: B2B tenants, their members (with a role each) and email invitations."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.tokens import hash_token


class OrgRole(models.TextChoices):
    """Ordered: owner > admin > member."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ROLE_RANK = {OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}


class Organization(models.Model):
    """A tenant. ``max_session_lifetime_seconds`` and ``idle_timeout_seconds`` are its session policy:
    while the organization is active on a device session, that session ends when it is older, or has
    been idle longer, than these (null: only the global rules apply)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    max_session_lifetime_seconds = models.PositiveIntegerField(null=True, blank=True)
    idle_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name", "slug"]
        constraints = [
            models.CheckConstraint(condition=Q(max_session_lifetime_seconds__isnull=True)
                                   | Q(max_session_lifetime_seconds__gt=0), name="orgs_policy_lifetime_positive"),
            models.CheckConstraint(condition=Q(idle_timeout_seconds__isnull=True) | Q(idle_timeout_seconds__gt=0),
                                   name="orgs_policy_idle_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({self.slug})"

    @property
    def has_session_policy(self) -> bool:
        return self.max_session_lifetime_seconds is not None or self.idle_timeout_seconds is not None


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    last_active_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="orgs_membership_unique"),
            models.CheckConstraint(condition=Q(role__in=OrgRole.values), name="orgs_membership_role_valid"),
        ]
        indexes = [models.Index(fields=["organization", "role"], name="orgs_membership_org_role")]

    def __str__(self):
        return f"{self.user_id} in {self.organization_id} as {self.role}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class InvitationQuerySet(models.QuerySet):
    def by_value(self, raw: str):
        return self.filter(token_hash=hash_token(raw or ""))

    def open(self):
        """Neither accepted nor revoked (possibly expired): at most one per organization and email."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Invitation(models.Model):
    """An invitation by email. Only the hash of its link token is kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    inviter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "email"], name="orgs_invitation_one_open",
                                    condition=Q(accepted_at__isnull=True, revoked_at__isnull=True)),
            models.CheckConstraint(condition=Q(role__in=OrgRole.values), name="orgs_invitation_role_valid"),
            models.CheckConstraint(condition=Q(accepted_at__isnull=True) | Q(revoked_at__isnull=True),
                                   name="orgs_invitation_accepted_or_revoked"),
            models.CheckConstraint(condition=Q(email=models.functions.Lower(models.functions.Trim("email"))),
                                   name="orgs_invitation_email_normalized"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="orgs_invitation_expiry")]

    def __str__(self):
        return f"{self.email} to {self.organization_id} as {self.role}"

    def status(self, now=None) -> str:
        if self.accepted_at is not None:
            return InvitationStatus.ACCEPTED
        if self.revoked_at is not None:
            return InvitationStatus.REVOKED
        if self.expires_at <= (now or timezone.now()):
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING


class PendingOrganization(models.Model):
    """The organization a ``register-b2b`` sign-up asked for; created (with the user as owner) when
    the email address is verified."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="pending_organizations")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name} for {self.user_id}"

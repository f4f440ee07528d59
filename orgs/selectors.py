"""Reads for the organization API. Every read goes through the caller's membership, so an
organization the caller is not in is simply not found."""

from django.utils import timezone

from core.email import normalize_email
from core.errors import NotFound
from orgs.models import ROLE_RANK, Invitation, Membership, OrgRole, PendingOrganization
from orgs.services import PermissionDenied


def memberships_of(user):
    """The caller's memberships with their organizations, by organization name."""
    return Membership.objects.select_related("organization").filter(user=user).order_by(
        "organization__name", "organization__slug")


def membership_in(user, organization_id) -> Membership:
    membership = memberships_of(user).filter(organization_id=organization_id).first()
    if membership is None:
        raise NotFound("No such organization.")
    return membership


def members_of(organization):
    return Membership.objects.select_related("user").filter(organization=organization).order_by("joined_at", "pk")


def invitations_visible_to(user, organization_id):
    """Every invitation of the organization, newest first: for its admins and owners only."""
    membership = membership_in(user, organization_id)
    if ROLE_RANK[membership.role] < ROLE_RANK[OrgRole.ADMIN]:
        raise PermissionDenied("Only admins and owners can see the invitations.")
    return Invitation.objects.filter(organization_id=organization_id).order_by("-created_at")


def invitation_open_by_token(token: str):
    """The open (neither accepted, revoked nor expired) invitation behind a link token, with its
    organization, or None: only for showing what a link is about; accepting is the service's."""
    return (Invitation.objects.by_value(token).open().filter(expires_at__gt=timezone.now())
            .select_related("organization").first())


def invitations_pending_for(user):
    """Open, unexpired invitations sent to ``user``'s email address, with their organization and
    inviter, soonest expiry first. None until the address is verified: a verified address is what
    lets someone accept without the mailed link (orgs.services.invitation_accept_mine)."""
    if not user.email_verified:
        return Invitation.objects.none()
    return (Invitation.objects.open().filter(email=normalize_email(user.email), expires_at__gt=timezone.now())
            .select_related("organization", "inviter").order_by("expires_at", "pk"))


def pending_organization_names(user) -> tuple[str, ...]:
    """The organizations a ``register-b2b`` sign-up of ``user`` asked for, oldest first (created when the
    address is verified: orgs.services.pending_organizations_create)."""
    return tuple(PendingOrganization.objects.filter(user=user).order_by("created_at", "pk").values_list("name",
                                                                                                        flat=True))

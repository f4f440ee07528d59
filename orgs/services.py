"""Organization flows: create, update, delete; change and remove members; invite, revoke, accept.

Every service that changes who is in an organization, or with which role, first locks the
organization row (``select_for_update``) and reads the caller's membership inside that lock, so two
concurrent requests are decided one after the other: an organization never loses its last owner,
and a caller who was demoted a moment ago no longer acts with the old role.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from audit.models import EventType
from audit.refusals import RefusalScope, audited_refusals
from audit.services import audit_record
from core.email import normalize_email
from core.errors import ApiError, NotFound
from core.links import public_url
from core.tokens import hash_token
from notifications.services import outbox_enqueue
from orgs.app_settings import app_settings
from orgs.models import ROLE_RANK, Invitation, Membership, Organization, OrgRole, PendingOrganization
from security.ratelimit import ratelimit_hit
from security.stepup import SensitiveAction, step_up_audited, step_up_check, step_up_require

SLUG_MAX_LENGTH = 50
UNSET = object()


class PermissionDenied(ApiError):
    status_code = 403
    default_code = "permission_denied"
    default_detail = "Your role in this organization does not allow this."


class LastOwner(ApiError):
    status_code = 409
    default_code = "last_owner"
    default_detail = "An organization must keep at least one owner. Make someone else an owner first."


class SlugTaken(ApiError):
    status_code = 409
    default_code = "slug_taken"
    default_detail = "This slug is already in use."


class AlreadyMember(ApiError):
    status_code = 409
    default_code = "already_member"
    default_detail = "This person is already a member of the organization."


class InvitationNotPending(ApiError):
    status_code = 409
    default_code = "invitation_not_pending"
    default_detail = "This invitation has already been accepted or revoked."


class InvalidInvitation(ApiError):
    status_code = 400
    default_code = "invalid_token"
    default_detail = "This invitation is invalid, has been revoked or has already been used."


class ExpiredInvitation(ApiError):
    status_code = 400
    default_code = "token_expired"
    default_detail = "This invitation has expired. Ask for a new one."


class InvitationEmailMismatch(ApiError):
    status_code = 403
    default_code = "invitation_email_mismatch"
    default_detail = "This invitation was sent to another email address. Sign in with that address to accept it."


def _not_found() -> NotFound:
    return NotFound("No such organization.")


def _at_least(membership: Membership, role: str, message: str | None = None) -> None:
    if ROLE_RANK[membership.role] < ROLE_RANK[role]:
        raise PermissionDenied(message)


def _lock(*, organization_id, user) -> Membership:
    """Lock the organization row, then read the caller's membership inside the lock. A caller who is
    not a member learns nothing: the organization is "not found"."""
    organization = Organization.objects.select_for_update().filter(pk=organization_id).first()
    if organization is None:
        raise _not_found()
    actor = Membership.objects.filter(organization=organization, user=user).first()
    if actor is None:
        raise _not_found()
    actor.organization = organization
    return actor


def _owner_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=OrgRole.OWNER).count()


# --- organizations ------------------------------------------------------------------------------------

def _slug_base(name: str) -> str:
    """ASCII slug from any name: accents are transliterated (``Café`` -> ``cafe``); a name with no
    Latin letters or digits at all becomes ``org``. Room is left for a ``-<n>`` suffix."""
    return slugify(name)[: SLUG_MAX_LENGTH - 8].strip("-") or "org"


def _free_slug(base: str) -> str:
    taken = set(Organization.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _insert_organization(*, name: str, slug: str | None) -> Organization:
    """Insert with the given slug (taken: 409) or a free one derived from the name (a concurrent
    insert of the same slug is retried with the next free one)."""
    if slug:
        try:
            with transaction.atomic():
                return Organization.objects.create(name=name, slug=slug)
        except IntegrityError:
            raise SlugTaken(fields={"slug": ["This slug is already in use."]}) from None
    base = _slug_base(name)
    for attempt in range(5):
        candidate = _free_slug(base) if attempt < 4 else f"{base}-{secrets.token_hex(3)}"
        try:
            with transaction.atomic():
                return Organization.objects.create(name=name, slug=candidate)
        except IntegrityError:
            continue
    raise SlugTaken("Could not find a free slug for this name; choose one.")


@transaction.atomic
def organization_create(*, user: User, name: str, slug: str | None = None, request=None, **context) -> Membership:
    """A new organization with ``user`` as its owner. Returns the owner's membership."""
    organization = _insert_organization(name=name, slug=slug)
    membership = Membership.objects.create(user=user, organization=organization, role=OrgRole.OWNER)
    audit_record(event=EventType.ORG_CREATED, request=request, actor=user, organization=organization,
                 name=organization.name, slug=organization.slug, **context)
    return membership


def session_policy_errors(policy: dict, *, limits: dict[str, tuple[int, int]]) -> dict[str, list[str]]:
    """Owners may only tighten the global session rules: ``limits`` is their allowed range, in seconds,
    per policy value (``sessions_app.policy.session_policy_limits``, supplied by flows.organizations)."""
    errors = {}
    for key, (low, high) in limits.items():
        value = policy.get(key)
        if value is not None and not low <= value <= high:
            errors[f"sessionPolicy.{key}"] = [
                f"Must be between {low} and {high} seconds (the global default); a policy can only be stricter."]
    return errors


@transaction.atomic
def organization_update(*, user: User, organization_id, name=UNSET, slug=UNSET, session_policy=UNSET,
                        policy_limits: dict[str, tuple[int, int]] | None = None, request=None) -> Membership:
    """Rename (admins and owners) or change the session policy (owners). ``session_policy`` is a dict
    with ``maxSessionLifetimeSeconds`` and/or ``idleTimeoutSeconds`` (a value or None to clear), or
    None to clear both; it must lie within ``policy_limits`` (``session_policy_errors``; callers go
    through flows.organizations, which supplies them). Returns the caller's membership."""
    if session_policy is not UNSET and policy_limits is None:
        raise TypeError("organization_update: a session policy needs policy_limits (flows.organizations)")
    actor = _lock(organization_id=organization_id, user=user)
    organization = actor.organization
    if name is not UNSET or slug is not UNSET:
        _at_least(actor, OrgRole.ADMIN, "Only admins and owners can rename the organization.")
    changes: dict[str, tuple] = {}
    if session_policy is not UNSET:
        _at_least(actor, OrgRole.OWNER, "Only owners can change the session policy.")
        if session_policy is None:
            session_policy = {"maxSessionLifetimeSeconds": None, "idleTimeoutSeconds": None}
        errors = session_policy_errors(session_policy, limits=policy_limits)
        if errors:
            raise ApiError("The session policy is not allowed.", code="validation_error", fields=errors)
        for key, attr in (("maxSessionLifetimeSeconds", "max_session_lifetime_seconds"),
                          ("idleTimeoutSeconds", "idle_timeout_seconds")):
            if key in session_policy and session_policy[key] != getattr(organization, attr):
                changes[attr] = (getattr(organization, attr), session_policy[key])
    if name is not UNSET and name != organization.name:
        changes["name"] = (organization.name, name)
    if slug is not UNSET and slug and slug != organization.slug:
        changes["slug"] = (organization.slug, slug)
    if not changes:
        return actor
    for attr, (_, new) in changes.items():
        setattr(organization, attr, new)
    try:
        with transaction.atomic():
            organization.save(update_fields=[*changes, "updated_at"])
    except IntegrityError:
        raise SlugTaken(fields={"slug": ["This slug is already in use."]}) from None
    audit_record(event=EventType.ORG_UPDATED, request=request, actor=user, organization=organization,
                 changed={attr: {"old": old, "new": new} for attr, (old, new) in changes.items()})
    return actor


@step_up_audited
@transaction.atomic
def organization_delete(*, user: User, organization_id, request=None) -> None:
    """Owners only, with a fresh session (step-up ``org.delete``, API and page alike). Memberships and
    invitations go with it; sessions that had it active fall back to no organization (their next
    access token carries no ``org``)."""
    actor = _lock(organization_id=organization_id, user=user)
    _at_least(actor, OrgRole.OWNER, "Only owners can delete the organization.")
    step_up_check(request=request, action=SensitiveAction.ORG_DELETE)
    organization = actor.organization
    audit_record(event=EventType.ORG_DELETED, request=request, actor=user, organization=organization,
                 name=organization.name, slug=organization.slug,
                 members=Membership.objects.filter(organization=organization).count())
    organization.delete()


# --- members ------------------------------------------------------------------------------------------

def _target(actor: Membership, member_user_id) -> Membership:
    """A membership of the organization in the path (an id from another organization is not found)."""
    target = Membership.objects.select_related("user").filter(
        organization=actor.organization, user_id=member_user_id).first()
    if target is None:
        raise NotFound("No such member in this organization.")
    return target


@step_up_audited
@transaction.atomic
def member_role_change(*, user: User, organization_id, member_user_id, role: str, request=None) -> Membership:
    """Admins set the role of admins and members (to admin or member); only owners make someone an
    owner or change an owner's role, with a fresh session (step-up ``org.ownership``); the last owner
    cannot step down."""
    actor = _lock(organization_id=organization_id, user=user)
    _at_least(actor, OrgRole.ADMIN, "Only admins and owners can change roles.")
    target = _target(actor, member_user_id)
    if OrgRole.OWNER in (role, target.role):
        _at_least(actor, OrgRole.OWNER, "Only owners can make someone an owner or change an owner's role.")
    if target.role == role:
        return target
    if target.role == OrgRole.OWNER and _owner_count(actor.organization) <= 1:
        raise LastOwner()
    if OrgRole.OWNER in (role, target.role):
        step_up_check(request=request, action=SensitiveAction.ORG_OWNERSHIP)
    old = target.role
    target.role = role
    target.save(update_fields=["role"])
    audit_record(event=EventType.ORG_MEMBER_ROLE_CHANGED, request=request, actor=user, subject=target.user,
                 organization=actor.organization, old_role=old, new_role=role)
    return target


@step_up_audited
@transaction.atomic
def member_remove(*, user: User, organization_id, member_user_id, request=None) -> None:
    """Admins remove admins and members; only owners remove owners; everyone may leave. The last
    owner can neither be removed nor leave; removing an owner (leaving as one, too) needs a fresh
    session (step-up ``org.ownership``). Sessions of the removed member that had this
    organization active lose it at once (their next refresh carries no ``org``)."""
    actor = _lock(organization_id=organization_id, user=user)
    target = _target(actor, member_user_id)
    leaving = target.pk == actor.pk
    if not leaving:
        _at_least(actor, OrgRole.ADMIN, "Only admins and owners can remove members.")
        if target.role == OrgRole.OWNER:
            _at_least(actor, OrgRole.OWNER, "Only owners can remove an owner.")
    if target.role == OrgRole.OWNER and _owner_count(actor.organization) <= 1:
        raise LastOwner()
    if target.role == OrgRole.OWNER:
        step_up_check(request=request, action=SensitiveAction.ORG_OWNERSHIP)
    target.delete()  # sessions_app/receivers.py clears it as the active organization of the member's sessions
    audit_record(event=EventType.ORG_MEMBER_REMOVED, request=request, actor=user, subject=target.user,
                 organization=actor.organization, role=target.role, left=leaving)


class SoleOwner(LastOwner):
    """Deleting an account that is the only owner of organizations (``last_owner``, 409): the message
    names them."""

    def __init__(self, organizations: list[Organization]):
        names = ", ".join(f"{o.name} ({o.slug})" for o in organizations)
        super().__init__(f"You are the only owner of {names}. Make someone else an owner, or delete "
                         f"{'it' if len(organizations) == 1 else 'them'}, before you delete your account.")
        self.organizations = organizations
        self.audit_context = {"organizations": [str(o.pk) for o in organizations]}  # audit.refusals adds it


def memberships_end_for_account_deletion(*, user: User, request=None) -> None:
    """Run inside the account deletion's transaction, before anything else is changed: every
    organization ``user`` belongs to is locked (in id order, as one membership change at a time
    locks one), and if ``user`` is the only owner of any of them the deletion is refused
    (``SoleOwner``). Otherwise each membership ends as a departure (``org.member.removed``,
    ``left: true``, ``reason: "account_deleted"``), so the organization's trail shows who went."""
    organization_ids = list(Membership.objects.filter(user=user).values_list("organization_id", flat=True))
    if not organization_ids:
        return
    organizations = list(Organization.objects.select_for_update().filter(pk__in=organization_ids).order_by("pk"))
    memberships = {m.organization_id: m for m in Membership.objects.filter(user=user)}
    sole = [o for o in organizations
            if memberships.get(o.pk) is not None and memberships[o.pk].role == OrgRole.OWNER
            and _owner_count(o) <= 1]
    if sole:
        raise SoleOwner(sorted(sole, key=lambda o: (o.name, o.slug)))
    for organization in organizations:
        membership = memberships.get(organization.pk)
        if membership is None:  # left a moment ago
            continue
        membership.delete()
        audit_record(event=EventType.ORG_MEMBER_REMOVED, request=request, actor=user, subject=user,
                     organization=organization, role=membership.role, left=True, reason="account_deleted")


# --- invitations --------------------------------------------------------------------------------------

def invitation_create(*, user: User, organization_id, email: str, role: str, request=None) -> Invitation:
    """Invite an email address (admins and owners; an ``owner`` invitation only by owners, with a
    fresh session: step-up ``org.ownership``). An open invitation for the same address is replaced:
    its link stops working. Each invitation mails the address, so it first spends three budgets
    (429 ``rate_limited``): the inviter's, the organization's and the recipient address's."""
    if request is not None:
        _invitation_budgets_spend(user=user, organization_id=organization_id, email=email, role=role,
                                  request=request)
    return _invitation_create(user=user, organization_id=organization_id, email=email, role=role, request=request)


def _invitation_budgets_spend(*, user: User, organization_id, email: str, role: str, request) -> None:
    """Before the transaction (a 429 raised inside it would roll its audit row back): only a caller
    the service will let invite spends anything, so neither a stranger nor a plain member can use up
    an organization's invitations. The service checks the role again under its lock."""
    needed = OrgRole.OWNER if role == OrgRole.OWNER else OrgRole.ADMIN
    membership = Membership.objects.filter(organization_id=organization_id, user=user).only("role").first()
    if membership is None or ROLE_RANK[membership.role] < ROLE_RANK[needed]:
        return  # the service answers 404 / 403 and sends nothing
    if role == OrgRole.OWNER:
        step_up_require(request=request, action=SensitiveAction.ORG_OWNERSHIP)  # before any budget is spent
    ratelimit_hit(request=request, scope="invitation_inviter", value=f"user:{user.pk}")
    ratelimit_hit(request=request, scope="invitation_org", value=f"org:{organization_id}")
    ratelimit_hit(request=request, scope="invitation_recipient", value=f"email:{normalize_email(email)[:254]}")


@step_up_audited
@transaction.atomic
def _invitation_create(*, user: User, organization_id, email: str, role: str, request=None) -> Invitation:
    actor = _lock(organization_id=organization_id, user=user)
    _at_least(actor, OrgRole.ADMIN, "Only admins and owners can invite.")
    if role == OrgRole.OWNER:
        _at_least(actor, OrgRole.OWNER, "Only owners can invite an owner.")
        step_up_check(request=request, action=SensitiveAction.ORG_OWNERSHIP)  # (checked before, unless raced)
    organization = actor.organization
    email = normalize_email(email)
    if Membership.objects.filter(organization=organization, user__email=email).exists():
        raise AlreadyMember(fields={"email": ["This person is already a member."]})
    now = timezone.now()
    replaced = list(Invitation.objects.open().filter(organization=organization, email=email)
                    .values_list("pk", flat=True))
    if replaced:
        Invitation.objects.filter(pk__in=replaced).update(revoked_at=now)
        for pk in replaced:
            audit_record(event=EventType.ORG_INVITATION_REVOKED, request=request, actor=user,
                         organization=organization, invitation=pk, email=email, replaced=True)
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization, email=email, role=role, inviter=user, token_hash=hash_token(raw),
        created_at=now, expires_at=now + app_settings.INVITATION_TTL)
    outbox_enqueue(kind="invitation", recipient=email, subject="You are invited to join {organization}",
                   subject_values={"organization": organization.name}, template="invitation",
                   context={"inviter": user, "organization": organization, "role": invitation.get_role_display(),
                            "link": public_url("web-invitation-accept", token=raw),
                            "hours": int(app_settings.INVITATION_TTL.total_seconds() // 3600)})
    audit_record(event=EventType.ORG_INVITATION_CREATED, request=request, actor=user, organization=organization,
                 invitation=invitation.pk, email=email, role=role, replaced=len(replaced))
    return invitation


@transaction.atomic
def invitation_revoke(*, user: User, organization_id, invitation_id, request=None) -> None:
    actor = _lock(organization_id=organization_id, user=user)
    _at_least(actor, OrgRole.ADMIN, "Only admins and owners can revoke invitations.")
    invitation = Invitation.objects.filter(organization=actor.organization, pk=invitation_id).first()
    if invitation is None:
        raise NotFound("No such invitation in this organization.")
    if not Invitation.objects.open().filter(pk=invitation.pk).update(revoked_at=timezone.now()):
        raise InvitationNotPending()
    audit_record(event=EventType.ORG_INVITATION_REVOKED, request=request, actor=user,
                 organization=actor.organization, invitation=invitation.pk, email=invitation.email)


def invitation_accept(*, user: User, token: str, request=None) -> Membership:
    """Join with the invitation's role. The link is single-use, expires, and only works for the
    account whose email address it was sent to."""
    with audited_refusals(event=EventType.ORG_INVITATION_ACCEPT_FAILED, request=request, actor=user) as scope:
        return _invitation_accept(user=user, invitation=Invitation.objects.by_value(token).first(), request=request,
                                  scope=scope)


def invitation_accept_mine(*, user: User, invitation_id, request=None) -> Membership:
    """Accept, by its id, an invitation addressed to the caller's verified email address (the
    ``/organizations`` list and ``POST invitations/<id>/accept``). A verified address proves control
    of the mailbox, as the mailed token does; any other invitation is not found."""
    with audited_refusals(event=EventType.ORG_INVITATION_ACCEPT_FAILED, request=request, actor=user) as scope:
        return _invitation_accept(user=user, invitation=_invitation_addressed_to(user, invitation_id),
                                  request=request, scope=scope, via="list")


def _invitation_addressed_to(user: User, invitation_id) -> Invitation:
    """The invitation ``invitation_id`` if it was sent to ``user``'s verified address (in any state);
    otherwise 404, the same answer as an unknown id, so nobody learns of invitations to others."""
    invitation = None
    if user.email_verified:
        invitation = Invitation.objects.filter(pk=invitation_id, email=normalize_email(user.email)).first()
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


def _invitation_accept(*, user: User, invitation: Invitation | None, request, scope: RefusalScope,
                       **context) -> Membership:
    """The one acceptance, after either lookup (token or id): lock the organization, check, join, audit.
    Runs in ``scope`` (audited_refusals): a refusal once the invitation is known names its organization."""
    now = timezone.now()
    if invitation is None or invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise InvalidInvitation()
    organization = Organization.objects.select_for_update().filter(pk=invitation.organization_id).first()
    error = None
    if organization is None:
        error = InvalidInvitation()
    elif invitation.expires_at <= now:
        error = ExpiredInvitation()
    elif normalize_email(user.email) != invitation.email:
        error = InvitationEmailMismatch()
    elif Membership.objects.filter(organization=organization, user=user).exists():
        error = AlreadyMember()
    elif not Invitation.objects.open().filter(pk=invitation.pk).update(accepted_at=now):
        error = InvalidInvitation()  # accepted or revoked a moment ago
    if error is not None:
        scope.organization = invitation.organization_id
        raise error
    membership = Membership.objects.create(user=user, organization=organization, role=invitation.role,
                                           joined_at=now)
    audit_record(event=EventType.ORG_INVITATION_ACCEPTED, request=request, actor=user, organization=organization,
                 invitation=invitation.pk, role=invitation.role, invited_by=invitation.inviter_id, **context)
    return membership


@transaction.atomic
def invitation_decline(*, user: User, invitation_id, request=None) -> None:
    """Say no to an invitation addressed to the caller's verified address: it stops being pending
    (it is marked revoked, so its link stops working and the organization no longer lists it as
    pending), audited as ``org.invitation.declined``. Refusals are the acceptance's: 404 for anyone
    else's, ``invalid_token`` once accepted or revoked, ``token_expired`` once expired."""
    invitation = _invitation_addressed_to(user, invitation_id)
    now = timezone.now()
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise InvalidInvitation()
    if invitation.expires_at <= now:
        raise ExpiredInvitation()
    if not Invitation.objects.open().filter(pk=invitation.pk).update(revoked_at=now):
        raise InvalidInvitation()  # accepted or revoked a moment ago
    audit_record(event=EventType.ORG_INVITATION_DECLINED, request=request, actor=user,
                 organization=invitation.organization_id, invitation=invitation.pk, email=invitation.email)


def invitations_cleanup(*, now: datetime | None = None) -> int:
    """Delete invitations that expired without being accepted (pending or revoked)."""
    return Invitation.objects.filter(expires_at__lt=now or timezone.now(), accepted_at__isnull=True).delete()[0]


# --- register-b2b -------------------------------------------------------------------------------------

def pending_organization_store(*, user: User, name: str) -> PendingOrganization:
    """Remember the organization a B2B sign-up asked for, until the email address is verified."""
    return PendingOrganization.objects.create(user=user, name=name)


@transaction.atomic
def pending_organizations_create(*, user: User, request=None) -> list[Membership]:
    """Create the organizations ``user`` asked for at sign-up, with them as owner (called once the
    email address is verified; nothing to do for everyone else)."""
    created = []
    for pending in PendingOrganization.objects.select_for_update().filter(user=user).order_by("created_at", "pk"):
        created.append(organization_create(user=user, name=pending.name, request=request, via="register_b2b"))
        pending.delete()
    return created

"""Organization pages (issue 5): my organizations and the switcher, one organization (members,
invitations, settings), its deletion, and the landing page of the emailed invitation link.

Each view parses its form, calls one service (``orgs.services``, ``flows.organizations`` for the
settings, or ``session_switch_organization`` for the switcher: the API's paths), renders. The services
decide every permission, the last-owner rule and whether an id in the path belongs to the organization
in the path; a page only turns their errors into pages with the same status. Which buttons a page
*shows* follows the role, but nothing relies on that. An organization the caller is not a member of is
404 everywhere, before any form is looked at."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.errors import ApiError
from flows import organizations as org_flows
from orgs import selectors
from orgs import services as orgs
from orgs.models import ROLE_RANK, InvitationStatus, OrgRole
from security.stepup import ReauthenticationRequired, SensitiveAction, step_up_require
from sessions_app.policy import session_policy_limits
from sessions_app.services import session_switch_organization
from web import forms as web_forms
from web import org_forms as forms
from web.decorators import page_rate_limit, signed_in
from web.pages import message, page, safe_next, to_reauth

# Every organization page's POST counts against the API's per-client limit (the same operations).
RATE_SCOPE = "api"

NOTICES = {
    "created": "The organization is created. You are its owner.",
    "switched": "The active organization of this browser is changed.",
    "renamed": "The organization is saved.",
    "policy": "The session policy is saved.",
    "role": "The role is changed.",
    "removed": "The member is removed.",
    "left": "You left the organization.",
    "invited": "The invitation is sent.",
    "revoked": "The invitation is revoked; its link no longer works.",
    "deleted": "The organization is deleted.",
    "joined": "You joined the organization.",
    "declined": "The invitation is declined.",
}


def _notice(request):
    return NOTICES.get(request.GET.get("done", ""))


def _org_url(org_id, done: str | None = None) -> str:
    return f"/organizations/{org_id}" + (f"?done={done}" if done else "")


def _not_found(request, text="No such organization."):
    return message(request, "Not found", text, status=404, link=("/organizations", "Your organizations"))


def _refused(request, exc: ApiError, org_id=None):
    """A service's refusal as a page with its status: 404 (not a member, an id from elsewhere),
    403 permission_denied, 409 last_owner / invitation_not_pending / ..., 429 with its Retry-After.
    A step-up refusal (the service's rule, security/stepup.py; already audited) sends the browser to
    /account/reauthenticate and back to the organization's page, where the action can be repeated."""
    if isinstance(exc, ReauthenticationRequired):
        return to_reauth(request, _org_url(org_id) if org_id else "/organizations")
    if exc.status_code == 404:
        return _not_found(request, exc.message)
    title = "Too many attempts" if exc.status_code == 429 else "Nothing was changed"
    response = message(request, title, exc.message, status=exc.status_code,
                        link=(_org_url(org_id), "Back to the organization") if org_id else
                        ("/organizations", "Your organizations"))
    for name, value in exc.headers.items():  # 429: Retry-After
        response[name] = value
    return response


def _membership(request, org_id):
    """The caller's membership in the organization of the path, or None (the page answers 404)."""
    try:
        return selectors.membership_in(request.browser.row.user, org_id)
    except ApiError:
        return None


# --- my organizations and the switcher ------------------------------------------------------------------
def _list_page(request, form, status=200):
    row = request.browser.row
    return page(request, "organizations", status=status, memberships=list(selectors.memberships_of(row.user)),
                 invitations=list(selectors.invitations_pending_for(row.user)),
                 active_id=row.active_organization_id, form=form, notice=_notice(request))


@require_http_methods(["GET", "POST"])
@signed_in
@page_rate_limit(RATE_SCOPE)
def organizations(request):
    """GET: my organizations (name, slug, my role, which one is active here). POST: create one."""
    if request.method == "GET":
        return _list_page(request, forms.OrganizationCreateForm())
    form = forms.OrganizationCreateForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        membership = orgs.organization_create(user=request.browser.row.user, name=form.cleaned_data["name"],
                                              slug=form.cleaned_data["slug"] or None, request=request)
    except ApiError as exc:  # 409 slug_taken
        form.add_api_error(exc)
        return _list_page(request, form, status=exc.status_code)
    return redirect(_org_url(membership.organization_id, "created"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def organizations_switch(request):
    """Make an organization active on this browser's session, or none (empty ``organization``): the
    service of ``POST /api/v1/auth/switch-organization`` with the cookie (the refresh token stays as
    it is). Later access tokens of this browser (``GET /api/v1/auth/token``) carry ``org``/``orgRole``."""
    form = forms.OrganizationChoiceForm(request.POST)
    if not form.is_valid():
        return message(request, "Nothing was changed", "Choose one of your organizations.", status=400,
                        link=("/organizations", "Your organizations"))
    try:
        session_switch_organization(session=request.browser.row, organization_id=form.cleaned_data["organization"],
                                    refresh_token=False, request=request)
    except ApiError as exc:  # 404 not a member, 403 organization_session_policy
        return _refused(request, exc)
    return redirect(safe_next(request, "/organizations?done=switched"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def my_invitation_accept(request, invitation_id):
    """"Accept" on an invitation listed on /organizations (sent to my verified address): the service
    of ``POST /api/v1/orgs/invitations/<id>/accept``. Anyone else's invitation is 404."""
    try:
        membership = orgs.invitation_accept_mine(user=request.browser.row.user, invitation_id=invitation_id,
                                                 request=request)
    except ApiError as exc:  # 404, invalid_token, token_expired, already_member
        return _refused(request, exc)
    return redirect(_org_url(membership.organization_id, "joined"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def my_invitation_decline(request, invitation_id):
    try:
        orgs.invitation_decline(user=request.browser.row.user, invitation_id=invitation_id, request=request)
    except ApiError as exc:
        return _refused(request, exc)
    return redirect("/organizations?done=declined")


# --- one organization ----------------------------------------------------------------------------------------
def _minutes(seconds: int | None) -> int | None:
    return None if seconds is None else -(-seconds // 60)


def _policy_hint() -> str:
    limits = session_policy_limits()
    low, lifetime = limits["maxSessionLifetimeSeconds"]
    idle = limits["idleTimeoutSeconds"][1]
    return (f"At least {_minutes(low)} minutes each; at most {lifetime // 86400} days since sign-in and "
            f"{idle // 86400} days unused (the global rules): a policy can only be stricter.")


def _organization_page(request, membership, status=200, alert=None, **bound):
    """The organization page for ``membership`` (the caller's), with any bound form that failed."""
    user, organization = request.browser.row.user, membership.organization
    rank = ROLE_RANK[membership.role]
    is_admin, is_owner = rank >= ROLE_RANK[OrgRole.ADMIN], membership.role == OrgRole.OWNER
    role_choices = [c for c in OrgRole.choices if is_owner or c[0] != OrgRole.OWNER]
    members = []
    for member in selectors.members_of(organization):
        manageable = is_admin and (member.role != OrgRole.OWNER or is_owner)
        members.append({"membership": member, "me": member.user_id == user.pk, "can_change_role": manageable,
                        "can_remove": manageable or member.user_id == user.pk})
    now = timezone.now()
    invitations = ([i for i in selectors.invitations_visible_to(user, organization.pk)
                    if i.status(now) == InvitationStatus.PENDING] if is_admin else [])
    return page(
        request, "organization", status=status, title=organization.name, organization=organization,
        membership=membership, is_admin=is_admin, is_owner=is_owner, members=members, role_choices=role_choices,
        invitations=invitations, active=request.browser.row.active_organization_id == organization.pk,
        notice=_notice(request), alert=alert, policy_hint=_policy_hint(),
        rename_form=bound.get("rename") or forms.OrganizationRenameForm(
            initial={"name": organization.name, "slug": organization.slug}),
        policy_form=bound.get("policy") or forms.SessionPolicyForm(initial={
            "max_lifetime_minutes": _minutes(organization.max_session_lifetime_seconds),
            "idle_timeout_minutes": _minutes(organization.idle_timeout_seconds)}),
        invite_form=bound.get("invite") or forms.InvitationForm(can_invite_owner=is_owner))


def _form_failed(request, org_id, *, key: str, form, status: int = 400):
    """A form of the organization page did not pass: the page again with its errors (404 first for a
    non-member, so a bad form tells an outsider nothing)."""
    membership = _membership(request, org_id)
    if membership is None:
        return _not_found(request)
    return _organization_page(request, membership, status=status, alert="Nothing was changed: see the form below.",
                              **{key: form})


def _service_failed(request, org_id, exc: ApiError, *, key: str, form):
    """Validation and conflicts (400, 409: slug_taken, already_member) go next to the form; 403/404
    are pages of their own."""
    if exc.status_code in (400, 409):
        form.add_api_error(exc)
        return _form_failed(request, org_id, key=key, form=form, status=exc.status_code)
    return _refused(request, exc, org_id)


@require_GET
@signed_in
def organization(request, org_id):
    membership = _membership(request, org_id)
    if membership is None:
        return _not_found(request)
    return _organization_page(request, membership)


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def organization_rename(request, org_id):
    form = forms.OrganizationRenameForm(request.POST)
    if not form.is_valid():
        return _form_failed(request, org_id, key="rename", form=form)
    changes = {"name": form.cleaned_data["name"]}
    if form.cleaned_data["slug"]:
        changes["slug"] = form.cleaned_data["slug"]
    try:
        org_flows.organization_update(user=request.browser.row.user, organization_id=org_id, request=request,
                                      **changes)
    except ApiError as exc:
        return _service_failed(request, org_id, exc, key="rename", form=form)
    return redirect(_org_url(org_id, "renamed"))


def _policy_seconds(minutes: int | None, current: int | None) -> int | None:
    """Minutes from the page as seconds; a value the page showed rounded up (set through the API in
    seconds) and sent back unchanged keeps its exact seconds."""
    if minutes is None:
        return None
    if current is not None and _minutes(current) == minutes:
        return current
    return minutes * 60


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def organization_policy(request, org_id):
    """The session policy (owners; the service says 403 to everyone else)."""
    form = forms.SessionPolicyForm(request.POST)
    membership = _membership(request, org_id)
    if membership is None:
        return _not_found(request)
    if not form.is_valid():
        return _form_failed(request, org_id, key="policy", form=form)
    organization = membership.organization
    policy = {
        "maxSessionLifetimeSeconds": _policy_seconds(form.cleaned_data["max_lifetime_minutes"],
                                                     organization.max_session_lifetime_seconds),
        "idleTimeoutSeconds": _policy_seconds(form.cleaned_data["idle_timeout_minutes"],
                                              organization.idle_timeout_seconds),
    }
    try:
        org_flows.organization_update(user=request.browser.row.user, organization_id=org_id,
                                      session_policy=policy, request=request)
    except ApiError as exc:
        if exc.fields:  # the service counts in seconds, the page in minutes
            limits = session_policy_limits()
            exc.fields = {name: [f"Must be between {_minutes(limits[name.split('.')[-1]][0])} and "
                                 f"{limits[name.split('.')[-1]][1] // 60} minutes; a policy can only be "
                                 f"stricter than the global rules."]
                          for name in exc.fields if name.split(".")[-1] in limits}
        return _service_failed(request, org_id, exc, key="policy", form=form)
    return redirect(_org_url(org_id, "policy"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def member_role(request, org_id, user_id):
    form = forms.RoleForm(request.POST)
    if not form.is_valid():
        if _membership(request, org_id) is None:
            return _not_found(request)
        return message(request, "Nothing was changed", "Choose one of the roles: owner, admin or member.",
                        status=400, link=(_org_url(org_id), "Back to the organization"))
    try:
        orgs.member_role_change(user=request.browser.row.user, organization_id=org_id, member_user_id=user_id,
                                role=form.cleaned_data["role"], request=request)
    except ApiError as exc:  # 403, 404 (not a member, or a member of another organization), 409 last_owner
        return _refused(request, exc, org_id)
    return redirect(_org_url(org_id, "role"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def member_remove(request, org_id, user_id):
    """Remove a member, or leave (your own row)."""
    me = request.browser.row.user
    try:
        orgs.member_remove(user=me, organization_id=org_id, member_user_id=user_id, request=request)
    except ApiError as exc:
        return _refused(request, exc, org_id)
    if user_id == me.pk:
        return redirect("/organizations?done=left")
    return redirect(_org_url(org_id, "removed"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def invitation_create(request, org_id):
    form = forms.InvitationForm(request.POST, can_invite_owner=True)
    if not form.is_valid():
        return _form_failed(request, org_id, key="invite", form=form)
    try:
        orgs.invitation_create(user=request.browser.row.user, organization_id=org_id, request=request,
                               email=form.cleaned_data["email"], role=form.cleaned_data["role"])
    except ApiError as exc:  # 403 (members; admins inviting an owner), 409 already_member
        return _service_failed(request, org_id, exc, key="invite", form=form)
    return redirect(_org_url(org_id, "invited"))


@require_POST
@signed_in
@page_rate_limit(RATE_SCOPE)
def invitation_revoke(request, org_id, invitation_id):
    try:
        orgs.invitation_revoke(user=request.browser.row.user, organization_id=org_id, invitation_id=invitation_id,
                               request=request)
    except ApiError as exc:  # 403, 404 (an invitation of another organization), 409 invitation_not_pending
        return _refused(request, exc, org_id)
    return redirect(_org_url(org_id, "revoked"))


@require_http_methods(["GET", "POST"])
@signed_in
@page_rate_limit(RATE_SCOPE)
def organization_delete(request, org_id):
    """GET asks, POST with the confirmation box deletes (owners). Destructive for everyone in it, so
    like deleting an account it needs a password entry within AUTH_REAUTH_MAX_AGE_SECONDS (step-up);
    a stale session goes to /account/reauthenticate and comes back here."""
    membership = _membership(request, org_id)
    if membership is None:
        return _not_found(request)
    if request.method == "GET" and membership.role != OrgRole.OWNER:  # the POST is the service's to refuse
        return message(request, "Only owners", "Only owners can delete the organization.", status=403,
                        link=(_org_url(org_id), "Back to the organization"))
    request.device_session = request.browser.row
    try:  # the rule the service applies again on POST (org.delete), asked before the form is shown
        step_up_require(request=request, action=SensitiveAction.ORG_DELETE)
    except ReauthenticationRequired:
        return to_reauth(request, f"/organizations/{org_id}/delete")
    form = forms.DeleteOrganizationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                orgs.organization_delete(user=request.browser.row.user, organization_id=org_id, request=request)
            except ApiError as exc:  # 403 for admins and members
                return _refused(request, exc, org_id)
            return redirect("/organizations?done=deleted")
        return page(request, "organization_delete", status=400, form=form, organization=membership.organization)
    return page(request, "organization_delete", form=form, organization=membership.organization)


# --- the invitation link ---------------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@page_rate_limit(RATE_SCOPE)
def invitation_accept(request):
    """``{AUTH_PUBLIC_URL}/invitations/accept?token=…`` from the invitation mail. A GET never uses
    the token (mail scanners fetch links): it shows what the invitation is about and a button that
    POSTs it to ``orgs.services.invitation_accept``. Not signed in: sign in (or register) first, and
    come back to this very link. Signed in as another address: say so, and offer to switch account."""
    token = (request.POST.get("token") if request.method == "POST" else request.GET.get("token")) or ""
    here = "/invitations/accept?" + urlencode({"token": token})
    context = {"token_form": web_forms.TokenForm(initial={"token": token}), "has_token": bool(token),
               "login_url": "/login?" + urlencode({"next": here}),
               "add_url": "/login?" + urlencode({"add": "1", "next": here})}
    row = request.browser.row
    if row is None:  # anonymous (a POST, too: nothing is accepted without an account)
        return page(request, "invitation_accept", anonymous=True, **context)
    if request.method == "GET":
        invitation = selectors.invitation_open_by_token(token) if token else None
        return page(request, "invitation_accept", invitation=invitation, **context)
    form = web_forms.TokenForm(request.POST)
    if not form.is_valid():
        return message(request, "This invitation does not work", "Open the link from the invitation email.",
                        status=400)
    try:
        membership = orgs.invitation_accept(user=row.user, token=form.cleaned_data["token"], request=request)
    except orgs.InvitationEmailMismatch as exc:
        return page(request, "invitation_accept", status=exc.status_code, mismatch=exc.message, **context)
    except ApiError as exc:  # invalid_token, token_expired, already_member
        return message(request, "This invitation does not work", exc.message, status=exc.status_code,
                        link=("/organizations", "Your organizations"))
    return redirect(_org_url(membership.organization_id, "joined"))

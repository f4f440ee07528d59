"""Organization API (``/api/v1/orgs/``): each view parses its input, calls one service (or selector),
renders. ``register-b2b`` is in accounts/views.py, ``switch-organization`` in sessions_app/views.py."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import ERRORS
from flows import organizations
from orgs import selectors, services
from orgs.serializers import (
    InvitationAcceptInput,
    InvitationCreateInput,
    InvitationOutput,
    InvitationsOutput,
    MemberOutput,
    MembersOutput,
    MemberUpdateInput,
    MyInvitationOutput,
    MyInvitationsOutput,
    OrganizationCreateInput,
    OrganizationOutput,
    OrganizationsOutput,
    OrganizationUpdateInput,
)

TAGS = ["organizations"]


def _doc(operation_id, summary="", **kwargs):
    """extend_schema with this module's defaults: the error envelope and the organizations tag."""
    responses = {**kwargs.pop("responses"), **ERRORS}
    return extend_schema(operation_id=operation_id, summary=summary or None, tags=TAGS, responses=responses,
                         **kwargs)


class OrganizationsApi(APIView):
    @_doc("orgs_list", "The caller's organizations", responses={200: OrganizationsOutput})
    def get(self, request):
        memberships = selectors.memberships_of(request.user)
        return Response({"organizations": OrganizationOutput(memberships, many=True).data})

    @_doc("orgs_create", "Create an organization (the caller becomes its owner)", request=OrganizationCreateInput,
          responses={201: OrganizationOutput})
    def post(self, request):
        data = OrganizationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.organization_create(user=request.user, name=data.validated_data["name"],
                                                  slug=data.validated_data.get("slug"), request=request)
        return Response(OrganizationOutput(membership).data, status=201)


class OrganizationsNoSlashApi(OrganizationsApi):
    """``/api/v1/orgs`` answers like ``/api/v1/orgs/`` (no redirect that would drop a POST body)."""

    schema = None


class OrganizationApi(APIView):
    @_doc("orgs_retrieve", responses={200: OrganizationOutput})
    def get(self, request, org_id):
        return Response(OrganizationOutput(selectors.membership_in(request.user, org_id)).data)

    @_doc("orgs_update", "Rename (admins, owners) or set the session policy (owners)",
          request=OrganizationUpdateInput, responses={200: OrganizationOutput})
    def patch(self, request, org_id):
        data = OrganizationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        changes = {attr: v[key] for key, attr in (("name", "name"), ("slug", "slug"),
                                                   ("sessionPolicy", "session_policy")) if key in v}
        membership = organizations.organization_update(user=request.user, organization_id=org_id,
                                                       request=request, **changes)
        return Response(OrganizationOutput(membership).data)

    @_doc("orgs_destroy", "Delete (owners only)", request=None, responses={204: None})
    def delete(self, request, org_id):
        services.organization_delete(user=request.user, organization_id=org_id, request=request)
        return Response(status=204)


class MembersApi(APIView):
    @_doc("orgs_members_list", responses={200: MembersOutput})
    def get(self, request, org_id):
        membership = selectors.membership_in(request.user, org_id)
        return Response({"members": MemberOutput(selectors.members_of(membership.organization), many=True).data})


class MemberApi(APIView):
    @_doc("orgs_members_update", "Change a member's role", request=MemberUpdateInput, responses={200: MemberOutput})
    def patch(self, request, org_id, user_id):
        data = MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = services.member_role_change(user=request.user, organization_id=org_id, member_user_id=user_id,
                                             role=data.validated_data["role"], request=request)
        return Response(MemberOutput(member).data)

    @_doc("orgs_members_destroy", "Remove a member (or leave, with your own user id)", request=None,
          responses={204: None})
    def delete(self, request, org_id, user_id):
        services.member_remove(user=request.user, organization_id=org_id, member_user_id=user_id, request=request)
        return Response(status=204)


class InvitationsApi(APIView):
    @_doc("orgs_invitations_list", "Invitations (admins, owners)", responses={200: InvitationsOutput})
    def get(self, request, org_id):
        invitations = selectors.invitations_visible_to(request.user, org_id)
        return Response({"invitations": InvitationOutput(invitations, many=True).data})

    @_doc("orgs_invitations_create", "Invite by email (the link goes only to that address)",
          request=InvitationCreateInput, responses={201: InvitationOutput})
    def post(self, request, org_id):
        data = InvitationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = services.invitation_create(user=request.user, organization_id=org_id, request=request,
                                                **data.validated_data)
        return Response(InvitationOutput(invitation).data, status=201)


class InvitationApi(APIView):
    @_doc("orgs_invitations_destroy", "Revoke an invitation", request=None, responses={204: None})
    def delete(self, request, org_id, invitation_id):
        services.invitation_revoke(user=request.user, organization_id=org_id, invitation_id=invitation_id,
                                   request=request)
        return Response(status=204)


class InvitationAcceptApi(APIView):
    @_doc("orgs_invitations_accept", "Accept an invitation (signed in with the invited email address)",
          request=InvitationAcceptInput, responses={200: MemberOutput})
    def post(self, request):
        data = InvitationAcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = services.invitation_accept(user=request.user, token=data.validated_data["token"], request=request)
        return Response(MemberOutput(member).data)


class MyInvitationsApi(APIView):
    @_doc("orgs_invitations_mine", "Pending invitations addressed to my verified email address (extension)",
          responses={200: MyInvitationsOutput})
    def get(self, request):
        invitations = selectors.invitations_pending_for(request.user)
        return Response({"invitations": MyInvitationOutput(invitations, many=True).data})


class MyInvitationAcceptApi(APIView):
    @_doc("orgs_invitations_mine_accept", "Accept an invitation addressed to my verified email address (extension)",
          request=None, responses={200: MemberOutput})
    def post(self, request, invitation_id):
        member = services.invitation_accept_mine(user=request.user, invitation_id=invitation_id, request=request)
        return Response(MemberOutput(member).data)


class MyInvitationDeclineApi(APIView):
    @_doc("orgs_invitations_mine_decline", "Decline an invitation addressed to my verified email address "
          "(extension)", request=None, responses={204: None})
    def post(self, request, invitation_id):
        services.invitation_decline(user=request.user, invitation_id=invitation_id, request=request)
        return Response(status=204)

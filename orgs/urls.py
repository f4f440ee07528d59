"""Routes under ``/api/v1/orgs/`` (included from config/urls.py)."""

from django.urls import path

from orgs import views

urlpatterns = [
    path("", views.OrganizationsApi.as_view(), name="orgs"),
    path("invitations/accept", views.InvitationAcceptApi.as_view(), name="orgs-invitation-accept"),
    # Invitations addressed to the caller (extensions): before every <uuid:org_id> route.
    path("invitations/mine", views.MyInvitationsApi.as_view(), name="orgs-invitations-mine"),
    path("invitations/<uuid:invitation_id>/accept", views.MyInvitationAcceptApi.as_view(),
         name="orgs-invitation-mine-accept"),
    path("invitations/<uuid:invitation_id>/decline", views.MyInvitationDeclineApi.as_view(),
         name="orgs-invitation-mine-decline"),
    path("<uuid:org_id>", views.OrganizationApi.as_view(), name="orgs-detail"),
    path("<uuid:org_id>/members", views.MembersApi.as_view(), name="orgs-members"),
    path("<uuid:org_id>/members/<uuid:user_id>", views.MemberApi.as_view(), name="orgs-member"),
    path("<uuid:org_id>/invitations", views.InvitationsApi.as_view(), name="orgs-invitations"),
    path("<uuid:org_id>/invitations/<uuid:invitation_id>", views.InvitationApi.as_view(), name="orgs-invitation"),
]

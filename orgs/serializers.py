import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import OrganizationNameField, StrictCharField, StrictEmailField, StrictIntegerField
from orgs.models import OrgRole

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class SlugField(StrictCharField):
    default_error_messages = {
        **StrictCharField.default_error_messages,
        "invalid_slug": "Use lowercase letters, digits and single hyphens (like 'acme-corp').",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not SLUG.fullmatch(value):
            self.fail("invalid_slug")
        return value


class OrgRoleField(serializers.ChoiceField):
    """A role name; anything but one of the three strings (a number, a list) is refused. In the
    OpenAPI document it is ``OrgRoleEnum`` (SPECTACULAR_SETTINGS ENUM_NAME_OVERRIDES)."""

    def __init__(self, **kwargs):
        super().__init__(choices=OrgRole.choices, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=type(data).__name__)
        return super().to_internal_value(data)


# --- input --------------------------------------------------------------------------------------------

class OrganizationCreateInput(serializers.Serializer):
    name = OrganizationNameField()
    slug = SlugField(required=False, help_text="Optional; made from the name when left out.")


class SessionPolicyInput(serializers.Serializer):
    maxSessionLifetimeSeconds = StrictIntegerField(required=False, allow_null=True)
    idleTimeoutSeconds = StrictIntegerField(required=False, allow_null=True)


class OrganizationUpdateInput(serializers.Serializer):
    name = OrganizationNameField(required=False)
    slug = SlugField(required=False)
    sessionPolicy = SessionPolicyInput(required=False, allow_null=True,
                                       help_text="Owners only; null clears the policy.")


class MemberUpdateInput(serializers.Serializer):
    role = OrgRoleField()


class InvitationCreateInput(serializers.Serializer):
    email = StrictEmailField()
    role = OrgRoleField(required=False, default=OrgRole.MEMBER)


class InvitationAcceptInput(serializers.Serializer):
    token = StrictCharField(max_length=512)


# --- output -------------------------------------------------------------------------------------------

class SessionPolicyOutput(serializers.Serializer):
    maxSessionLifetimeSeconds = serializers.IntegerField(source="max_session_lifetime_seconds", allow_null=True)
    idleTimeoutSeconds = serializers.IntegerField(source="idle_timeout_seconds", allow_null=True)


class OrganizationOutput(serializers.Serializer):
    """An organization as seen by one member (``role`` is the caller's); built from a Membership."""

    id = serializers.UUIDField(source="organization.id")
    name = serializers.CharField(source="organization.name")
    slug = serializers.CharField(source="organization.slug")
    createdAt = serializers.DateTimeField(source="organization.created_at")
    role = OrgRoleField(read_only=True)
    sessionPolicy = SessionPolicyOutput(source="organization")


class OrganizationsOutput(serializers.Serializer):
    organizations = OrganizationOutput(many=True)


class MemberOutput(serializers.Serializer):
    userId = serializers.UUIDField(source="user_id")
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    role = OrgRoleField(read_only=True)
    joinedAt = serializers.DateTimeField(source="joined_at")


class MembersOutput(serializers.Serializer):
    members = MemberOutput(many=True)


@extend_schema_field({"type": "string", "enum": ["pending", "accepted", "revoked", "expired"]})
class InvitationStatusField(serializers.Field):
    def __init__(self, **kwargs):
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value):
        return str(value.status())


class InvitationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = OrgRoleField(read_only=True)
    invitedBy = serializers.UUIDField(source="inviter_id", allow_null=True,
                                      help_text="User id of the inviter (null once that account is deleted).")
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")
    status = InvitationStatusField()


class InvitationsOutput(serializers.Serializer):
    invitations = InvitationOutput(many=True)


class MyInvitationOutput(serializers.Serializer):
    """An invitation addressed to the caller (``GET invitations/mine``), with what the person needs to
    decide: which organization, which role, who invited them, until when."""

    id = serializers.UUIDField()
    organizationId = serializers.UUIDField(source="organization_id")
    organizationName = serializers.CharField(source="organization.name")
    email = serializers.EmailField()
    role = OrgRoleField(read_only=True)
    invitedBy = serializers.UUIDField(source="inviter_id", allow_null=True,
                                      help_text="User id of the inviter (null once that account is deleted).")
    inviterName = serializers.SerializerMethodField(help_text="The inviter's name, or email when they have none.")
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")

    def get_inviterName(self, invitation) -> str | None:
        inviter = invitation.inviter
        return None if inviter is None else (inviter.name or inviter.email)


class MyInvitationsOutput(serializers.Serializer):
    invitations = MyInvitationOutput(many=True)

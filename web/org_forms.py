"""Forms of the organization pages: shape only. Who may do what, the last-owner rule and the session
policy's limits live in orgs/services.py, which the pages call exactly as the API does."""

from django import forms
from django.core.validators import RegexValidator

from core.fields import single_line_validator
from orgs.models import OrgRole
from orgs.serializers import SLUG
from web.forms import WebForm, WholeNumberField

MINUTE = 60


def _name_field(**kwargs):
    return forms.CharField(label="Name", max_length=100, validators=[single_line_validator],
                           widget=forms.TextInput(attrs={"autocomplete": "organization"}), **kwargs)


def _slug_field():
    return forms.CharField(
        label="Short name (slug)", max_length=50, required=False,
        help_text="Optional: lowercase letters, digits and single hyphens. Made from the name when left empty.",
        validators=[RegexValidator(f"^{SLUG.pattern}$",
                                   "Use lowercase letters, digits and single hyphens (like 'acme-corp').")])


class OrganizationCreateForm(WebForm):
    name = _name_field()
    slug = _slug_field()


class OrganizationRenameForm(WebForm):
    name = _name_field()
    slug = _slug_field()


class SessionPolicyForm(WebForm):
    """Minutes on the page, seconds in the service (``sessionPolicy`` of the API). Empty: no limit."""

    api_fields = {"sessionPolicy.maxSessionLifetimeSeconds": "max_lifetime_minutes",
                  "sessionPolicy.idleTimeoutSeconds": "idle_timeout_minutes"}
    max_lifetime_minutes = WholeNumberField(
        label="Sessions end after (minutes since sign-in)", required=False, min_value=1, max_value=10**7,
        help_text="Empty: the global rule.")
    idle_timeout_minutes = WholeNumberField(
        label="Sessions end when unused for (minutes)", required=False, min_value=1, max_value=10**7,
        help_text="Empty: the global rule.")


def _role_field(label="Role"):
    return forms.ChoiceField(label=label, choices=OrgRole.choices)


class RoleForm(WebForm):
    role = _role_field()


class InvitationForm(WebForm):
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = _role_field()

    def __init__(self, *args, can_invite_owner: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("role", OrgRole.MEMBER)
        if not can_invite_owner:  # only shown; the service decides (an admin's "owner" is 403)
            self.fields["role"].widget.choices = [c for c in OrgRole.choices if c[0] != OrgRole.OWNER]


class OrganizationChoiceForm(WebForm):
    """The switcher: an organization's id, or empty for "no organization"."""

    organization = forms.UUIDField(required=False, widget=forms.HiddenInput)


class DeleteOrganizationForm(WebForm):
    confirm = forms.BooleanField(label="I understand that the organization, its members and its invitations "
                                       "are deleted for good", required=True)

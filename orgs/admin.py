"""Staff views of organizations. Role edits keep the one rule the API keeps: at least one owner.
Changes made here are audited like the API's (``via: "admin"``)."""

from django import forms
from django.contrib import admin
from django.db import transaction

from audit.models import EventType
from audit.services import audit_record
from flows.organizations import organization_policy_errors
from orgs.models import Invitation, Membership, Organization, OrgRole


class OrganizationForm(forms.ModelForm):
    """The session policy obeys the API's rule: only stricter than the global defaults."""

    class Meta:
        model = Organization
        fields = ["name", "slug", "max_session_lifetime_seconds", "idle_timeout_seconds"]

    def clean(self):
        data = super().clean()
        errors = organization_policy_errors({"maxSessionLifetimeSeconds": data.get("max_session_lifetime_seconds"),
                                             "idleTimeoutSeconds": data.get("idle_timeout_seconds")})
        for key, field in (("maxSessionLifetimeSeconds", "max_session_lifetime_seconds"),
                           ("idleTimeoutSeconds", "idle_timeout_seconds")):
            for message in errors.get(f"sessionPolicy.{key}", []):
                self.add_error(field, message)
        return data


class MembershipFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        owners = 0
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            owners += data.get("role") == OrgRole.OWNER
        if owners == 0:
            raise forms.ValidationError("An organization must keep at least one owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    fields = ("user", "role", "joined_at", "last_active_at")
    readonly_fields = ("joined_at", "last_active_at")
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    form = OrganizationForm
    list_display = ("name", "slug", "created_at", "max_session_lifetime_seconds", "idle_timeout_seconds")
    search_fields = ("name", "slug", "=id")
    readonly_fields = ("id", "created_at", "updated_at")
    fields = ("id", "name", "slug", "max_session_lifetime_seconds", "idle_timeout_seconds", "created_at",
              "updated_at")
    inlines = [MembershipInline]

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        event = EventType.ORG_UPDATED if change else EventType.ORG_CREATED
        audit_record(event=event, request=request, actor=request.user, organization=obj, via="admin",
                     changed=sorted(form.changed_data))

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        removed = [(f.instance.user, f.instance.role) for f in formset.deleted_forms if f.instance.pk]
        changed = [(f.instance, f.initial.get("role")) for f in formset.forms
                   if f.instance.pk and "role" in f.changed_data]
        super().save_formset(request, form, formset, change)
        for membership, old_role in changed:
            audit_record(event=EventType.ORG_MEMBER_ROLE_CHANGED, request=request, actor=request.user,
                         subject=membership.user, organization=form.instance, old_role=old_role,
                         new_role=membership.role, via="admin")
        for user, role in removed:  # sessions_app/receivers.py clears the organization of their sessions
            audit_record(event=EventType.ORG_MEMBER_REMOVED, request=request, actor=request.user, subject=user,
                         organization=form.instance, role=role, left=False, via="admin")

    @transaction.atomic
    def delete_model(self, request, obj):
        audit_record(event=EventType.ORG_DELETED, request=request, actor=request.user, organization=obj,
                     name=obj.name, slug=obj.slug, via="admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are sent through the API (which mails the link); here staff can look and delete.
    The token hash is never shown."""

    list_display = ("email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role", ("accepted_at", admin.EmptyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "organization__name", "organization__slug")
    fields = ("id", "organization", "email", "role", "inviter", "created_at", "expires_at", "accepted_at",
              "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

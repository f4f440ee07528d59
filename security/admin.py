"""Staff lift lockouts in the admin: axes' AccessAttempt admin, with deletion audited. And the
site-wide "delete selected" action, audited per object (security/receivers.py covers the rest)."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.auth import get_user_model

from security.lockout import lockout_unlock_by_staff
from security.services import admin_bulk_deletion_record


def audited_delete_selected(modeladmin, request, queryset):
    """Django's action; several objects deleted at once are then audited one by one (a single one is
    audited through its LogEntry)."""
    model = modeladmin.model
    before = [(obj.pk, str(obj), obj.pk if model is get_user_model() else getattr(obj, "user_id", None))
              for obj in queryset]
    response = django_delete_selected(modeladmin, request, queryset)
    remaining = set(model._default_manager.filter(pk__in=[pk for pk, _, _ in before]).values_list("pk", flat=True))
    deleted = [item for item in before if item[0] not in remaining]
    if len(deleted) > 1:
        admin_bulk_deletion_record(request=request, model=model, deleted=deleted)
    return response


audited_delete_selected.allowed_permissions = ("delete",)
audited_delete_selected.short_description = django_delete_selected.short_description
admin.site.add_action(audited_delete_selected, "delete_selected")

if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    """Deleting an access attempt unlocks that (account, IP) pair; each one is audited."""

    actions = ["unlock"]

    @admin.action(description="Unlock the selected sign-ins", permissions=["delete"])
    def unlock(self, request, queryset):
        for attempt in queryset:
            lockout_unlock_by_staff(attempt=attempt, staff=request.user, request=request)
        self.message_user(request, f"Unlocked {len(queryset)} sign-in lock(s).")

    def delete_model(self, request, obj):
        lockout_unlock_by_staff(attempt=obj, staff=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for attempt in queryset:
            lockout_unlock_by_staff(attempt=attempt, staff=request.user, request=request)

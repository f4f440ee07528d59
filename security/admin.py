"""Staff lift lockouts in the admin: axes' AccessAttempt admin, with deletion audited."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin

from security.lockout import lockout_unlock_by_staff

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

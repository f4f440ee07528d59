"""Staff view of device sessions: read-only rows, filters, and a revoke action that goes through the
audited service (sessions_app.services.session_revoke)."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone

from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import session_revoke


class ActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return [("yes", "Active"), ("no", "Ended (revoked or expired)")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.alive(now)
        if self.value() == "no":
            return queryset.filter(Q(revoked_at__isnull=False) | Q(expires_at__lte=now))
        return queryset


@admin.register(DeviceSession)
class DeviceSessionAdmin(admin.ModelAdmin):
    list_display = ("user", "device_name", "ip_address", "created_at", "last_activity_at", "expires_at",
                    "remember_me", "browser", "revoked_at", "revoked_reason")
    list_filter = (ActiveFilter, ("user", admin.RelatedOnlyFieldListFilter), "remember_me", "revoked_reason")
    search_fields = ("=user__email", "=ip_address", "device_name")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    fields = ("id", "user", "device_id", "device_name", "ip_address", "user_agent", "remember_me", "created_at",
              "last_activity_at", "refresh_rotated_at", "refresh_count", "expires_at", "absolute_expires_at",
              "reauthenticated_at", "revoked_at", "revoked_reason")
    readonly_fields = fields  # never the key or token hashes, never the session data
    actions = ["revoke_sessions"]

    @admin.display(boolean=True, description="browser")
    def browser(self, obj):
        return bool(obj.browser_key_hash)

    @admin.action(description="Revoke the selected sessions", permissions=["change"])
    def revoke_sessions(self, request, queryset):
        count = 0
        for session in queryset.select_related("user").filter(revoked_at__isnull=True):
            count += session_revoke(session=session, reason=RevokeReason.ADMIN, request=request, actor=request.user)
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row and its audit trail stay

    def has_change_permission(self, request, obj=None):
        # "change" is what the revoke action needs; the form itself is read-only.
        return super().has_change_permission(request, obj)

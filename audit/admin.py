from django.contrib import admin
from django.db.models import Q

from audit.models import AuditEvent


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (templates/admin/input_filter.html)."""

    template = "admin/input_filter.html"

    def lookups(self, request, model_admin):
        return ((None, None),)

    def choices(self, changelist):
        all_choice = next(super().choices(changelist))
        params = changelist.get_filters_params()
        all_choice["query_parts"] = [(k, v) for k, values in params.items() if k != self.parameter_name
                                     for v in (values if isinstance(values, list) else [values])]
        yield all_choice


class UserFilter(InputFilter):
    title = "user (email, actor or subject)"
    parameter_name = "user"

    def queryset(self, request, queryset):
        if self.value():
            email = self.value().strip().lower()
            return queryset.filter(Q(actor__email=email) | Q(subject__email=email))
        return queryset


class IpFilter(InputFilter):
    title = "IP address"
    parameter_name = "ip"

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(ip_address=self.value().strip())
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event", "success", "actor_id", "subject_id", "ip_address")
    list_filter = ("event", "success", "created_at", UserFilter, IpFilter)
    search_fields = ("=actor__email", "=subject__email", "=ip_address", "=session_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

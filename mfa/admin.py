"""Staff see who has two-factor on and can remove a user's factors (the user lost their phone and their
recovery codes): audited as the staff member's action, the user is mailed, trusted devices end. Never
shows a secret. Removing factors is a sensitive action for the staff session (step-up)."""


from django.contrib import admin, messages

from flows.two_factor import totp_disable
from mfa.models import TotpDevice, TrustedDevice
from security.stepup import SensitiveAction, step_up_redirect


@admin.register(TotpDevice)
class TotpDeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "confirmed_at", "last_used_at", "created_at")
    list_filter = (("confirmed_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__email",)
    fields = ("user", "created_at", "confirmed_at", "last_used_at")
    readonly_fields = fields
    actions = ["remove_factors"]

    def has_add_permission(self, request):
        return False  # users set their own app up

    def has_delete_permission(self, request, obj=None):
        return False  # through the action below: it ends codes and trusted devices too, audited and mailed

    @admin.action(description="Remove two-factor from the selected users (they are mailed)", permissions=["change"])
    def remove_factors(self, request, queryset):
        stale = step_up_redirect(request=request, action=SensitiveAction.MFA_CHANGE, back=request.path)
        if stale is not None:
            return stale
        removed = 0
        for device in queryset.select_related("user"):
            if totp_disable(user=device.user, session=None, request=request, staff=request.user):
                self.log_change(request, device.user, "Removed two-factor sign-in.")
                removed += 1
        messages.success(request, f"Two-factor removed from {removed} account{'s' if removed != 1 else ''}.")
        return None


@admin.register(TrustedDevice)
class TrustedDeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "label", "created_at", "last_used_at", "expires_at", "revoked_at")
    search_fields = ("user__email",)
    fields = ("user", "label", "ip_address", "created_at", "last_used_at", "expires_at", "revoked_at",
              "revoked_reason")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

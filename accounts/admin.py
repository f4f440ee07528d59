from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm

from accounts.models import User
from flows.two_factor import totp_disable
from security.stepup import SensitiveAction, step_up_redirect
from core.email import normalize_email


class UserCreationForm(AdminUserCreationForm):
    """Django's admin creation form runs AUTH_PASSWORD_VALIDATORS: the same policy as the API."""

    class Meta:
        model = User
        fields = ("email", "name", "role")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self):
        return normalize_email(self.cleaned_data["email"])


class LockedFilter(admin.SimpleListFilter):
    """Accounts with a live django-axes lockout (issue 4) on any IP; shown only when axes is installed."""

    title = "locked"
    parameter_name = "locked"

    def lookups(self, request, model_admin):
        return [("yes", "Locked out"), ("no", "Not locked out")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        from axes.models import AccessAttempt
        from django.conf import settings
        from django.db.models import Exists, OuterRef
        from django.utils import timezone

        cooloff = getattr(settings, "AXES_COOLOFF_TIME", None)
        attempts = AccessAttempt.objects.filter(username=OuterRef("email"),
                                                failures_since_start__gte=getattr(settings, "AXES_FAILURE_LIMIT", 3))
        if isinstance(cooloff, (int, float)):  # axes also accepts hours as a number
            from datetime import timedelta

            cooloff = timedelta(hours=cooloff)
        if cooloff is not None and not callable(cooloff):
            attempts = attempts.filter(attempt_time__gte=timezone.now() - cooloff)
        locked = Exists(attempts)
        return queryset.filter(locked) if self.value() == "yes" else queryset.exclude(locked)


def _user_filters():
    from django.apps import apps

    base = ("role", "is_active", "is_staff", ("email_verified_at", admin.EmptyFieldListFilter))
    return base + (LockedFilter,) if apps.is_installed("axes") else base


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    ordering = ("email",)
    list_display = ("email", "name", "role", "email_verified_at", "is_active", "is_staff", "created_at")
    list_filter = _user_filters()
    search_fields = ("email", "name")
    readonly_fields = ("created_at", "updated_at", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "role", "email_verified_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "role", "password1", "password2")}),
    )
    actions = ["remove_two_factor"]

    @admin.action(description="Remove two-factor (authenticator app, recovery codes, passkeys) of the selected "
                              "users; they are mailed", permissions=["change"])
    def remove_two_factor(self, request, queryset):
        """For a user who lost their phone and codes: audited as the staff member's, a step-up action."""
        stale = step_up_redirect(request=request, action=SensitiveAction.MFA_CHANGE, back=request.path)
        if stale is not None:
            return stale
        removed = 0
        for user in queryset:
            if totp_disable(user=user, session=None, request=request, staff=request.user):
                self.log_change(request, user, "Removed two-factor sign-in.")
                removed += 1
        messages.success(request, f"Two-factor removed from {removed} account{'s' if removed != 1 else ''}.")
        return None

"""Staff create service accounts, rotate their secrets and (de)activate them here.

A new secret is shown exactly once: in a message rendered in the very response of the action (no
redirect), so it is never written to the message cookie, the session, or the database. Every change
goes through service_accounts.services and is audited. Issuing a secret (create, rotate) is a
sensitive action (step-up ``service_account.secret``, security/stepup.py): a staff session without a
recent password entry is sent to /account/reauthenticate first.
"""


from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

from security.stepup import SensitiveAction, step_up_redirect
from service_accounts import services
from service_accounts.models import ServiceClient

SECRET_TEMPLATE = "admin/service_accounts/serviceclient/secret.html"
ADD_TEMPLATE = "admin/service_accounts/serviceclient/add.html"


class ServiceAccountCreateForm(forms.Form):
    name = forms.CharField(max_length=services.NAME_MAX_LENGTH,
                           help_text="What the account is for, e.g. billing-service.")

    def clean_name(self):
        try:
            return services._clean_name(self.cleaned_data["name"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


@admin.register(ServiceClient)
class ServiceClientAdmin(admin.ModelAdmin):
    list_display = ("name", "client_id", "is_active", "created_at", "rotated_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "client_id")
    fields = ("name", "client_id", "user", "is_active", "secret_version", "created_at", "rotated_at", "last_used_at")
    readonly_fields = ("name", "client_id", "user", "secret_version", "created_at", "rotated_at", "last_used_at")
    actions = ["rotate_secret"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the audit trail keeps pointing at the account

    def save_model(self, request, obj, form, change):
        # Only is_active is editable (the add view below does not come here).
        services.service_account_set_active(client=obj, is_active=form.cleaned_data["is_active"],
                                           actor=request.user, request=request)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        stale = step_up_redirect(request=request, action=SensitiveAction.SERVICE_ACCOUNT_SECRET, back=request.path)
        if stale is not None:
            return stale
        form = ServiceAccountCreateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            created = services.service_account_create(name=form.cleaned_data["name"], actor=request.user,
                                                      request=request, via="admin")
            self.log_addition(request, created.client, [{"added": {}}])
            return self._secrets_page(request, [(created.client, created.client_secret)], "Service account created")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Add service account", "has_view_permission": self.has_view_permission(request)}
        return TemplateResponse(request, ADD_TEMPLATE, context)

    @admin.action(description="Rotate the secret of the selected service accounts", permissions=["change"])
    def rotate_secret(self, request, queryset):
        stale = step_up_redirect(request=request, action=SensitiveAction.SERVICE_ACCOUNT_SECRET, back=request.path)
        if stale is not None:
            return stale
        rotated = [(client, services.service_account_rotate_secret(client=client, actor=request.user,
                                                                   request=request, via="admin"))
                   for client in queryset]
        for client, _ in rotated:
            self.log_change(request, client, "Rotated the secret.")
        return self._secrets_page(request, rotated, "Secret rotated")

    def _secrets_page(self, request, pairs, title):
        for client, secret in pairs:
            messages.warning(request, f"{client.name}: client id {client.client_id}, secret {secret} "
                                      "(shown only now: store it in the service's secret store).")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                   "pairs": [client for client, _ in pairs]}
        response = TemplateResponse(request, SECRET_TEMPLATE, context)
        add_never_cache_headers(response)
        patch_cache_control(response, no_store=True, private=True)
        return response

"""Staff register OpenID Connect clients, change them and rotate their secrets here (as for service
accounts: a new secret is shown once, in the very response, never stored; issuing one needs a fresh
password entry, step-up ``oidc_client.secret``). Every change goes through oidc_provider.services.clients
and is audited."""

from __future__ import annotations


from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

from oidc_provider.models import IdTokenAlg, OidcClient
from oidc_provider.services import clients
from security.stepup import SensitiveAction, step_up_redirect

SECRET_TEMPLATE = "admin/oidc_provider/oidcclient/secret.html"
ADD_TEMPLATE = "admin/oidc_provider/oidcclient/add.html"
SCOPE_CHOICES = [(s, s) for s in ("openid", "profile", "email", "offline_access")]


def _lines(value) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class _UrisField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "cols": 80})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value


class OidcClientForm(forms.Form):
    name = forms.CharField(max_length=clients.NAME_MAX_LENGTH, help_text="Users see it on the consent page.")
    redirect_uris = _UrisField(help_text="One exact redirect URI per line (matched exactly).")
    post_logout_redirect_uris = _UrisField(required=False, help_text="One exact URI per line (RP-initiated logout).")
    is_public = forms.BooleanField(required=False, label="Public client",
                                   help_text="No secret (single-page or mobile app); PKCE is required.")
    is_first_party = forms.BooleanField(required=False, label="First party", help_text="Our own app: no consent page.")
    allowed_scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple,
                                               initial=list(clients.DEFAULT_SCOPES))
    id_token_alg = forms.ChoiceField(choices=IdTokenAlg.choices, initial=IdTokenAlg.RS256)

    def _clean_with(self, name, cleaner):
        try:
            return cleaner(self.cleaned_data[name])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def clean_name(self):
        return self._clean_with("name", clients.clean_name)

    def clean_redirect_uris(self):
        return self._clean_with("redirect_uris", lambda v: clients.clean_redirect_uris(_lines(v)))

    def clean_post_logout_redirect_uris(self):
        return self._clean_with("post_logout_redirect_uris", lambda v: clients.clean_redirect_uris(
            _lines(v), what="post-logout redirect URI", required=False))

    def clean_allowed_scopes(self):
        return self._clean_with("allowed_scopes", clients.clean_scopes)


class OidcClientChangeForm(forms.ModelForm):
    redirect_uris = _UrisField(help_text="One exact redirect URI per line (matched exactly).")
    post_logout_redirect_uris = _UrisField(required=False, help_text="One exact URI per line.")
    allowed_scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = OidcClient
        fields = ("name", "redirect_uris", "post_logout_redirect_uris", "is_first_party", "allowed_scopes",
                  "id_token_alg", "is_active")

    clean_name = OidcClientForm.clean_name
    clean_redirect_uris = OidcClientForm.clean_redirect_uris
    clean_post_logout_redirect_uris = OidcClientForm.clean_post_logout_redirect_uris
    clean_allowed_scopes = OidcClientForm.clean_allowed_scopes
    _clean_with = OidcClientForm._clean_with


@admin.register(OidcClient)
class OidcClientAdmin(admin.ModelAdmin):
    form = OidcClientChangeForm
    list_display = ("name", "client_id", "is_public", "is_first_party", "is_active", "created_at", "rotated_at")
    list_filter = ("is_active", "is_public", "is_first_party")
    search_fields = ("name", "client_id")
    readonly_fields = ("client_id", "is_public", "created_at", "rotated_at")
    actions = ["rotate_secret"]

    def get_fields(self, request, obj=None):
        return ["name", "client_id", "is_public", "redirect_uris", "post_logout_redirect_uris", "is_first_party",
                "allowed_scopes", "id_token_alg", "is_active", "created_at", "rotated_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the audit trail keeps pointing at the client

    def save_model(self, request, obj, form, change):
        clients.oidc_client_update(client=obj, actor=request.user, request=request,
                                   **{name: form.cleaned_data[name] for name in form.changed_data})

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        stale = step_up_redirect(request=request, action=SensitiveAction.OIDC_CLIENT_SECRET, back=request.path)
        if stale is not None:
            return stale
        form = OidcClientForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            created = clients.oidc_client_create(
                name=data["name"], redirect_uris=data["redirect_uris"],
                post_logout_redirect_uris=data["post_logout_redirect_uris"], public=data["is_public"],
                first_party=data["is_first_party"], scopes=data["allowed_scopes"], id_token_alg=data["id_token_alg"],
                actor=request.user, request=request, via="admin")
            self.log_addition(request, created.client, [{"added": {}}])
            return self._secrets_page(request, [(created.client, created.client_secret)], "Client registered")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Register an OpenID Connect client",
                   "has_view_permission": self.has_view_permission(request)}
        return TemplateResponse(request, ADD_TEMPLATE, context)

    @admin.action(description="Rotate the secret of the selected clients", permissions=["change"])
    def rotate_secret(self, request, queryset):
        stale = step_up_redirect(request=request, action=SensitiveAction.OIDC_CLIENT_SECRET, back=request.path)
        if stale is not None:
            return stale
        rotated = [(client, clients.oidc_client_rotate_secret(client=client, actor=request.user, request=request,
                                                              via="admin"))
                   for client in queryset if not client.is_public]
        for client, _ in rotated:
            self.log_change(request, client, "Rotated the secret.")
        return self._secrets_page(request, rotated, "Secret rotated")

    def _secrets_page(self, request, pairs, title):
        for client, secret in pairs:
            if secret:
                messages.warning(request, f"{client.name}: client id {client.client_id}, secret {secret} "
                                          "(shown only now: store it in the application's secret store).")
            else:
                messages.info(request, f"{client.name}: client id {client.client_id} (public client: no secret).")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                   "pairs": [client for client, _ in pairs]}
        response = TemplateResponse(request, SECRET_TEMPLATE, context)
        add_never_cache_headers(response)
        patch_cache_control(response, no_store=True, private=True)
        return response

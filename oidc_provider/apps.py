from django.apps import AppConfig


class OidcProviderConfig(AppConfig):
    name = "oidc_provider"
    label = "oidc_provider"
    verbose_name = "OpenID Connect provider"
    default_auto_field = "django.db.models.BigAutoField"

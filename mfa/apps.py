from django.apps import AppConfig


class MfaConfig(AppConfig):
    name = "mfa"
    verbose_name = "Two-factor authentication"
    default_auto_field = "django.db.models.BigAutoField"

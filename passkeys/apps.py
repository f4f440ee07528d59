from django.apps import AppConfig


class PasskeysConfig(AppConfig):
    name = "passkeys"
    verbose_name = "Passkeys (WebAuthn)"
    default_auto_field = "django.db.models.BigAutoField"

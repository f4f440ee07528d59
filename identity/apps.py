from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity (signing keys and tokens)"

    def ready(self):
        from identity import checks  # noqa: F401  (registers system checks)

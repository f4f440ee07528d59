from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "security"
    verbose_name = "Security defenses"

    def ready(self):
        from security import receivers  # noqa: F401  (admin actions -> audit trail)

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    label = "sessions_app"
    verbose_name = "Device sessions"

    def ready(self):
        from sessions_app import receivers, schema  # noqa: F401  (cookie-cache receivers, OpenAPI auth schemes)

from django.apps import AppConfig


class ServiceAccountsConfig(AppConfig):
    name = "service_accounts"
    verbose_name = "Service accounts"

    def ready(self):
        from service_accounts import schema  # noqa: F401  (OpenAPI: the service-token class)

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity (signing keys and tokens)"

    def ready(self):
        from core.metrics import scrape_collector
        from identity import checks  # noqa: F401  (registers system checks)
        from identity.metrics import signing_key_gauges

        scrape_collector("signing_key", signing_key_gauges)

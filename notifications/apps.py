from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Mail outbox"

    def ready(self):
        from core.metrics import scrape_collector
        from notifications.metrics import outbox_gauges

        scrape_collector("outbox", outbox_gauges)

from django.apps import AppConfig


class ServiceAccountsConfig(AppConfig):
    name = "service_accounts"
    verbose_name = "Service accounts"

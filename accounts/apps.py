from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from accounts import receivers  # noqa: F401  (a password or deactivation saved anywhere ends sessions, links)

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from accounts import checks  # noqa: F401  (registers the system checks)
        from accounts import receivers  # noqa: F401  (a password or deactivation saved anywhere ends sessions, links)

"""Options of the browser pages, read on access."""

from django.conf import settings


class AppSettings:
    @property
    def NEXT_ALLOWED_HOSTS(self) -> list[str]:
        """Hosts besides this site that ``next=`` may redirect to (``WEB_NEXT_ALLOWED_HOSTS``)."""
        return list(getattr(settings, "WEB_NEXT_ALLOWED_HOSTS", []))


app_settings = AppSettings()

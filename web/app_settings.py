"""Options of the browser pages, read on access from ``settings.WEB`` (so tests can override)."""

from core.app_settings import AppSettings as BaseAppSettings
from sessions_app.app_settings import app_settings as session_settings


class AppSettings(BaseAppSettings):
    namespace = "WEB"

    @property
    def NEXT_ALLOWED_HOSTS(self) -> list[str]:
        """Hosts besides this site that ``next=`` may redirect to (``WEB_NEXT_ALLOWED_HOSTS``, comma list)."""
        return list(self._get("NEXT_ALLOWED_HOSTS", []))

    @property
    def DEVICE_COOKIE(self) -> str:
        """The long-lived HttpOnly cookie with this browser's known-device tokens (docs/browser.md)."""
        return session_settings.cookie_name("_device")

    @property
    def TRUSTED_COOKIE(self) -> str:
        """The HttpOnly cookie with this browser's trusted-device tokens for two-factor (one per account)."""
        return session_settings.cookie_name("_trusted")

    @property
    def PENDING_COOKIE(self) -> str:
        """The short-lived HttpOnly cookie of a sign-in waiting for its second factor (/login/two-factor)."""
        return session_settings.cookie_name("_2fa")

    @property
    def DEVICE_TOKENS_KEPT(self) -> int:
        """Known-device tokens kept per browser (one per account; default 5)."""
        return int(self._get("DEVICE_TOKENS_KEPT", 5))


app_settings = AppSettings()

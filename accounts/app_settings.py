"""Options of the accounts app, read on access from ``settings.ACCOUNTS`` (so tests can override)."""

from datetime import timedelta

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "ACCOUNTS"

    @property
    def EMAIL_VERIFICATION_TTL(self) -> timedelta:
        """How long a verification link works (default 24 hours)."""
        return timedelta(seconds=self._get("EMAIL_VERIFICATION_TTL_SECONDS", 24 * 3600))

    @property
    def EMAIL_CHANGE_TTL(self) -> timedelta:
        """How long the link that confirms a new email address works (default 24 hours)."""
        return timedelta(seconds=self._get("EMAIL_CHANGE_TTL_SECONDS", 24 * 3600))

    @property
    def PASSWORD_RESET_TTL(self) -> timedelta:
        """How long a password-reset link works (default 1 hour)."""
        return timedelta(seconds=self._get("PASSWORD_RESET_TTL_SECONDS", 3600))

    @property
    def TOKEN_CLEANUP_AFTER(self) -> timedelta:
        """Used or expired one-time tokens are deleted this long after they stopped working."""
        return timedelta(seconds=self._get("TOKEN_CLEANUP_AFTER_SECONDS", 7 * 24 * 3600))


app_settings = AppSettings()

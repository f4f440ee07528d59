"""Options of the accounts app, read on access from ``settings.ACCOUNTS`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings


class AppSettings:
    def _get(self, name, default):
        return getattr(settings, "ACCOUNTS", {}).get(name, default)

    @property
    def EMAIL_VERIFICATION_TTL(self) -> timedelta:
        """How long a verification link works (default 24 hours)."""
        return timedelta(seconds=self._get("EMAIL_VERIFICATION_TTL_SECONDS", 24 * 3600))

    @property
    def EMAIL_CHANGE_TTL(self) -> timedelta:
        """How long the link that confirms a new email address works (default 24 hours)."""
        return timedelta(seconds=self._get("EMAIL_CHANGE_TTL_SECONDS", 24 * 3600))

    @property
    def EMAIL_CHANGE_REVERT_TTL(self) -> timedelta:
        """How long the link mailed to the old address after an email change can undo it (default 7
        days; a smaller value is raised to 7 days: the owner of the old address may be away a week)."""
        return max(timedelta(days=7), timedelta(seconds=self._get("EMAIL_CHANGE_REVERT_TTL_SECONDS", 7 * 24 * 3600)))

    @property
    def PASSWORD_RESET_TTL(self) -> timedelta:
        """How long a password-reset link works (default 1 hour)."""
        return timedelta(seconds=self._get("PASSWORD_RESET_TTL_SECONDS", 3600))

    @property
    def PUBLIC_URL(self) -> str:
        """Base of the links in emails (``AUTH_PUBLIC_URL``)."""
        return settings.AUTH_PUBLIC_URL

    @property
    def REAUTH_MAX_AGE(self) -> timedelta:
        """How long a password entry keeps a session fresh (``AUTH_REAUTH_MAX_AGE_SECONDS``)."""
        return timedelta(seconds=settings.AUTH_REAUTH_MAX_AGE_SECONDS)

    @property
    def TOKEN_CLEANUP_AFTER(self) -> timedelta:
        """Used or expired one-time tokens are deleted this long after they stopped working."""
        return timedelta(seconds=self._get("TOKEN_CLEANUP_AFTER_SECONDS", 7 * 24 * 3600))


app_settings = AppSettings()

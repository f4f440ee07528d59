"""Options of the sessions app, read on access from ``settings.SESSIONS`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings


class AppSettings:
    def _get(self, name, default):
        return getattr(settings, "SESSIONS", {}).get(name, default)

    @property
    def LIFETIME(self) -> timedelta:
        """Session lifetime without "stay signed in" (default 7 days)."""
        return timedelta(seconds=self._get("LIFETIME_SECONDS", 7 * 24 * 3600))

    @property
    def REMEMBER_ME_LIFETIME(self) -> timedelta:
        """Session lifetime with "stay signed in" / ``rememberMe`` (default 30 days)."""
        return timedelta(seconds=self._get("REMEMBER_ME_LIFETIME_SECONDS", 30 * 24 * 3600))

    @property
    def UPDATE_AGE(self) -> timedelta:
        """Sliding expiry: activity extends the expiry at most this often (default 1 day)."""
        return timedelta(seconds=self._get("UPDATE_AGE_SECONDS", 24 * 3600))

    @property
    def ABSOLUTE_LIFETIME(self) -> timedelta:
        """No session lives longer than this from its login, however active (default 90 days)."""
        return timedelta(seconds=self._get("ABSOLUTE_LIFETIME_SECONDS", 90 * 24 * 3600))

    @property
    def ACTIVITY_RESOLUTION(self) -> timedelta:
        """``lastActivityAt`` is written at most this often per session (default 60 seconds)."""
        return timedelta(seconds=self._get("ACTIVITY_RESOLUTION_SECONDS", 60))

    @property
    def REFRESH_GRACE(self) -> timedelta:
        """``AUTH_REFRESH_GRACE_SECONDS``: a just-spent refresh token gets the same new pair (0: off)."""
        return timedelta(seconds=settings.AUTH_REFRESH_GRACE_SECONDS)

    @property
    def REVOKED_RETENTION(self) -> timedelta:
        """Revoked and expired sessions are deleted this long after they ended (default 30 days)."""
        return timedelta(seconds=self._get("REVOKED_RETENTION_SECONDS", 30 * 24 * 3600))

    @property
    def CLEANUP_BATCH_SIZE(self) -> int:
        """Rows deleted per statement by the cleanup task."""
        return self._get("CLEANUP_BATCH_SIZE", 1000)


app_settings = AppSettings()

"""Options of the orgs app, read on access from ``settings.ORGS`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings


class AppSettings:
    def _get(self, name, default):
        return getattr(settings, "ORGS", {}).get(name, default)

    @property
    def INVITATION_TTL(self) -> timedelta:
        """How long an invitation link works (default 48 hours)."""
        return timedelta(seconds=self._get("INVITATION_TTL_SECONDS", 48 * 3600))

    @property
    def POLICY_MIN_SECONDS(self) -> int:
        """The smallest session-policy value an owner may set (default 300). Activity is recorded at
        most once per SESSIONS ACTIVITY_RESOLUTION (60 s), so a shorter idle timeout would end
        sessions that are in use."""
        return self._get("POLICY_MIN_SECONDS", 300)

    @property
    def PUBLIC_URL(self) -> str:
        """Base of the links in emails (``AUTH_PUBLIC_URL``)."""
        return settings.AUTH_PUBLIC_URL


app_settings = AppSettings()

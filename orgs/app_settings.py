"""Options of the orgs app, read on access from ``settings.ORGS`` (so tests can override)."""

from datetime import timedelta

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "ORGS"

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


app_settings = AppSettings()

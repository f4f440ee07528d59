"""Options of the audit app, read on access from ``settings.AUDIT`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "AUDIT"

    @property
    def FLOOD_CONTROL(self) -> bool:
        """Aggregate refusals that concern nobody known (audit/services.py, docs/security.md "Flood
        control"); default on."""
        return bool(self._get("FLOOD_CONTROL", True))

    @property
    def FLOOD_WINDOW_SECONDS(self) -> int:
        """One window per refused event and client network: its first refusal is written in full, the
        rest are counted and summarised once the window has ended (default 60)."""
        return max(1, int(self._get("FLOOD_WINDOW_SECONDS", 60)))

    @property
    def FLOOD_ROWS_PER_WINDOW(self) -> int:
        """At most this many networks get a row in full per refused event and window (default 10);
        refusals from further networks are only counted."""
        return max(1, int(self._get("FLOOD_ROWS_PER_WINDOW", 10)))

    @property
    def FLOOD_KEEP_SECONDS(self) -> int:
        """How long counts wait in the cache for their summary row (default 1 hour): the periodic
        flush must run within it."""
        return max(self.FLOOD_WINDOW_SECONDS * 2, int(self._get("FLOOD_KEEP_SECONDS", 3600)))

    @property
    def FLOOD_PREFIX(self) -> str:
        """Prefix of the counters in the cache (tests give each test its own)."""
        return self._get("FLOOD_PREFIX", "mca.audit")

    @property
    def SEAL_ON_COMMIT(self) -> bool:
        """Seal the trail right after each transaction that wrote audit rows commits (audit/chain.py,
        docs/audit.md). Default: on when Celery runs tasks eagerly (the embedded default: no broker, so
        no beat to run the sealer every second), off otherwise: then the beat task ``audit-seal`` (or
        ``manage.py audit_seal --loop``) seals, and nothing of the seal runs on the request path."""
        return bool(self._get("SEAL_ON_COMMIT", getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)))

    @property
    def SEAL_WAIT_SECONDS(self) -> float:
        """How long one sealing waits for transactions that may still commit a row in its range
        (PostgreSQL; default 0.5). Sealing after a commit never waits."""
        return max(0.0, float(self._get("SEAL_WAIT_SECONDS", 0.5)))

    @property
    def RECORD_REFRESHES(self) -> bool:
        """Write an ``auth.token.refreshed`` row for every routine refresh (default False: a refresh
        counts on its device session instead, ``refresh_count`` and ``last_activity_at``; refusals,
        reuse, anomalies and grace replays are always written). docs/audit.md, "What is recorded"."""
        return bool(self._get("RECORD_REFRESHES", False))

    @property
    def RETENTION(self) -> timedelta:
        """Audit rows older than this are deleted by the daily task (``AUDIT["RETENTION_DAYS"]``, default
        400). The setting's former name, ``SECURITY["AUDIT_RETENTION_DAYS"]``, is still read when AUDIT
        does not set it."""
        days = self._get("RETENTION_DAYS", None)
        if days is None:
            days = getattr(settings, "SECURITY", {}).get("AUDIT_RETENTION_DAYS", 400)
        return timedelta(days=days)


app_settings = AppSettings()

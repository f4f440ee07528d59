"""Options of the sessions app, read on access from ``settings.SESSIONS`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "SESSIONS"

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
    def REFRESH_ASYNC_COMMIT(self) -> bool:
        """``AUTH_REFRESH_ASYNC_COMMIT`` (default on): a routine refresh's rotation (nothing else to write)
        commits without waiting for PostgreSQL to flush it (docs/deploy.md "A refresh and the disk"); a crash
        of the database server may lose the last ~600 ms of them, whose devices then sign in again."""
        return bool(self._get("REFRESH_ASYNC_COMMIT", True))

    @property
    def REVOKED_RETENTION(self) -> timedelta:
        """Revoked and expired sessions are deleted this long after they ended (default 30 days)."""
        return timedelta(seconds=self._get("REVOKED_RETENTION_SECONDS", 30 * 24 * 3600))

    @property
    def CLEANUP_BATCH_SIZE(self) -> int:
        """Rows deleted per statement by the cleanup task."""
        return self._get("CLEANUP_BATCH_SIZE", 1000)

    @property
    def IDLE_TIMEOUT(self) -> timedelta | None:
        """A session unused for longer is revoked on its next use (``IDLE_TIMEOUT_MINUTES``; None: off)."""
        minutes = self._get("IDLE_TIMEOUT_MINUTES", None)
        return timedelta(minutes=minutes) if minutes else None

    @property
    def COOKIE_CACHE_TTL(self) -> timedelta:
        """How long the browser's cookie cache answers without the database (default 5 minutes, 0: off).
        With an idle timeout it is capped at half of it, so activity keeps reaching the database."""
        ttl = timedelta(seconds=self._get("COOKIE_CACHE_SECONDS", 300))
        idle = self.IDLE_TIMEOUT
        return min(ttl, idle / 2) if idle else ttl

    @property
    def REVOCATION_CHECK(self) -> bool:
        """Look revocations up on cookie-cache hits (default on): in Redis with REDIS_URL, otherwise in this
        process's memory, where the embedded single-process default writes them."""
        return self._get("REVOCATION_CHECK", True)

    @property
    def REVOCATION_MARK_TIMEOUT(self) -> float:
        """Connect and read timeout of the cookie cache's Redis calls (default 0.25 s): the marks written
        after a revocation (one pipeline) and the lookup on cache hits. A write that times out is kept in
        the database and sent again (``PendingRevocationMark``); a lookup that times out asks the database."""
        return float(self._get("REVOCATION_MARK_TIMEOUT_SECONDS", 0.25))

    @property
    def REVOCATION_OUTAGE_PAUSE(self) -> float:
        """After a Redis call failed, this process leaves Redis alone for this long (default 1 s): cache hits
        go to the database and new marks straight to the pending table, so a hung Redis costs one timeout
        per pause, not one per request."""
        return float(self._get("REVOCATION_OUTAGE_PAUSE_SECONDS", 1.0))

    @property
    def PENDING_MARKS_BATCH(self) -> int:
        """Pending revocation marks sent per pipeline after an outage (default 500)."""
        return self._get("PENDING_MARKS_BATCH", 500)

    @property
    def MAX_BROWSER_ACCOUNTS(self) -> int:
        """How many accounts one browser can be signed in to at once (default 5)."""
        return self._get("MAX_BROWSER_ACCOUNTS", 5)

    @property
    def COOKIE_SECURE(self) -> bool:
        """Browser cookies carry ``Secure`` (and the ``__Host-`` prefix): SESSION_COOKIE_SECURE."""
        return bool(settings.SESSION_COOKIE_SECURE)

    def cookie_name(self, suffix: str = "") -> str:
        """SESSION_COOKIE_NAME (+ suffix), with the ``__Host-`` prefix exactly when the cookie is Secure
        (browsers refuse a ``__Host-`` cookie without Secure, e.g. DEBUG over plain http)."""
        base = settings.SESSION_COOKIE_NAME.removeprefix("__Host-") + suffix
        return f"__Host-{base}" if self.COOKIE_SECURE else base

    @property
    def SESSION_COOKIE(self) -> str:
        return self.cookie_name()

    @property
    def CACHE_COOKIE(self) -> str:
        """The cookie cache (sessions_app/cookie_cache.py)."""
        return self.cookie_name("_cache")

    @property
    def ACCOUNTS_COOKIE(self) -> str:
        """The other accounts signed in on this browser."""
        return self.cookie_name("_accounts")


app_settings = AppSettings()

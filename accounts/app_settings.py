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
    def EMAIL_CHANGE_REVERT_TTL(self) -> timedelta:
        """How long the link mailed to the old address after an email change can undo it (default 7
        days; a smaller value is raised to 7 days: the owner of the old address may be away a week)."""
        return max(timedelta(days=7), timedelta(seconds=self._get("EMAIL_CHANGE_REVERT_TTL_SECONDS", 7 * 24 * 3600)))

    @property
    def PASSWORD_RESET_TTL(self) -> timedelta:
        """How long a password-reset link works (default 1 hour)."""
        return timedelta(seconds=self._get("PASSWORD_RESET_TTL_SECONDS", 3600))

    # --- password hashing (accounts/hashers.py; README "Passwords") -----------------------------------
    @property
    def PASSWORD_ARGON2_MEMORY_KIB(self) -> int:
        """argon2id memory per hash in KiB (``AUTH_PASSWORD_ARGON2_MEMORY_KIB``, default 65536 = 64 MiB)."""
        return int(self._get("PASSWORD_ARGON2_MEMORY_KIB", 65536))

    @property
    def PASSWORD_ARGON2_TIME_COST(self) -> int:
        """argon2id passes over that memory (``AUTH_PASSWORD_ARGON2_TIME_COST``, default 2)."""
        return int(self._get("PASSWORD_ARGON2_TIME_COST", 2))

    @property
    def PASSWORD_ARGON2_PARALLELISM(self) -> int:
        """argon2id lanes (``AUTH_PASSWORD_ARGON2_PARALLELISM``, default 2)."""
        return int(self._get("PASSWORD_ARGON2_PARALLELISM", 2))

    # --- breached passwords (accounts/breach.py; docs/security.md "Breached passwords") ---------------
    @property
    def BREACH_RANGE_URL(self) -> str:
        """Base URL of a k-anonymity range API (HIBP-compatible: ``GET {url}/{first 5 hex of SHA-1}``
        answers ``SUFFIX:COUNT`` lines); ``AUTH_BREACH_RANGE_URL``. Empty: no range source."""
        return (self._get("BREACH_RANGE_URL", "") or "").strip().rstrip("/")

    @property
    def BREACH_FILE(self) -> str:
        """Path of a local file of ``SHA1[:COUNT]`` lines sorted by hash (``AUTH_BREACH_FILE``).
        Empty: no file source."""
        return (self._get("BREACH_FILE", "") or "").strip()

    @property
    def BREACH_SOURCES(self) -> list[str]:
        """The sources asked, in order (``AUTH_BREACH_SOURCES``, comma list of ``file``, ``range``,
        ``common``). Unset: ``file`` when ``BREACH_FILE`` is set, then ``range`` when
        ``BREACH_RANGE_URL`` is set; nothing configured turns the check off."""
        named = self._get("BREACH_SOURCES", None)
        if named:
            return [name.strip().lower() for name in named if name.strip()]
        return [name for name, value in (("file", self.BREACH_FILE), ("range", self.BREACH_RANGE_URL)) if value]

    @property
    def BREACH_MAX_COUNT(self) -> int:
        """A password a source has seen more than this many times is refused (``AUTH_BREACH_MAX_COUNT``;
        default 0: any occurrence refuses)."""
        return int(self._get("BREACH_MAX_COUNT", 0))

    @property
    def BREACH_ON_ERROR(self) -> str:
        """``allow`` (default) or ``deny``: what a password gets when a source cannot answer
        (timeout, error status, unreadable file, malformed answer); ``AUTH_BREACH_ON_ERROR``."""
        return str(self._get("BREACH_ON_ERROR", "allow")).strip().lower()

    @property
    def BREACH_TIMEOUT(self) -> float:
        """Seconds the range API gets to answer (``AUTH_BREACH_TIMEOUT_SECONDS``, default 2)."""
        return float(self._get("BREACH_TIMEOUT_SECONDS", 2.0))

    @property
    def TOKEN_CLEANUP_AFTER(self) -> timedelta:
        """Used or expired one-time tokens are deleted this long after they stopped working."""
        return timedelta(seconds=self._get("TOKEN_CLEANUP_AFTER_SECONDS", 7 * 24 * 3600))


app_settings = AppSettings()

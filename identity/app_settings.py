"""Options of the identity app, read on access from ``settings.IDENTITY`` and the contract variables."""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "IDENTITY"

    @property
    def ISSUER(self) -> str:
        """JWT ``iss`` (``AUTH_ISSUER``)."""
        return settings.AUTH_ISSUER

    @property
    def AUDIENCE(self) -> str:
        """JWT ``aud`` (``AUTH_AUDIENCE``)."""
        return settings.AUTH_AUDIENCE

    @property
    def ACCESS_TOKEN_TTL(self) -> timedelta:
        """Lifetime of an access token (default 15 minutes)."""
        return timedelta(seconds=self._get("ACCESS_TOKEN_TTL_SECONDS", 15 * 60))

    @property
    def LEEWAY(self) -> timedelta:
        """Clock skew tolerated on ``exp`` / ``iat`` (default 30 seconds)."""
        return timedelta(seconds=self._get("LEEWAY_SECONDS", 30))

    @property
    def KEY_ROTATION_INTERVAL(self) -> timedelta:
        """A signing key signs for this long before the scheduled rotation replaces it (default 30 days)."""
        return timedelta(days=self._get("KEY_ROTATION_DAYS", 30))

    @property
    def KEY_PUBLISH_AHEAD(self) -> timedelta:
        """The next key appears in the JWKS this long before it starts signing (default 1 day)."""
        return timedelta(seconds=self._get("KEY_PUBLISH_AHEAD_SECONDS", 24 * 3600))

    @property
    def KEY_CACHE_SECONDS(self) -> int:
        """How long a process keeps the decrypted signing key and the public keys in memory."""
        return self._get("KEY_CACHE_SECONDS", 60)

    @property
    def KEY_GENERATION_CHECK_SECONDS(self) -> float:
        """How often a process asks whether the key set changed anywhere (rotation, revocation; default
        0.5 s, so every process follows within a second): one Redis ``GET``, or without Redis one small query
        on the key table."""
        return float(self._get("KEY_GENERATION_CHECK_SECONDS", 0.5))

    @property
    def GENERATION_REDIS_TIMEOUT(self) -> float:
        """Connect and read timeout of that Redis ``GET`` (default 0.25 s; it runs on request paths, and
        an unanswered check reloads the keys from the database instead)."""
        return float(self._get("KEY_GENERATION_REDIS_TIMEOUT_SECONDS", 0.25))

    @property
    def JWKS_MAX_AGE(self) -> int:
        """``Cache-Control: max-age`` of the JWKS (default 5 minutes; far below the publish-ahead day)."""
        return self._get("JWKS_MAX_AGE_SECONDS", 300)

    @property
    def KEY_ENCRYPTION_KEY(self) -> str:
        """``AUTH_KEY_ENCRYPTION_KEY``: 32 random bytes, base64url. Empty: derived from SECRET_KEY."""
        return settings.AUTH_KEY_ENCRYPTION_KEY


app_settings = AppSettings()

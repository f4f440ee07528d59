"""Options of the two-factor app, read on access from ``settings.MFA`` (so tests can override)."""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "MFA"

    @property
    def ISSUER_NAME(self) -> str:
        """The account's issuer in authenticator apps (the otpauth URL's ``issuer``)."""
        return self._get("ISSUER_NAME", "Mana")

    @property
    def TRUST_MAX_AGE(self) -> timedelta:
        """How long "trust this browser" / ``trustDevice`` skips the second factor (``AUTH_MFA_TRUST_DAYS``,
        default 30 days)."""
        return timedelta(days=settings.AUTH_MFA_TRUST_DAYS)

    @property
    def CHALLENGE_TTL(self) -> timedelta:
        """How long a sign-in waits for its second factor (the ``mfaToken``; 5 minutes)."""
        return timedelta(seconds=self._get("CHALLENGE_TTL_SECONDS", 300))

    @property
    def CHALLENGE_MAX_FAILURES(self) -> int:
        """Wrong codes after which an ``mfaToken`` is dead (5)."""
        return self._get("CHALLENGE_MAX_FAILURES", 5)

    @property
    def RECOVERY_CODES(self) -> int:
        """Recovery codes issued at once (10)."""
        return self._get("RECOVERY_CODES", 10)

    @property
    def RECOVERY_CODES_LOW(self) -> int:
        """At or below this many unused recovery codes, using one mails a warning (3)."""
        return self._get("RECOVERY_CODES_LOW", 3)

    @property
    def TOTP_DRIFT_STEPS(self) -> int:
        """Time steps of clock drift accepted either way (1: the contract's one step)."""
        return self._get("TOTP_DRIFT_STEPS", 1)

    @property
    def TRUSTED_DEVICES_KEPT(self) -> int:
        """Trusted-device tokens one browser keeps in its cookie (one per account)."""
        return self._get("TRUSTED_DEVICES_KEPT", 5)


app_settings = AppSettings()

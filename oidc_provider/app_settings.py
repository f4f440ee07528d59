"""Options of the OpenID Connect provider, read on access from ``settings.OIDC_PROVIDER`` and the contract
variables (docs/oidc.md)."""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings


class AppSettings(BaseAppSettings):
    namespace = "OIDC_PROVIDER"

    @property
    def ISSUER(self) -> str:
        """``AUTH_OIDC_ISSUER``: the ``iss`` of id_tokens; discovery at ``{issuer}/.well-known/openid-configuration``
        (default ``AUTH_PUBLIC_URL``)."""
        return (getattr(settings, "AUTH_OIDC_ISSUER", "") or settings.AUTH_PUBLIC_URL).rstrip("/")

    @property
    def CODE_TTL(self) -> timedelta:
        """How long an authorization code can be redeemed (60 seconds)."""
        return timedelta(seconds=self._get("CODE_TTL_SECONDS", 60))

    @property
    def SCOPES(self) -> tuple[str, ...]:
        """The scopes this provider knows; others in a request are ignored (OpenID Connect Core 3.1.2.1)."""
        return ("openid", "profile", "email", "offline_access")


app_settings = AppSettings()

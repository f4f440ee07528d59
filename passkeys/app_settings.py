"""Options of the passkeys app, read on access from ``settings.PASSKEYS`` (so tests can override)."""

from datetime import timedelta
from urllib.parse import urlsplit

from core.app_settings import AppSettings as BaseAppSettings


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class AppSettings(BaseAppSettings):
    namespace = "PASSKEYS"

    @property
    def RP_ID(self) -> str:
        """The relying-party id: ``AUTH_WEBAUTHN_RP_ID``, else the host of ``AUTH_PUBLIC_URL``."""
        return self._get("RP_ID", "") or (urlsplit(self.PUBLIC_URL).hostname or "localhost")

    @property
    def RP_NAME(self) -> str:
        """The name browsers show beside the passkey."""
        return self._get("RP_NAME", "Mana")

    @property
    def ORIGINS(self) -> list[str]:
        """The exact origins a ceremony may come from: the origin of ``AUTH_PUBLIC_URL`` and the comma list
        ``AUTH_WEBAUTHN_ORIGINS`` (for example an app's ``android:apk-key-hash:...`` origin)."""
        extra = [o.strip().rstrip("/") for o in self._get("ORIGINS", []) if o.strip()]
        return [_origin(self.PUBLIC_URL), *[o for o in extra if o != _origin(self.PUBLIC_URL)]]

    @property
    def CEREMONY_TTL(self) -> timedelta:
        """How long a challenge can be answered (5 minutes)."""
        return timedelta(seconds=self._get("CEREMONY_TTL_SECONDS", 300))

    @property
    def TIMEOUT_MS(self) -> int:
        """The options' ``timeout`` hint to the browser (milliseconds)."""
        return self._get("TIMEOUT_MS", 120_000)

    @property
    def MAX_PER_USER(self) -> int:
        """Passkeys one account may hold (20)."""
        return self._get("MAX_PER_USER", 20)


app_settings = AppSettings()

"""The base of every app's settings object (``<app>/app_settings.py``).

An app's options live in one dict of Django's settings, named by ``namespace`` (``settings.ACCOUNTS``,
``settings.SECURITY``, ...), and are read on access, so the pytest ``settings`` fixture and
``override_settings`` just work. The contract variables several apps need are declared here, once.
"""

from datetime import timedelta

from django.conf import settings


class AppSettings:
    namespace = ""  # the dict in Django's settings holding this app's options ("" for none)

    def _get(self, name, default):
        return getattr(settings, self.namespace, {}).get(name, default) if self.namespace else default

    @property
    def PUBLIC_URL(self) -> str:
        """Base of the links in emails (``AUTH_PUBLIC_URL``)."""
        return settings.AUTH_PUBLIC_URL

    @property
    def REAUTH_MAX_AGE(self) -> timedelta:
        """How long a password entry keeps a session fresh (``AUTH_REAUTH_MAX_AGE_SECONDS``)."""
        return timedelta(seconds=settings.AUTH_REAUTH_MAX_AGE_SECONDS)

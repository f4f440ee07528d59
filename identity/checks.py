from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from core.crypto import b64url_decode


@register(Tags.security, deploy=True)
def key_encryption_key_check(app_configs, **kwargs):
    if not settings.AUTH_KEY_ENCRYPTION_KEY:
        return [Warning(
            "AUTH_KEY_ENCRYPTION_KEY is not set: signing keys are encrypted under a key derived from SECRET_KEY.",
            hint="Set AUTH_KEY_ENCRYPTION_KEY to 32 random bytes, base64url "
                 "(python -c 'import secrets; print(secrets.token_urlsafe(32))').",
            id="identity.W001",
        )]
    return []


@register(Tags.security)
def key_encryption_key_format_check(app_configs, **kwargs):
    value = settings.AUTH_KEY_ENCRYPTION_KEY
    if not value:
        return []
    try:
        ok = len(b64url_decode(value)) >= 32
    except Exception:
        ok = False
    if not ok:
        return [Error("AUTH_KEY_ENCRYPTION_KEY must be base64url of at least 32 bytes.", id="identity.E001")]
    return []


@register(Tags.security, deploy=True)
def secret_key_from_environment_check(app_configs, **kwargs):
    if not settings.SECRET_KEY_FROM_ENV:
        return [Warning(
            "SECRET_KEY is not set in the environment; a development key from the data folder is in use.",
            hint="Set SECRET_KEY in production.",
            id="identity.W002",
        )]
    return []


@register(Tags.security, deploy=True)
def public_url_https_check(app_configs, **kwargs):
    """Outside DEBUG the links in mail (verification, password reset, invitations, unlock) start with
    AUTH_PUBLIC_URL: over plain http the one-time tokens in them travel in the clear."""
    if settings.DEBUG:
        return []
    if urlsplit(settings.AUTH_PUBLIC_URL).scheme.lower() != "https":
        return [Warning(
            f"AUTH_PUBLIC_URL ({settings.AUTH_PUBLIC_URL!r}) is not an https URL: the one-time tokens in "
            "email links would travel in the clear.",
            hint="Set AUTH_PUBLIC_URL to the service's public https address, e.g. https://auth.example.com.",
            id="identity.W003",
        )]
    return []

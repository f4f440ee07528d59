"""Settings of the example resource service: a DRF API that trusts mana-core-auth access tokens.

Everything comes from the environment:
  MANA_AUTH_URL            the provider's base URL, e.g. https://auth.mana.example (required)
  MANA_AUTH_ISSUER         the provider's AUTH_ISSUER (default manacore)
  MANA_AUTH_AUDIENCE       the provider's AUTH_AUDIENCE (default manacore)
  MANA_AUTH_CLIENT_ID      a service account of the provider (python manage.py create_service_account
  MANA_AUTH_CLIENT_SECRET  <name>); with both set, /sensitive checks revocation through introspection
  DEBUG                    true for development (default false)
  SECRET_KEY, ALLOWED_HOSTS
No database: the service keeps no users. Tokens are verified locally against the provider's JWKS.
"""

import os
import secrets

DEBUG = os.environ.get("DEBUG", "").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)  # no sessions or signing here
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "resource_service.urls"
WSGI_APPLICATION = "resource_service.wsgi.application"
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"

_provider = os.environ.get("MANA_AUTH_URL", "http://127.0.0.1:8000").rstrip("/")
MANA_AUTH = {
    "JWKS_URL": f"{_provider}/api/v1/auth/jwks",
    "ISSUER": os.environ.get("MANA_AUTH_ISSUER", "manacore"),
    "AUDIENCE": os.environ.get("MANA_AUTH_AUDIENCE", "manacore"),
}
if os.environ.get("MANA_AUTH_CLIENT_ID") and os.environ.get("MANA_AUTH_CLIENT_SECRET"):
    MANA_AUTH.update(INTROSPECT_URL=f"{_provider}/api/v1/auth/introspect",
                     CLIENT_ID=os.environ["MANA_AUTH_CLIENT_ID"], CLIENT_SECRET=os.environ["MANA_AUTH_CLIENT_SECRET"])

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mana_auth.drf.JwtAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["mana_auth.drf.IsAuthenticated"],
    "EXCEPTION_HANDLER": "mana_auth.drf.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,  # no django.contrib.auth here: anonymous is simply no principal
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"mana_auth": {"handlers": ["console"], "level": "INFO"}},
}

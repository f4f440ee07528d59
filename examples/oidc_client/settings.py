"""Settings of the example relying party: a tiny Django site that signs its users in through mana-core-auth's
OpenID Connect provider with Authlib's Django client.

Everything comes from the environment:
  MANA_OIDC_ISSUER         the provider's issuer, e.g. https://auth.mana.example (discovery is read from
                           {issuer}/.well-known/openid-configuration)
  MANA_OIDC_CLIENT_ID      from `python manage.py create_oidc_client "Example" --redirect-uri
  MANA_OIDC_CLIENT_SECRET    <this site>/callback --post-logout-redirect-uri <this site>/` on the provider
  EXAMPLE_BASE_URL         this site's own base URL (default http://localhost:8002)
  DEBUG, SECRET_KEY, ALLOWED_HOSTS
No database: who is signed in lives in a signed session cookie.
"""

import os
import secrets

DEBUG = os.environ.get("DEBUG", "").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)  # one process: sessions last its lifetime
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware",
              "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "oidc_client.urls"
WSGI_APPLICATION = "oidc_client.wsgi.application"
DATABASES = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_NAME = "example_rp_session"
SESSION_COOKIE_SAMESITE = "Lax"  # the provider's redirect back is a top-level GET: the cookie comes along
USE_TZ = True
TIME_ZONE = "UTC"

BASE_URL = os.environ.get("EXAMPLE_BASE_URL", "http://localhost:8002").rstrip("/")
_issuer = os.environ.get("MANA_OIDC_ISSUER", "http://127.0.0.1:8000").rstrip("/")
AUTHLIB_OAUTH_CLIENTS = {
    "mana": {
        "client_id": os.environ.get("MANA_OIDC_CLIENT_ID", ""),
        "client_secret": os.environ.get("MANA_OIDC_CLIENT_SECRET", ""),
        "server_metadata_url": f"{_issuer}/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid profile email", "code_challenge_method": "S256"},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

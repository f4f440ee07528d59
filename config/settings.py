"""Settings for mana-core-auth.

Every value that differs between machines comes from the environment (django-environ), read in one
table, ``environment`` below: the contract's variables (CONTRACT.md "Configuration") and the documented
extensions (docs/configuration.md lists them all with their meaning). With nothing set, the service runs
on an embedded default: SQLite under ``var/``, no Redis, Celery tasks run eagerly, email printed to the
console. App options are one dict per app (``IDENTITY``, ``SESSIONS``, ...), read through each app's
``app_settings.py``.
"""

from __future__ import annotations

import secrets
import warnings
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# --- the environment: every variable read, in one table -------------------------------------------
# variable -> its reader and default; the comment names the setting it feeds. Nothing below this table
# reads the environment. Lower case on purpose: not a Django setting (it holds the secrets).
environment = {
    # The contract's variables (CONTRACT.md "Configuration").
    "DATABASE_URL": env.str("DATABASE_URL", default=""),  # DATABASES; unset: SQLite under MANA_DATA_DIR
    "REDIS_URL": env.str("REDIS_URL", default=""),  # REDIS_URL: CACHES, Celery; unset: none, tasks eager
    "EMAIL_URL": env.email_url("EMAIL_URL", default="consolemail://"),  # EMAIL_BACKEND, EMAIL_HOST, ...
    "SECRET_KEY": env.str("SECRET_KEY") if "SECRET_KEY" in env else None,  # SECRET_KEY; unset: generated
    "DEBUG": env.bool("DEBUG", default=False),  # DEBUG; false: HTTPS redirect, HSTS, Secure cookies
    "ALLOWED_HOSTS": env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"]),  # ALLOWED_HOSTS
    "AUTH_ISSUER": env.str("AUTH_ISSUER", default="manacore"),  # AUTH_ISSUER
    "AUTH_AUDIENCE": env.str("AUTH_AUDIENCE", default="manacore"),  # AUTH_AUDIENCE
    "AUTH_TRUSTED_PROXY_COUNT": env.int("AUTH_TRUSTED_PROXY_COUNT", default=0),  # AUTH_TRUSTED_PROXY_COUNT
    "AUTH_PUBLIC_URL": env.str("AUTH_PUBLIC_URL", default="http://localhost:8000"),  # AUTH_PUBLIC_URL
    "AUTH_REFRESH_GRACE_SECONDS": env.int("AUTH_REFRESH_GRACE_SECONDS", default=10),  # same name
    "AUTH_REAUTH_MAX_AGE_SECONDS": env.int("AUTH_REAUTH_MAX_AGE_SECONDS", default=600),  # same name
    "AUTH_MFA_TRUST_DAYS": env.int("AUTH_MFA_TRUST_DAYS", default=30),  # same name
    "AUTH_OIDC_ISSUER": env.str("AUTH_OIDC_ISSUER", default=""),  # same name; empty: AUTH_PUBLIC_URL
    # Extensions (docs/configuration.md).
    "MANA_DATA_DIR": env.str("MANA_DATA_DIR", default=str(BASE_DIR / "var")),  # DATA_DIR
    "DATABASE_CONN_MAX_AGE": env.int("DATABASE_CONN_MAX_AGE", default=60),  # CONN_MAX_AGE (PostgreSQL)
    # Faults (docs/deploy.md "Timeouts"): web processes, and jobs (Celery, manage.py) that may wait longer.
    "AUTH_DB_CONNECT_TIMEOUT": env.int("AUTH_DB_CONNECT_TIMEOUT", default=3),  # DB_CONNECT_TIMEOUT (web)
    "AUTH_DB_STATEMENT_TIMEOUT_MS": env.int("AUTH_DB_STATEMENT_TIMEOUT_MS", default=5_000),  # DB_STATEMENT_TIMEOUT_MS
    "AUTH_DB_JOB_CONNECT_TIMEOUT": env.int("AUTH_DB_JOB_CONNECT_TIMEOUT", default=10),  # DB_CONNECT_TIMEOUT (jobs)
    "AUTH_DB_JOB_STATEMENT_TIMEOUT_MS": env.int("AUTH_DB_JOB_STATEMENT_TIMEOUT_MS", default=600_000),  # jobs
    "AUTH_DB_STATEMENT_TIMEOUT_STARTUP": env.bool("AUTH_DB_STATEMENT_TIMEOUT_STARTUP", default=True),  # OPTIONS
    # PgBouncer in transaction mode in front (docs/deploy.md): no server-side cursors, no prepared statements,
    # no statement_timeout startup option.
    "AUTH_DB_TRANSACTION_POOLER": env.bool("AUTH_DB_TRANSACTION_POOLER", default=False),  # DATABASES
    # Unset: on, unless AUTH_DB_TRANSACTION_POOLER (PgBouncer 1.21+ with max_prepared_statements can take them).
    "AUTH_DB_PREPARED_STATEMENTS": env.bool("AUTH_DB_PREPARED_STATEMENTS", default=None),  # DATABASES
    "DEFAULT_FROM_EMAIL": env.str("DEFAULT_FROM_EMAIL", default="mana-core-auth <no-reply@localhost>"),
    "SECURE_SSL_REDIRECT": env.bool("SECURE_SSL_REDIRECT", default=True),  # same name, when DEBUG is off
    "SECURE_HSTS_PRELOAD": env.bool("SECURE_HSTS_PRELOAD", default=True),  # same name, when DEBUG is off
    "LOG_LEVEL": env.str("LOG_LEVEL", default="INFO"),  # LOGGING root level
    "AUTH_METRICS_TOKEN": env.str("AUTH_METRICS_TOKEN", default=""),  # same name; unset: /metrics is a 404
    "AUTH_KEY_ENCRYPTION_KEY": env.str("AUTH_KEY_ENCRYPTION_KEY", default=""),  # same name; unset: derived
    "AUTH_CORS_ORIGINS": env.list("AUTH_CORS_ORIGINS", default=[]),  # CORS_ALLOWED_ORIGINS
    "AUTH_LOCKOUT_FAILURES": env.int("AUTH_LOCKOUT_FAILURES", default=5),  # AXES_FAILURE_LIMIT
    "AUTH_LOCKOUT_SECONDS": env.int("AUTH_LOCKOUT_SECONDS", default=15 * 60),  # AXES_COOLOFF_TIME
    "AUTH_COOKIE_CACHE_SECONDS": env.int("AUTH_COOKIE_CACHE_SECONDS", default=300),  # SESSIONS
    "AUTH_REFRESH_ASYNC_COMMIT": env.bool("AUTH_REFRESH_ASYNC_COMMIT", default=True),  # SESSIONS
    "AUTH_RATE_LIMIT_ENABLED": env.bool("AUTH_RATE_LIMIT_ENABLED", default=True),  # SECURITY
    "AUTH_LOGIN_DELAY_BASE_SECONDS": env.int("AUTH_LOGIN_DELAY_BASE_SECONDS", default=1),  # SECURITY
    "AUTH_LOGIN_DELAY_MAX_SECONDS": env.int("AUTH_LOGIN_DELAY_MAX_SECONDS", default=8),  # SECURITY
    # argon2id cost (accounts/hashers.py); below OWASP's minimum fails `manage.py check` (accounts/checks.py).
    "AUTH_PASSWORD_ARGON2_MEMORY_KIB": env.int("AUTH_PASSWORD_ARGON2_MEMORY_KIB", default=65536),  # ACCOUNTS
    "AUTH_PASSWORD_ARGON2_TIME_COST": env.int("AUTH_PASSWORD_ARGON2_TIME_COST", default=2),  # ACCOUNTS
    "AUTH_PASSWORD_ARGON2_PARALLELISM": env.int("AUTH_PASSWORD_ARGON2_PARALLELISM", default=2),  # ACCOUNTS
    "AUTH_BREACH_SOURCES": env.list("AUTH_BREACH_SOURCES", default=[]),  # ACCOUNTS
    "AUTH_BREACH_RANGE_URL": env.str("AUTH_BREACH_RANGE_URL", default=""),  # ACCOUNTS
    "AUTH_BREACH_FILE": env.str("AUTH_BREACH_FILE", default=""),  # ACCOUNTS
    "AUTH_BREACH_MAX_COUNT": env.int("AUTH_BREACH_MAX_COUNT", default=0),  # ACCOUNTS
    "AUTH_BREACH_ON_ERROR": env.str("AUTH_BREACH_ON_ERROR", default="allow"),  # ACCOUNTS
    "AUTH_BREACH_TIMEOUT_SECONDS": env.float("AUTH_BREACH_TIMEOUT_SECONDS", default=2.0),  # ACCOUNTS
    "WEB_NEXT_ALLOWED_HOSTS": env.list("WEB_NEXT_ALLOWED_HOSTS", default=[]),  # WEB
    "AUTH_WEBAUTHN_RP_ID": env.str("AUTH_WEBAUTHN_RP_ID", default=""),  # PASSKEYS; unset: AUTH_PUBLIC_URL's host
    "AUTH_WEBAUTHN_ORIGINS": env.list("AUTH_WEBAUTHN_ORIGINS", default=[]),  # PASSKEYS, beside AUTH_PUBLIC_URL's
}

DATA_DIR = Path(environment["MANA_DATA_DIR"])
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = environment["DEBUG"]


def _development_secret_key() -> str:
    """A random key generated once and kept in the ignored data folder (development only)."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY_FROM_ENV = environment["SECRET_KEY"] is not None
SECRET_KEY = environment["SECRET_KEY"] if SECRET_KEY_FROM_ENV else _development_secret_key()
ALLOWED_HOSTS = environment["ALLOWED_HOSTS"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "audit",
    "accounts",
    "identity",
    "mfa",
    "passkeys",
    "sessions_app",
    "service_accounts",
    "oidc_provider",
    "orgs",
    "notifications",
    "web",
    "axes",
    "django_ratelimit",
    "csp",
    "corsheaders",
    "security",
]

MIDDLEWARE = [
    "core.middleware.ContentLengthMiddleware",  # first: every answer, fast paths included, says its length
    "core.middleware.EarlyAnswerBodyDrainMiddleware",  # an early answer still reaches the client
    "core.middleware.HealthCheckMiddleware",  # /healthz, /readyz: before the HTTPS redirect and the Host check
    "core.middleware.OutageMiddleware",  # a view that meets a database outage answers 503 (core/outage.py)
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.CorsMiddleware",  # django-cors-headers, cheaper for a request without an Origin
    "sessions_app.middleware.SessionFastPathMiddleware",  # cookie-cache hits of GET session end here
    "sessions_app.middleware.BearerFastPathMiddleware",  # bearer GETs of views with bearer_fast_get end here
    "sessions_app.middleware.RefreshFastPathMiddleware",  # POST refresh with a JSON body ends here
    "identity.middleware.JwksFastPathMiddleware",  # the JWKS from an in-process copy (identity/middleware.py)
    "csp.middleware.CSPMiddleware",  # after the JSON fast paths: a policy is for documents, not API JSON
    "oidc_provider.csp.AuthorizationFormActionMiddleware",  # sign-in forms may end at the client (docs/oidc.md)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "sessions_app.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "sessions_app.middleware.BrowserAuthenticationMiddleware",
    "web.middleware.FormAccountMiddleware",  # a form rendered for another account is refused (web/form_account.py)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last (django-axes 8)
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # {% csrf_token %} also writes the account a form is rendered for (web/form_account.py).
            "builtins": ["web.templatetags.form_account"],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url_config(environment["DATABASE_URL"] or f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", environment["DATABASE_CONN_MAX_AGE"])
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a dead persistent connection is replaced, no restart
    # Faults (issue 17, docs/deploy.md "Timeouts"): a down or hung database answers 503 within seconds.
    # Web processes wait a few seconds; jobs (Celery, manage.py, marked by their entry point) longer.
    from core.database import process_is_job  # noqa: E402

    _job = process_is_job()
    DB_CONNECT_TIMEOUT = environment["AUTH_DB_JOB_CONNECT_TIMEOUT" if _job else "AUTH_DB_CONNECT_TIMEOUT"]
    DB_STATEMENT_TIMEOUT_MS = environment["AUTH_DB_JOB_STATEMENT_TIMEOUT_MS" if _job
                                          else "AUTH_DB_STATEMENT_TIMEOUT_MS"]
    DATABASES["default"]["ENGINE"] = "core.database"  # Django's backend plus a client-side deadline
    DATABASES["default"]["CLIENT_DEADLINE"] = DB_STATEMENT_TIMEOUT_MS / 1000 + 1 if DB_STATEMENT_TIMEOUT_MS else None
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    # The hot paths' statements (core/prepared.py) are prepared on the server, once per connection
    # (core.database.base.PreparingCursor); not behind a transaction pooler unless asked for.
    DATABASES["default"]["PREPARED_STATEMENTS"] = (not environment["AUTH_DB_TRANSACTION_POOLER"]
                                                   if environment["AUTH_DB_PREPARED_STATEMENTS"] is None
                                                   else environment["AUTH_DB_PREPARED_STATEMENTS"])
    if environment["AUTH_DB_TRANSACTION_POOLER"]:
        # Consecutive transactions of one connection may run on different server connections: nothing may
        # outlive a transaction. Django's .iterator() would DECLARE ... WITH HOLD outside a transaction (a
        # cursor on one server connection, FETCHed from another); psycopg's prepared statements are per
        # server connection (Django binds client-side, which never prepares; this keeps it so should
        # server_side_binding be turned on). The server-side statement_timeout goes on the role instead.
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        _options["prepare_threshold"] = None
    elif environment["AUTH_DB_STATEMENT_TIMEOUT_STARTUP"]:
        # Startup options (behind PgBouncer, which refuses them: set it false, or ignore_startup_parameters =
        # options; docs/deploy.md). The statement timeout server side too (a slow query is cancelled, the
        # connection stays usable). And one plan per prepared statement: the hot statements (core/prepared.py)
        # are indexed look-ups by one key, whose generic plan is the plan; by default PostgreSQL plans each
        # execution again while the table's statistics make its generic estimate look worse (a few users
        # with many sessions: the sessions list was planned on every call, docs/benchmarks.md, eighth pass).
        # Django's own statements bind on the client and are never prepared: this touches nothing else.
        _startup = [f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"] if DB_STATEMENT_TIMEOUT_MS else []
        if DATABASES["default"]["PREPARED_STATEMENTS"]:
            _startup.append("-c plan_cache_mode=force_generic_plan")
        if _startup:
            _options.setdefault("options", " ".join(_startup))
else:
    # SQLite: wait for the writer instead of failing at once, and write-ahead logging for readers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and Celery -----------------------------------------------------------------------------
REDIS_URL = environment["REDIS_URL"]
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis: the Redis backend django-ratelimit supports (atomic counters with their TTL).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mca",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A request must never hang on a broker that is down: fail fast, the outbox keeps the work.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2, "max_retries": 0}
CELERY_BEAT_SCHEDULE = {
    "outbox-flush": {"task": "notifications.tasks.outbox_flush", "schedule": timedelta(minutes=1)},
    "sessions-cleanup": {"task": "sessions_app.tasks.sessions_cleanup", "schedule": timedelta(hours=1)},
    # Cookie-cache revocation marks that missed Redis (down, hung) go out when it answers again.
    "revocation-marks-resend": {"task": "sessions_app.tasks.revocation_marks_resend",
                                "schedule": timedelta(seconds=30)},
    "tokens-cleanup": {"task": "accounts.tasks.account_tokens_cleanup", "schedule": timedelta(hours=1)},
    "signing-keys-rotate": {"task": "identity.tasks.signing_keys_rotate_if_due", "schedule": timedelta(hours=1)},
    "audit-retention": {"task": "audit.tasks.audit_retention_enforce", "schedule": timedelta(hours=24)},
    "security-tokens-cleanup": {"task": "security.tasks.security_tokens_cleanup", "schedule": timedelta(hours=24)},
    # The audit sealer (audit/chain.py, docs/audit.md): links the rows of the last second into the hash chain.
    "audit-seal": {"task": "audit.tasks.audit_seal", "schedule": timedelta(seconds=1), "options": {"expires": 10}},
    "audit-refusals-flush": {"task": "audit.tasks.audit_refusals_flush", "schedule": timedelta(minutes=1)},
    "invitations-cleanup": {"task": "orgs.tasks.invitations_cleanup", "schedule": timedelta(hours=1)},
    "mfa-cleanup": {"task": "mfa.tasks.mfa_cleanup", "schedule": timedelta(hours=1)},
    "passkey-ceremonies-cleanup": {"task": "passkeys.tasks.ceremonies_cleanup", "schedule": timedelta(hours=1)},
    "oidc-codes-cleanup": {"task": "oidc_provider.tasks.oidc_codes_cleanup", "schedule": timedelta(hours=1)},
}

# --- email ----------------------------------------------------------------------------------------
vars().update(environment["EMAIL_URL"])  # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS, ...
DEFAULT_FROM_EMAIL = environment["DEFAULT_FROM_EMAIL"]

# --- passwords ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "accounts.hashers.ManaArgon2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "name")},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "accounts.validators.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Last: the breached-password check (AUTH_BREACH_*; does nothing while no source is configured).
    {"NAME": "accounts.validators.BreachedPasswordValidator"},
]
# django-axes first: it refuses locked-out (account, IP) pairs before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.LoginBackend"]
AXES_HANDLER = "security.lockout.LockoutHandler"  # axes' database handler; its lock check reuses the login's read

# --- HTTP -----------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves collected files from here (and app files via finders)
LOGIN_URL = "/login"
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step
WHITENOISE_AUTOREFRESH = DEBUG
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
REQUEST_BODY_MAX_BYTES = 1024 * 1024

AUTH_TRUSTED_PROXY_COUNT = environment["AUTH_TRUSTED_PROXY_COUNT"]
if AUTH_TRUSTED_PROXY_COUNT > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Browser sessions live in DeviceSession rows (sessions_app/browser.py, docs/browser.md); the cookie
# names get the __Host- prefix whenever they are Secure (sessions_app/app_settings.py).
SESSION_ENGINE = "sessions_app.browser"
SESSION_COOKIE_NAME = "mca_session" if DEBUG else "__Host-mca_session"
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "web.form_refusals.csrf_failure"  # a page that says what happened (web/form_account.py)
if not DEBUG:
    SECURE_SSL_REDIRECT = environment["SECURE_SSL_REDIRECT"]
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = environment["SECURE_HSTS_PRELOAD"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- identity (contract variables) ----------------------------------------------------------------
AUTH_ISSUER = environment["AUTH_ISSUER"]
AUTH_AUDIENCE = environment["AUTH_AUDIENCE"]
AUTH_PUBLIC_URL = environment["AUTH_PUBLIC_URL"].rstrip("/")
AUTH_REFRESH_GRACE_SECONDS = environment["AUTH_REFRESH_GRACE_SECONDS"]
AUTH_REAUTH_MAX_AGE_SECONDS = environment["AUTH_REAUTH_MAX_AGE_SECONDS"]
AUTH_MFA_TRUST_DAYS = environment["AUTH_MFA_TRUST_DAYS"]  # "trust this browser" (two-factor)
# OpenID Connect provider (docs/oidc.md): the issuer of id_tokens; empty means AUTH_PUBLIC_URL.
AUTH_OIDC_ISSUER = environment["AUTH_OIDC_ISSUER"].rstrip("/")
# Extension: the key that encrypts signing keys at rest (32 bytes, base64url). Unset: derived
# from SECRET_KEY, which is fine for development and flagged by `check --deploy`.
AUTH_KEY_ENCRYPTION_KEY = environment["AUTH_KEY_ENCRYPTION_KEY"]

# --- app options: one dict per app, read through its app_settings.py (defaults and docstrings there) ---
IDENTITY = {}  # identity/app_settings.py: token lifetimes, key rotation, JWKS caching
SESSIONS = {  # sessions_app/app_settings.py: lifetimes, idle timeout, cookie cache, revocation marks
    # The browser's cookie cache lifetime (seconds, 0 turns it off); bench/session_bench.sh uses it to
    # measure with and without the cache.
    "COOKIE_CACHE_SECONDS": environment["AUTH_COOKIE_CACHE_SECONDS"],
    # A routine refresh's rotation commits without waiting for the WAL flush (docs/deploy.md "A refresh and the disk").
    "REFRESH_ASYNC_COMMIT": environment["AUTH_REFRESH_ASYNC_COMMIT"],
}
ACCOUNTS = {  # accounts/app_settings.py: link lifetimes, password hashing cost, breached passwords
    # argon2id cost of accounts.hashers.ManaArgon2PasswordHasher (README "Passwords"); a change rehashes
    # each stored password at its next login.
    "PASSWORD_ARGON2_MEMORY_KIB": environment["AUTH_PASSWORD_ARGON2_MEMORY_KIB"],
    "PASSWORD_ARGON2_TIME_COST": environment["AUTH_PASSWORD_ARGON2_TIME_COST"],
    "PASSWORD_ARGON2_PARALLELISM": environment["AUTH_PASSWORD_ARGON2_PARALLELISM"],
    # Breached-password check (accounts/breach.py, docs/security.md "Breached passwords"). Off unless
    # a source is configured; it runs with the password policy, never at login.
    "BREACH_SOURCES": environment["AUTH_BREACH_SOURCES"],
    "BREACH_RANGE_URL": environment["AUTH_BREACH_RANGE_URL"],
    "BREACH_FILE": environment["AUTH_BREACH_FILE"],
    "BREACH_MAX_COUNT": environment["AUTH_BREACH_MAX_COUNT"],
    "BREACH_ON_ERROR": environment["AUTH_BREACH_ON_ERROR"],
    "BREACH_TIMEOUT_SECONDS": environment["AUTH_BREACH_TIMEOUT_SECONDS"],
}
SECURITY = {  # security/app_settings.py: rate limits, lockout, new-device mail, anomaly policy
    # false turns the rate limits off (benchmarks only; the peer's benchmark also runs with its limiter
    # off). Lockout stays on.
    "RATE_LIMIT_ENABLED": environment["AUTH_RATE_LIMIT_ENABLED"],
    # Progressive delay before the lockout, per (account, IP): after the k-th failure the next attempt
    # waits min(BASE * 2**(k-1), MAX) seconds (1, 2, 4, 8); 0 turns it off. Refused with 429
    # rate_limited + Retry-After, never by sleeping (docs/security.md).
    "LOGIN_DELAY_BASE_SECONDS": environment["AUTH_LOGIN_DELAY_BASE_SECONDS"],
    "LOGIN_DELAY_MAX_SECONDS": environment["AUTH_LOGIN_DELAY_MAX_SECONDS"],
}
AUDIT = {}  # audit/app_settings.py: retention, flood control of refusals, sealing, refresh rows
ORGS = {}  # orgs/app_settings.py: invitation lifetime, smallest session-policy value
PASSKEYS = {  # passkeys/app_settings.py: the WebAuthn relying party (docs/security.md "Passkeys")
    # Relying-party id (a registrable domain suffix of the origins); empty: the host of AUTH_PUBLIC_URL.
    "RP_ID": environment["AUTH_WEBAUTHN_RP_ID"],
    # Origins accepted beside AUTH_PUBLIC_URL's (comma list, exact: scheme://host[:port], or an app's origin).
    "ORIGINS": environment["AUTH_WEBAUTHN_ORIGINS"],
}
WEB = {  # web/app_settings.py: the browser pages
    # `next=` may only point at this site or at these hosts (comma list).
    "NEXT_ALLOWED_HOSTS": environment["WEB_NEXT_ALLOWED_HOSTS"],
}

# --- defenses (issue 4; docs/security.md) ---------------------------------------------------------
# Brute force: django-axes, 5 failures per (account, IP) lock that pair for 15 minutes.
AXES_FAILURE_LIMIT = environment["AUTH_LOCKOUT_FAILURES"]
AXES_COOLOFF_TIME = timedelta(seconds=environment["AUTH_LOCKOUT_SECONDS"])
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "email"
AXES_CLIENT_IP_CALLABLE = "security.lockout.axes_client_ip"
AXES_WHITELIST_CALLABLE = "security.lockout.axes_known_device"
AXES_LOCKOUT_CALLABLE = "security.lockout.axes_lockout_response"
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # locked for 15 minutes from the lock, not from the last try
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail already
AXES_VERBOSE = False
# Rate limits: django-ratelimit on the default cache (Redis when REDIS_URL is set). Without Redis the
# cache is the in-process LocMem cache, which ratelimit's checks E003/W001 refuse because it is not
# shared between processes: the embedded default is one process (runserver), so that is exactly right there;
# a multi-process deployment sets REDIS_URL (then the cache is django-redis, which ratelimit supports,
# and nothing is silenced). Cache failures fail open (security/ratelimit.py); see docs/security.md.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True
SILENCED_SYSTEM_CHECKS = [] if REDIS_URL else ["django_ratelimit.E003", "django_ratelimit.W001"]
# Browser security: django-csp 4, strict (pages put {{ request.csp_nonce }} on their scripts).
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}
# CORS only for configured origins (comma list); credentials (cookies) are never sent cross-origin.
CORS_ALLOWED_ORIGINS = environment["AUTH_CORS_ORIGINS"]
CORS_URLS_REGEX = r"^/(api/|\.well-known/).*$"
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = ["Retry-After"]

# --- DRF and OpenAPI ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["sessions_app.authentication.BearerSessionAuthentication",
                                       "service_accounts.authentication.ServiceTokenAuthentication",
                                       "sessions_app.authentication.SessionCookieAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # 100 requests a minute per client for the whole API (security/ratelimit.py, django-ratelimit).
    "DEFAULT_THROTTLE_CLASSES": ["security.ratelimit.ApiRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mana-core-auth API",
    "DESCRIPTION": "Central identity provider. Errors use one envelope: see docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH bodies are validated like the others (PATCH me requires `name`): no "Patched" variant
    # with every field optional.
    "COMPONENT_SPLIT_PATCH": False,
    # Two choice sets are called "role": the user's (accounts) and the organization role (orgs).
    "ENUM_NAME_OVERRIDES": {"OrgRoleEnum": "orgs.models.OrgRole"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": environment["LOG_LEVEL"]},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# joserfc flags the RFC 8037 name "EdDSA" as superseded by RFC 9864; the contract requires it.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")

# --- metrics and the OpenAPI document (issue 16; docs/operations.md) ------------------------------------
# GET /metrics answers only `Authorization: Bearer <AUTH_METRICS_TOKEN>` (404 while unset). Request
# timing sits right after the body drain, so fast paths and early answers are timed too.
AUTH_METRICS_TOKEN = environment["AUTH_METRICS_TOKEN"]
MIDDLEWARE.insert(1, "core.metrics.RequestMetricsMiddleware")
# The OpenAPI document names the headers of its 401 and 429 answers (core/schema.py; tests/fuzz checks them).
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = ["drf_spectacular.hooks.postprocess_schema_enums",
                                                "core.schema.error_headers"]

"""Options of the security app, read on access from ``settings.SECURITY`` (so tests can override).

Lockout numbers come from django-axes' own settings (``AXES_FAILURE_LIMIT``, ``AXES_COOLOFF_TIME``,
set from ``AUTH_LOCKOUT_FAILURES`` / ``AUTH_LOCKOUT_SECONDS``); everything else is here.
"""

from datetime import timedelta

from django.conf import settings

from core.app_settings import AppSettings as BaseAppSettings

# Every rate-limit scope (docs/security.md, "Rate limits": the table says where each one applies and
# what it is counted per; tests/security/test_rate_limit_table.py drives every row to its limit).
DEFAULT_RATE_LIMITS = {
    # Passwords checked for anyone who asks (argon2 each): per client IP.
    "login": "5/m",
    # Accounts created (argon2 and a mail): register, register-b2b and the /register page, per client IP.
    "register": "10/h",
    # Mail to an address typed into the request, per client IP.
    "forgot_password": "3/5m",
    "resend_verification": "3/5m",
    # Every request that mails an address typed into it (register, register-b2b, resend-verification,
    # forgot-password, change-email's new address, and their pages): per address *and client network*
    # (/24, /48), so a stranger spends their own network's share and never the owner's, and per address
    # overall, the most mail one address can be sent (a single network cannot use it up: 2 x 5 < 25).
    "mail_address": "5/h",
    "mail_address_total": "25/h",
    # A new password from a reset link (argon2 with a valid token), per client IP.
    "reset_password": "10/h",
    # Per signed-in user: asking for an email change (each one mails two addresses), changing the password
    # (argon2 twice) and confirming the password again (its own budget: re-authentication and login do not
    # share counters).
    "change_email": "3/5m",
    "change_password": "5/15m",
    "reauthenticate": "5/m",
    # Second-factor codes (POST mfa/verify and /login/two-factor), per client IP. Each account also has
    # its own budget of wrong codes (SECOND_FACTOR_FAILURES), which locks the account's second factor.
    "mfa_verify": "10/m",
    # Passwordless sign-in with a passkey (POST passkeys/login/options and .../verify, and the /login
    # page's), per client IP: each sign-in is two requests.
    "passkey_login": "20/m",
    # Invitations (each mails the address typed in): per organization, per inviter, per recipient address.
    "invitation_org": "50/h",
    "invitation_inviter": "20/h",
    "invitation_recipient": "5/h",
    # Client secrets checked (service-token), per client IP.
    "service_token": "30/m",
    "unlock": "10/h",
    "not_me": "10/h",
    "api": "100/m",
    # Resource servers introspect (each distinct token at most once per 10 s per process): per service
    # account, instead of the "api" scope, which would turn a busy service's checks into 429s.
    "introspect": "6000/m",
    # OpenID Connect (oidc_provider): authorization requests (each may issue a code) and token requests (each
    # checks a client secret or a code), per client IP. A relying party's server redeems the codes of all its
    # users from one address: its budget is higher than a person's.
    "oidc_authorize": "60/m",
    "oidc_token": "300/m",
}
ANOMALY_ACTIONS = ("record", "revoke")


class AppSettings(BaseAppSettings):
    namespace = "SECURITY"

    @property
    def RATE_LIMIT_ENABLED(self) -> bool:
        """Switch every rate limit off (default on)."""
        return self._get("RATE_LIMIT_ENABLED", True)

    def rate(self, scope: str) -> str | None:
        """The django-ratelimit rate of a scope (``"5/m"``, ``"3/5m"``); ``RATE_LIMITS`` overrides
        single scopes. None: that scope is not limited."""
        return {**DEFAULT_RATE_LIMITS, **self._get("RATE_LIMITS", {})}.get(scope)

    @property
    def RATE_LIMIT_PREFIX(self) -> str:
        """Prefix of the rate-limit counters in the cache (tests give each test its own)."""
        return self._get("RATE_LIMIT_PREFIX", "mca.rl")

    @property
    def LOCKOUT_FAILURES(self) -> int:
        return settings.AXES_FAILURE_LIMIT

    @property
    def LOCKOUT_DURATION(self) -> timedelta:
        return settings.AXES_COOLOFF_TIME

    @property
    def LOGIN_DELAY_BASE(self) -> int:
        """Progressive delay before the lockout (security/lockout.py): after the k-th failure of an
        (account, IP) pair, the pair's next attempt waits ``min(BASE * 2**(k-1), MAX)`` seconds from
        that failure (default 1, so 1, 2, 4, 8 s). 0 turns the delay off."""
        return max(0, int(self._get("LOGIN_DELAY_BASE_SECONDS", 1)))

    @property
    def LOGIN_DELAY_MAX(self) -> int:
        """Cap of the progressive delay in seconds (default 8). 0 turns the delay off."""
        return max(0, int(self._get("LOGIN_DELAY_MAX_SECONDS", 8)))

    def login_delay(self, failures: int) -> int:
        """Seconds an (account, IP) pair waits after its ``failures``-th failure (0: no delay)."""
        if failures < 1 or not self.LOGIN_DELAY_BASE or not self.LOGIN_DELAY_MAX:
            return 0
        return min(self.LOGIN_DELAY_BASE * 2 ** min(failures - 1, 32), self.LOGIN_DELAY_MAX)

    @property
    def SECOND_FACTOR_FAILURES(self) -> int:
        """Wrong second-factor codes of one account within SECOND_FACTOR_WINDOW that lock its second
        factor (default 10; its own budget, not django-axes' password counter)."""
        return self._get("SECOND_FACTOR_FAILURES", 10)

    @property
    def SECOND_FACTOR_WINDOW(self) -> timedelta:
        """The window of SECOND_FACTOR_FAILURES (default 15 minutes)."""
        return timedelta(seconds=self._get("SECOND_FACTOR_WINDOW_SECONDS", 15 * 60))

    @property
    def UNLOCK_TTL(self) -> timedelta:
        """How long the unlock link mailed at a lockout works (default 1 hour)."""
        return timedelta(seconds=self._get("UNLOCK_TTL_SECONDS", 3600))

    @property
    def KNOWN_DEVICE_MAX_AGE(self) -> timedelta:
        """How long the signed ``deviceToken`` returned at login exempts that device from lockouts
        of its account (default 180 days)."""
        return timedelta(seconds=self._get("KNOWN_DEVICE_MAX_AGE_SECONDS", 180 * 24 * 3600))

    @property
    def NEW_DEVICE_ALERT(self) -> bool:
        """Mail a "new sign-in" notice for a login from a device and network never seen (default on)."""
        return self._get("NEW_DEVICE_ALERT", True)

    @property
    def NOT_ME_TTL(self) -> timedelta:
        """How long the "this wasn't me" link in a new sign-in mail works (default 7 days)."""
        return timedelta(seconds=self._get("NOT_ME_TTL_SECONDS", 7 * 24 * 3600))

    @property
    def ANOMALY_ACTION(self) -> str:
        """What a suspicious refresh (user-agent family or network changed) does: ``record`` (an
        audit event, the default) or ``revoke`` (also signs the session out)."""
        value = self._get("ANOMALY_ACTION", "record")
        if value not in ANOMALY_ACTIONS:
            raise ValueError(f"SECURITY['ANOMALY_ACTION'] must be one of {ANOMALY_ACTIONS}")
        return value

    @property
    def SECURITY_EVENTS_PAGE_SIZE(self) -> int:
        return self._get("SECURITY_EVENTS_PAGE_SIZE", 20)


app_settings = AppSettings()

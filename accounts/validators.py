from django.core.exceptions import ValidationError
from django.utils.translation import ngettext

from accounts import breach
from accounts.app_settings import app_settings


class MaximumLengthValidator:
    """Upper bound of the password policy (12 to 128 characters)."""

    def __init__(self, max_length: int = 128):
        self.max_length = max_length

    def validate(self, password, user=None):
        if len(password) > self.max_length:
            raise ValidationError(
                ngettext(
                    "This password is too long. It must contain at most %(max_length)d character.",
                    "This password is too long. It must contain at most %(max_length)d characters.",
                    self.max_length,
                ),
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self):
        return f"Your password must contain at most {self.max_length} characters."


class BreachedPasswordValidator:
    """Refuses a password known from a data breach (accounts/breach.py). Runs with the rest of the
    policy at every entry point that sets a password, never at login; does nothing while no source
    is configured. When a source cannot answer, ``AUTH_BREACH_ON_ERROR`` decides: ``allow`` (default)
    accepts the password, ``deny`` refuses it with ``password_breach_check_failed``."""

    def validate(self, password, user=None):
        verdict = breach.password_breach_check(password=password)
        if verdict is None:
            return
        if verdict.breached:
            raise ValidationError(
                "This password has appeared in a data breach, so attackers try it first. Choose a different one.",
                code="password_breached",
            )
        if verdict.failed and app_settings.BREACH_ON_ERROR == "deny":
            raise ValidationError(
                "We could not check this password against known data breaches just now. Try again in a moment.",
                code="password_breach_check_failed",
            )

    def get_help_text(self):
        if not breach.breach_check_enabled():
            return ""
        return "Your password can't be one that has appeared in a known data breach."

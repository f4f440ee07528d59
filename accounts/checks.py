"""System checks for the accounts app's options: the argon2id cost (accounts/hashers.py) and the
breached-password sources (accounts/breach.py)."""

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from accounts import breach
from accounts.app_settings import app_settings

VALIDATOR = "accounts.validators.BreachedPasswordValidator"

# OWASP Password Storage Cheat Sheet, argon2id: the smallest memory (KiB) for each number of passes; five
# passes or more need 7 MiB. Any parallelism of 1 or more (OWASP lists p=1).
OWASP_ARGON2_MEMORY_KIB = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}


def owasp_argon2_minimum_memory_kib(time_cost: int) -> int:
    return OWASP_ARGON2_MEMORY_KIB[min(time_cost, 5)]


@register(Tags.security)
def password_hashing_check(app_configs, **kwargs):
    """A too-weak argon2id cost fails ``manage.py check`` at start (and the app's start), not the first login."""
    memory, time_cost, parallelism = (app_settings.PASSWORD_ARGON2_MEMORY_KIB, app_settings.PASSWORD_ARGON2_TIME_COST,
                                      app_settings.PASSWORD_ARGON2_PARALLELISM)
    table = ", ".join(f"t={t}{'+' if t == 5 else ''}: {m} KiB" for t, m in OWASP_ARGON2_MEMORY_KIB.items())
    if time_cost < 1 or parallelism < 1:
        return [Error(f"AUTH_PASSWORD_ARGON2_TIME_COST ({time_cost}) and AUTH_PASSWORD_ARGON2_PARALLELISM "
                      f"({parallelism}) must be 1 or more.", id="accounts.E007")]
    if memory < owasp_argon2_minimum_memory_kib(time_cost):
        return [Error(f"AUTH_PASSWORD_ARGON2_MEMORY_KIB={memory} with AUTH_PASSWORD_ARGON2_TIME_COST={time_cost} "
                      "is below OWASP's argon2id minimum.",
                      hint=f"At least, by time cost: {table} (default 65536 KiB, t=2).", id="accounts.E007")]
    if memory < 8 * parallelism:
        return [Error(f"AUTH_PASSWORD_ARGON2_MEMORY_KIB={memory} is below argon2's 8 KiB per lane "
                      f"(AUTH_PASSWORD_ARGON2_PARALLELISM={parallelism}).", id="accounts.E007")]
    return []


@register(Tags.security)
def breach_sources_check(app_configs, **kwargs):
    sources = app_settings.BREACH_SOURCES
    errors = []
    for name in sources:
        if name not in breach.SOURCES:
            errors.append(Error(f"AUTH_BREACH_SOURCES names an unknown source {name!r}.",
                                hint=f"Use a comma list of {', '.join(breach.SOURCES)}.", id="accounts.E001"))
    if "file" in sources:
        path = app_settings.BREACH_FILE
        if not path:
            errors.append(Error("AUTH_BREACH_SOURCES names 'file' but AUTH_BREACH_FILE is not set.",
                                id="accounts.E002"))
        elif not os.path.isfile(path) or not os.access(path, os.R_OK):
            errors.append(Error(f"AUTH_BREACH_FILE {path!r} is not a readable file.",
                                hint="A text file of SHA1[:COUNT] lines sorted by hash.", id="accounts.E002"))
    if "range" in sources:
        url = app_settings.BREACH_RANGE_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(Error(f"AUTH_BREACH_RANGE_URL {url!r} is not an http(s) URL.",
                                hint="e.g. https://api.pwnedpasswords.com/range", id="accounts.E003"))
        elif parts.scheme != "https" and not settings.DEBUG:
            errors.append(Warning(
                "AUTH_BREACH_RANGE_URL is not https: anyone on the path can see hash prefixes and answer "
                "'not breached' for every password.",
                hint="Use an https URL (plain http is accepted without warning only with DEBUG on).",
                id="accounts.W001"))
    if app_settings.BREACH_ON_ERROR not in breach.ON_ERROR_CHOICES:
        errors.append(Error(f"AUTH_BREACH_ON_ERROR is {app_settings.BREACH_ON_ERROR!r}.",
                            hint="Use allow or deny.", id="accounts.E004"))
    if app_settings.BREACH_MAX_COUNT < 0:
        errors.append(Error("AUTH_BREACH_MAX_COUNT must be 0 or more.", id="accounts.E005"))
    if app_settings.BREACH_TIMEOUT <= 0:
        errors.append(Error("AUTH_BREACH_TIMEOUT_SECONDS must be more than 0.", id="accounts.E006"))
    if sources and not any(v.get("NAME") == VALIDATOR for v in settings.AUTH_PASSWORD_VALIDATORS):
        errors.append(Warning(f"Breached-password sources are configured but {VALIDATOR} is not in "
                              "AUTH_PASSWORD_VALIDATORS, so no password is checked against them.",
                              id="accounts.W002"))
    return errors

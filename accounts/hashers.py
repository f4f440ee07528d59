from django.contrib.auth.hashers import Argon2PasswordHasher

from accounts.app_settings import app_settings


class ManaArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with the configured cost: ``AUTH_PASSWORD_ARGON2_MEMORY_KIB`` / ``_TIME_COST`` /
    ``_PARALLELISM`` (``settings.ACCOUNTS``; default 64 MiB, 2 passes, 2 lanes: about 80-100 ms per
    hash on this 2-core machine, see README "Passwords"), never below OWASP's minimum (accounts/checks.py).

    Read on every use, not at init: Django caches its hasher instances (get_hashers()), and a settings
    override in tests must reach them. Django rehashes a stored password at the next login when these
    numbers change (``must_update``), so raising them later is safe. A subclass may pin them with plain
    class attributes (tests.hashers.FastArgon2PasswordHasher).
    """

    algorithm = "argon2"

    @property
    def memory_cost(self) -> int:
        return app_settings.PASSWORD_ARGON2_MEMORY_KIB

    @property
    def time_cost(self) -> int:
        return app_settings.PASSWORD_ARGON2_TIME_COST

    @property
    def parallelism(self) -> int:
        return app_settings.PASSWORD_ARGON2_PARALLELISM

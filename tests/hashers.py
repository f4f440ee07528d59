from accounts.hashers import ManaArgon2PasswordHasher


class FastArgon2PasswordHasher(ManaArgon2PasswordHasher):
    """Still argon2id, with tiny parameters so the suite runs in seconds (production numbers are
    asserted separately in tests/accounts/test_passwords.py)."""

    time_cost = 1
    memory_cost = 1024
    parallelism = 1

from django.contrib.auth.hashers import Argon2PasswordHasher


class ManaArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id, 64 MiB, 2 passes, 2 lanes: about 100 ms per hash on this 2-core machine
    (measured, see README "Password hashing"), three times OWASP's minimum memory (19 MiB, t=2).

    Django rehashes on login when these numbers change, so raising them later is safe.
    """

    algorithm = "argon2"
    time_cost = 2
    memory_cost = 65536
    parallelism = 2

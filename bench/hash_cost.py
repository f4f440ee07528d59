"""Cost of one argon2id hash on this machine: median of 10, in ms.

    .venv/bin/python bench/hash_cost.py

Compares the configured parameters (accounts.hashers.ManaArgon2PasswordHasher, from
AUTH_PASSWORD_ARGON2_MEMORY_KIB / _TIME_COST / _PARALLELISM) with the defaults (t=2, m=64 MiB, p=2;
shown only when the configuration differs) and OWASP's minimum (t=2, m=19 MiB, p=1). Verifying a
password costs the same as hashing it. For another cost, set the variables:

    AUTH_PASSWORD_ARGON2_MEMORY_KIB=131072 .venv/bin/python bench/hash_cost.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from accounts.hashers import ManaArgon2PasswordHasher  # noqa: E402

RUNS = 10


class DefaultHasher(ManaArgon2PasswordHasher):
    time_cost = 2  # the defaults of accounts/app_settings.py
    memory_cost = 65536
    parallelism = 2


class OwaspMinimumHasher(ManaArgon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024
    parallelism = 1


def median_ms(hasher) -> float:
    """Through Django's own encode(), exactly what set_password and login run."""
    hasher.encode("warm-up-password", hasher.salt())
    samples = []
    for i in range(RUNS):
        salt = hasher.salt()
        start = time.perf_counter()
        encoded = hasher.encode(f"correct-horse-battery-{i}", salt)
        samples.append((time.perf_counter() - start) * 1000)
    assert encoded.startswith("argon2$argon2id$")
    return statistics.median(samples)


def main() -> None:
    print(f"argon2id, median of {RUNS} hashes, {os.cpu_count()} CPUs")
    configured, default = ManaArgon2PasswordHasher(), DefaultHasher()
    rows = [("configured (AUTH_PASSWORD_ARGON2_*)", configured)]
    if (configured.time_cost, configured.memory_cost, configured.parallelism) != (2, 65536, 2):
        rows.append(("default", default))
    rows.append(("OWASP minimum", OwaspMinimumHasher()))
    for label, hasher in rows:
        params = f"t={hasher.time_cost} m={hasher.memory_cost} KiB p={hasher.parallelism}"
        print(f"{label:38s} {params:22s} {median_ms(hasher):7.1f} ms/hash")


if __name__ == "__main__":
    main()

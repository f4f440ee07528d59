"""CPU of one password login besides the password hash, in this process, against PostgreSQL.

    DJANGO_SETTINGS_MODULE=config.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_auth \
        REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/login_cpu.py [-n 200]

Runs ``POST /api/v1/auth/login`` through the real middleware and view (Django's WSGI handler as gunicorn calls
it, bench/wsgi_client.py; DEBUG off, rate limits off and plain HTTP as in bench/run_api.sh) N times for one
verified user without a second factor, twice: with the production hasher
(accounts.hashers.ManaArgon2PasswordHasher) and with a trivially cheap one (salted MD5: microseconds).
``time.process_time`` counts this process only (user + system), so the database server's own work is not in
it; the time waiting for it is not either. The cheap run's CPU per login is the CPU the login spends besides
the hash (the budget of issue 15: at most 5 ms); the production run minus the cheap run is the hash. Each
login is from the same device (seen before), with no deviceId, so no session is replaced. The sessions, audit
rows and known devices it creates stay (use a bench database).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.wsgi_client import CHEAP_HASHERS, Wsgi, bench_user, django_setup  # noqa: E402

django_setup()

from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

EMAIL = "bench-login-cpu@example.com"
PASSWORD = "bench-login-cpu-password-7q2w"


def _run(wsgi: Wsgi, n: int) -> list[float]:
    """CPU ms of each of ``n`` logins (after 5 warm-up logins)."""
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    took = []
    for i in range(n + 5):
        started = time.process_time()
        status, content = wsgi("POST", "/api/v1/auth/login", body)
        spent = (time.process_time() - started) * 1000
        assert status == 200, content
        if i >= 5:
            took.append(spent)
    return took


def _line(name: str, took: list[float]) -> str:
    return (f"{name:<34} n={len(took):<4} mean {statistics.fmean(took):7.2f} ms  median "
            f"{statistics.median(took):7.2f} ms  p90 {sorted(took)[int(len(took) * 0.9)]:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="logins per hasher (default 200; 20 with argon2)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("bench/login_cpu.py needs PostgreSQL (set DATABASE_URL)", file=sys.stderr)
        return 2
    with override_settings(PASSWORD_HASHERS=CHEAP_HASHERS, ALLOWED_HOSTS=["127.0.0.1"], SECURE_SSL_REDIRECT=False):
        wsgi = Wsgi()  # in the override: the middleware reads SECURE_SSL_REDIRECT when it is built
        bench_user(EMAIL, PASSWORD)
        cheap = _run(wsgi, args.n)
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"], SECURE_SSL_REDIRECT=False):
        bench_user(EMAIL, PASSWORD)
        production = _run(wsgi, max(10, args.n // 10))
    print(_line("login, cheap hasher (besides hash)", cheap))
    print(_line("login, production argon2id", production))
    print(f"the hash alone (production - cheap, medians): "
          f"{statistics.median(production) - statistics.median(cheap):.2f} ms of CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

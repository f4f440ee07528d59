"""CPU and wall time of one refresh (and, for comparison, bearer GET me and GET sessions/active), in this process.

    DJANGO_SETTINGS_MODULE=config.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_auth \
        REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/refresh_cpu.py [-n 500] [--profile 25]

Signs one user in (a cheap hasher: the login is not measured), then runs ``POST /api/v1/auth/refresh``
N times as a chain (each request spends the token the previous one returned) and ``GET /api/v1/auth/me``
N times with the last access token, through Django's WSGI handler as gunicorn calls it (the real
middleware and views; DEBUG off, rate limits off and plain HTTP as in bench/run_api.sh).
``time.process_time`` counts this process only: the database server's own work is not in it, the time
waiting for it is (in the wall time). ``--profile K`` prints the K functions with the most CPU time
(``--sort``) of one more run of ``--path`` (cProfile, timed by process time).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.wsgi_client import CHEAP_HASHERS, Wsgi, bench_user, django_setup  # noqa: E402

django_setup()

from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

EMAIL = "bench-refresh-cpu@example.com"
PASSWORD = "bench-refresh-cpu-password-3k9d"


def _pair(wsgi: Wsgi) -> dict:
    bench_user(EMAIL, PASSWORD)
    status, content = wsgi("POST", "/api/v1/auth/login", json.dumps({"email": EMAIL, "password": PASSWORD}).encode())
    assert status == 200, content
    return json.loads(content)


def _refreshes(wsgi: Wsgi, token: str, n: int) -> tuple[list[float], list[float], str, str]:
    cpu, wall, access = [], [], ""
    for _ in range(n):
        started, started_wall = time.process_time(), time.perf_counter()
        status, content = wsgi("POST", "/api/v1/auth/refresh", json.dumps({"refreshToken": token}).encode())
        cpu.append((time.process_time() - started) * 1000)
        wall.append((time.perf_counter() - started_wall) * 1000)
        assert status == 200, content
        body = json.loads(content)
        token, access = body["refreshToken"], body["accessToken"]
    return cpu, wall, token, access


READS = {"me": "/api/v1/auth/me", "sessions": "/api/v1/auth/sessions/active"}


def _reads(wsgi: Wsgi, access: str, n: int, path: str = READS["me"]) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for _ in range(n):
        started, started_wall = time.process_time(), time.perf_counter()
        status, content = wsgi("GET", path, authorization=f"Bearer {access}")
        cpu.append((time.process_time() - started) * 1000)
        wall.append((time.perf_counter() - started_wall) * 1000)
        assert status == 200, content
    return cpu, wall


def _line(name: str, cpu: list[float], wall: list[float]) -> str:
    return (f"{name:<14} n={len(cpu):<5} CPU mean {statistics.fmean(cpu):6.2f} ms median {statistics.median(cpu):6.2f}"
            f" ms | wall mean {statistics.fmean(wall):6.2f} ms median {statistics.median(wall):6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="requests per path (default 500)")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="print the top K of a cProfile run")
    parser.add_argument("--path", choices=["refresh", *READS], default="refresh", help="the path to profile")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (cumulative, tottime)")
    parser.add_argument("--callees", default="", help="also print what the functions matching this called")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("bench/refresh_cpu.py needs PostgreSQL (set DATABASE_URL)", file=sys.stderr)
        return 2
    with override_settings(PASSWORD_HASHERS=CHEAP_HASHERS, ALLOWED_HOSTS=["127.0.0.1"], SECURE_SSL_REDIRECT=False):
        wsgi = Wsgi()  # in the override: the middleware reads SECURE_SSL_REDIRECT when it is built
        pair = _pair(wsgi)
        _, _, token, access = _refreshes(wsgi, pair["refreshToken"], 20)  # warm-up
        cpu, wall, token, access = _refreshes(wsgi, token, args.n)
        print(_line("refresh", cpu, wall))
        for name, path in READS.items():
            _reads(wsgi, access, 20, path)
            print(_line(f"GET {name}", *_reads(wsgi, access, args.n, path)))
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU of this process, not waits
            profile.enable()
            if args.path == "refresh":
                _refreshes(wsgi, token, args.n)
            else:
                _reads(wsgi, access, args.n, READS[args.path])
            profile.disable()
            stats = pstats.Stats(profile).sort_stats(args.sort)
            stats.print_stats(args.profile)
            if args.callees:
                stats.print_callees(args.callees)
    return 0


if __name__ == "__main__":
    sys.exit(main())

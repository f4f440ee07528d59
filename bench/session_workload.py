"""The seed's session workload, simulated: N users polling GET /api/v1/auth/session (default 1,000
users, 10 requests a minute each, one hour of simulated time), once with the cookie cache off and
once on. Prints every SQL statement the requests caused, by kind, and the reduction.

Real requests through Django's full middleware stack (the test client), a real database (SQLite in
a temporary folder by default, or DATABASE_URL), a simulated clock (time.time and timezone.now are
advanced per request, so an hour takes minutes, not an hour).

    .venv/bin/python bench/session_workload.py [--users 1000] [--per-minute 10] [--minutes 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-minute", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="mca-workload-")
    os.environ.setdefault("MANA_DATA_DIR", data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.pop("REDIS_URL", None)  # the embedded default: no revocation lookups in either run

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    # After django.setup() above (this script configures Django itself), hence inside the function.
    from accounts.models import User
    from sessions_app.app_settings import app_settings
    from sessions_app.services import session_browser_key_issue, session_create

    call_command("migrate", verbosity=0)
    clock = [time.time()]
    real_time = time.time
    time.time = lambda: clock[0]
    timezone.now = lambda: dt.datetime.fromtimestamp(clock[0], tz=dt.UTC)

    def run(cache_seconds: int) -> tuple[Counter, int, float]:
        settings.SESSIONS = {**settings.SESSIONS, "COOKIE_CACHE_SECONDS": cache_seconds}
        users = [User(email=f"wl{cache_seconds}-{i}@example.com", name=f"User {i}",
                      email_verified_at=timezone.now(), password="!") for i in range(args.users)]
        User.objects.bulk_create(users)
        clients = []
        for user in users:
            row = session_create(user=user, remember_me=False, device_name="bench").session
            client = Client()
            client.cookies[app_settings.SESSION_COOKIE] = session_browser_key_issue(row)
            clients.append(client)
        statements: Counter = Counter()

        def count(execute, sql, params, many, context):
            statements[sql.lstrip().split(None, 1)[0].upper()] += 1
            return execute(sql, params, many, context)

        gap = 60.0 / args.per_minute
        start, requests, failures = clock[0], 0, 0
        wall = real_time()
        with connection.execute_wrapper(count):
            for k in range(args.per_minute * args.minutes):
                for i, client in enumerate(clients):
                    clock[0] = start + k * gap + i * gap / len(clients)
                    response = client.get("/api/v1/auth/session")
                    requests += 1
                    failures += response.status_code != 200
        if failures:
            raise SystemExit(f"{failures} of {requests} requests failed")
        clock[0] += 3600  # the next run starts after every session of this one went quiet
        return statements, requests, real_time() - wall

    print(f"workload: {args.users} users x {args.per_minute} GET /api/v1/auth/session a minute x "
          f"{args.minutes} simulated minutes; database: {connection.vendor}; "
          f"cookie cache TTL when on: {int(app_settings.COOKIE_CACHE_TTL.total_seconds())} s; "
          f"lastActivityAt resolution: {int(app_settings.ACTIVITY_RESOLUTION.total_seconds())} s")
    off, n_off, t_off = run(0)
    on, n_on, t_on = run(300)
    kinds = sorted(set(off) | set(on))
    print("\n| SQL statements | cache off | cache on |\n|---|---:|---:|")
    for kind in kinds:
        print(f"| {kind} | {off[kind]:,} | {on[kind]:,} |")
    total_off, total_on = sum(off.values()), sum(on.values())
    reads_off, reads_on = off["SELECT"], on["SELECT"]
    print(f"| all | {total_off:,} | {total_on:,} |")
    print(f"\nrequests: {n_off:,} (off, {t_off:.0f} s wall), {n_on:,} (on, {t_on:.0f} s wall)")
    print(f"session lookups (SELECT): {reads_off:,} -> {reads_on:,}: {100 * (1 - reads_on / reads_off):.2f} % fewer")
    print(f"all SQL statements:       {total_off:,} -> {total_on:,}: {100 * (1 - total_on / total_off):.2f} % fewer")


if __name__ == "__main__":
    main()

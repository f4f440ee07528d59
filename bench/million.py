"""Flat at one million device sessions (issue 15): refresh, GET me and the sessions list run the same
statements, with index plans and about the same latency, at 100 and at 1,000,000 live device sessions.

    bash bench/million.sh          # or, with the database already migrated:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_million .venv/bin/python bench/million.py

Runs the real middleware and views in-process (django.test.Client, rate limits off) against its own
PostgreSQL database, whose device sessions it empties first: it refuses a database whose name does not
contain "bench" (``--force`` overrides). For each size it fills the table with live rows of filler users
through COPY (``--users`` users sharing the rows), ANALYZEs, then for the bench user:

* captures the SQL of one refresh, one GET me and one GET sessions/active (parameters filled in),
  and prints each data statement with the indexes its EXPLAIN plan uses (a sequential scan of the
  device-session table is flagged);
* times ``--requests`` of each (median and 95th percentile in ms, one client, no think time).

The output is the Markdown recorded in docs/benchmarks.md ("One million device sessions").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("AUTH_RATE_LIMIT_ENABLED", "false")  # measure the work, not the limiter
os.environ.setdefault("MANA_PROCESS_KIND", "job")  # the job timeouts: filling a million rows takes a while

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from sessions_app.models import DeviceSession  # noqa: E402

EMAIL = "bench-million@example.com"
PASSWORD = "bench-million-password-7h2q"
API = "/api/v1/auth"
TABLE = DeviceSession._meta.db_table
COPY_CHUNK = 100_000
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def bench_user() -> User:
    user = User.objects.filter(email=EMAIL).first()
    if user is None:
        user = User.objects.create_user(EMAIL, PASSWORD, name="Bench", email_verified_at=timezone.now())
    return user


def filler_users(count: int) -> list:
    """``count`` filler users (one unusable password hash shared, no hashing per user)."""
    have = list(User.objects.filter(email__startswith="filler-").values_list("pk", flat=True)[:count])
    if len(have) < count:
        now, unusable = timezone.now(), make_password(None)
        User.objects.bulk_create([User(email=f"filler-{uuid.uuid4().hex}@example.com", password=unusable,
                                       name="Filler", email_verified_at=now) for _ in range(count - len(have))],
                                 batch_size=5000)
        have = list(User.objects.filter(email__startswith="filler-").values_list("pk", flat=True)[:count])
    return have


def sessions_reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE sessions_app_spentrefreshtoken, {TABLE} CASCADE")


def sessions_fill(total: int, users: list) -> float:
    """COPY live filler sessions into the table until it holds ``total`` rows; ANALYZE."""
    started = time.perf_counter()
    if DeviceSession.objects.count() > total:
        sessions_reset()
    missing = total - DeviceSession.objects.count()
    now = timezone.now()
    template = DeviceSession(user_id=users[0], device_id="filler", device_name="filler", ip_address="10.0.0.1",
                             user_agent="bench/million.py", created_at=now, last_activity_at=now,
                             expires_at=now + timedelta(days=7), absolute_expires_at=now + timedelta(days=90))
    fields = list(DeviceSession._meta.concrete_fields)
    columns = [f.column for f in fields]
    base = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    i_id, i_user, i_hash = columns.index("id"), columns.index("user_id"), columns.index("refresh_secret_hash")
    salt = uuid.uuid4().bytes
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        for start in range(0, max(0, missing), COPY_CHUNK):  # one COPY per chunk: within the statement timeout
            with cursor.copy(f"COPY {TABLE} ({', '.join(columns)}) FROM STDIN") as copy:
                for n in range(start, min(missing, start + COPY_CHUNK)):
                    row = list(base)
                    row[i_id] = uuid.uuid4()
                    row[i_user] = users[n % len(users)]
                    row[i_hash] = hashlib.sha256(salt + n.to_bytes(8, "big")).hexdigest()
                    copy.write_row(row)
    with connection.cursor() as cursor:  # as autovacuum would soon: statistics and the visibility map
        cursor.execute(f"VACUUM (ANALYZE) {TABLE}")
    return time.perf_counter() - started


def _post(client: Client, path: str, body: dict):
    return client.post(f"{API}/{path}", body, content_type="application/json", secure=True)


class Session:
    """The bench user's own session, refreshed in a chain."""

    def __init__(self, client: Client):
        self.client = client
        pair = _post(client, "login", {"email": EMAIL, "password": PASSWORD})
        assert pair.status_code == 200, pair.content
        self.pair = pair.json()

    def refresh(self):
        response = _post(self.client, "refresh", {"refreshToken": self.pair["refreshToken"]})
        assert response.status_code == 200, response.content
        self.pair = response.json()
        return response

    def get(self, path: str):
        response = self.client.get(f"{API}/{path}", secure=True,
                                   headers={"authorization": f"Bearer {self.pair['accessToken']}"})
        assert response.status_code == 200, response.content
        return response


def captured(call) -> list[str]:
    with CaptureQueriesContext(connection) as capture:
        call()
    return [q["sql"] for q in capture.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]


def shape(sql: str) -> str:
    """The statement without its literals: equal shapes are the same statement."""
    sql = re.sub(r"'(?:[^']|'')*'(::\w+)?", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    return re.sub(r"^SELECT (.*?) FROM ", lambda m: f"SELECT <{m.group(1).count(',') + 1} columns> FROM ", sql)


def plan(sql: str) -> str:
    """The scans of the statement's EXPLAIN plan (not executed), one line."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        lines = [row[0] for row in cursor.fetchall()]
    scans = []
    for line in lines:
        found = re.search(r"(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: using (\S+))?(?: on (\S+))?",
                          line)
        if found:
            kind, index, table = found.groups()
            scans.append(f"{kind} {index or table}" + (" **(sequential scan of the session table)**"
                                                       if kind == "Seq Scan" and table == TABLE else ""))
        elif re.match(r"\s*(Insert|Update|Delete) on", line):
            scans.append(line.strip().split("  ")[0])
    return "; ".join(scans) or lines[0].strip()


def timed(call, n: int) -> tuple[float, float]:
    took = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


PATHS = {"refresh": lambda s: s.refresh(), "GET me": lambda s: s.get("me"),
         "GET sessions/active": lambda s: s.get("sessions/active")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000000,100",
                        help="comma list of device-session table sizes (100 again at the end: the noise)")
    parser.add_argument("--users", type=int, default=20_000, help="filler users sharing the rows")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per path and size")
    parser.add_argument("--force", action="store_true", help="allow a database whose name lacks 'bench'")
    args = parser.parse_args()

    if connection.vendor != "postgresql":
        print("bench/million.py needs PostgreSQL (set DATABASE_URL)", file=sys.stderr)
        return 2
    if "bench" not in connection.settings_dict["NAME"] and not args.force:
        print(f"refusing to empty the sessions of database {connection.settings_dict['NAME']!r}: use a bench "
              "database or --force", file=sys.stderr)
        return 2

    bench_user()
    users = filler_users(args.users)
    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT="bench/million.py")
    sessions_reset()
    results = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        took = sessions_fill(size, users)
        present = DeviceSession.objects.count()
        print(f"# {present:,} device sessions ({took:.1f} s to fill)", file=sys.stderr, flush=True)
        session = Session(client)
        for call in PATHS.values():  # warm: keys cached, connections open
            for _ in range(20):
                call(session)
        statements = {name: captured(lambda c=call: c(session)) for name, call in PATHS.items()}
        latency = {name: timed(lambda c=call: c(session), args.requests) for name, call in PATHS.items()}
        plans = {name: [(shape(sql), plan(sql)) for sql in sqls] for name, sqls in statements.items()}  # at this size
        results[f"{present:,} rows" + (" (again)" if f"{present:,} rows" in results else "")] = (statements, latency,
                                                                                                plans)

    sizes = list(results)
    print("| path | " + " | ".join(f"{n}: median / p95 ms" for n in sizes) + " | same statements |")
    print("|---|" + "---:|" * len(sizes) + "---|")
    for name in PATHS:
        shapes = {tuple(shape(s) for s in results[n][0][name]) for n in sizes}
        cells = " | ".join(f"{results[n][1][name][0]:.2f} / {results[n][1][name][1]:.2f}" for n in sizes)
        print(f"| {name} | {cells} | {'yes' if len(shapes) == 1 else 'NO'} "
              f"({len(results[sizes[0]][0][name])} data statements) |")
    for n in sizes:
        if n.endswith("(again)"):
            continue
        print(f"\nPlans with {n} (EXPLAIN of each data statement):\n")
        for name in PATHS:
            print(f"* {name}:")
            for i, (text, scans) in enumerate(results[n][2][name], 1):
                print(f"  {i}. `{text[:110]}`: {scans}")
    sessions_reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SQL queries per request for login, refresh and `me`, with 100 and with 100,000 device sessions.

    DJANGO_SETTINGS_MODULE=config.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_auth \
        .venv/bin/python bench/queries.py

Runs the real middleware and views in-process (django.test.Client) against the configured
PostgreSQL database and counts statements with CaptureQueriesContext, in the steady state: the
signing key is created and cached by a warm-up request first. It empties the device-session tables
of that database first, so it refuses any database whose name does not contain "bench"
(``--force`` overrides). Run `bash bench/run_api.sh` for everything at once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from sessions_app.models import DeviceSession, SpentRefreshToken  # noqa: E402

EMAIL = "bench-queries@example.com"
FILLER_EMAIL = "bench-filler@example.com"
PASSWORD = "bench-queries-password-9f3k"
HOST = "127.0.0.1"
API = "/api/v1/auth"
# Django's debug cursor also records transaction control; it is counted apart from the data statements.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def bench_user(email: str) -> User:
    """A verified user with the production hasher (PASSWORD_HASHERS[0])."""
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, PASSWORD, name="Bench", email_verified_at=timezone.now())
    elif not user.check_password(PASSWORD):
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
    return user


def sessions_reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sessions_app_spentrefreshtoken, sessions_app_devicesession CASCADE")


def sessions_fill(user: User, total: int) -> float:
    """Add live filler sessions (distinct refresh-token hashes) until the table holds ``total`` rows."""
    started = time.perf_counter()
    missing = total - DeviceSession.objects.count()
    now = timezone.now()
    batch = []
    for _ in range(max(0, missing)):
        batch.append(DeviceSession(
            user=user, device_id="filler", device_name="filler", ip_address="127.0.0.1", user_agent="bench",
            created_at=now, last_activity_at=now, expires_at=now + timedelta(days=7),
            absolute_expires_at=now + timedelta(days=90),
            refresh_secret_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        ))
        if len(batch) == 10_000:
            DeviceSession.objects.bulk_create(batch)
            batch = []
    if batch:
        DeviceSession.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_devicesession")
    return time.perf_counter() - started


def _top_level_from(sql: str) -> int:
    """Where the outer SELECT's FROM starts (not a FROM of a subquery among its columns), or -1."""
    depth = 0
    for i, char in enumerate(sql):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and sql.startswith(" FROM ", i):
            return i
    return -1


def _select_compact(sql: str) -> str:
    """SELECT <n columns, k subqueries> FROM ...: the column list counted at the top level."""
    end = _top_level_from(sql)
    if not sql.startswith("SELECT ") or end < 0:
        return sql
    columns, depth, subqueries = 1, 0, 0
    for i, char in enumerate(sql[7:end]):
        depth += char == "("
        depth -= char == ")"
        columns += char == "," and depth == 0
        subqueries += depth >= 1 and sql.startswith("SELECT ", 7 + i)
    also = f", {subqueries} of them subqueries" if subqueries else ""
    return f"SELECT <{columns} columns{also}>{sql[end:]}"


def compact(sql: str) -> str:
    """The statement with its column lists counted instead of spelled out, long literals cut, on one line."""
    sql = " ".join(sql.split())
    sql = _select_compact(sql)
    sql = re.sub(r"^INSERT INTO (\S+) \((.*?)\) VALUES \((.*?)\)( RETURNING|$)",
                 lambda m: f"INSERT INTO {m.group(1)} <{m.group(2).count(',') + 1} columns> VALUES (...){m.group(4)}",
                 sql)
    return re.sub(r"'(?:[^']|'')*'", lambda m: m.group(0) if len(m.group(0)) < 42 else m.group(0)[:25] + "...'", sql)


def _post(client: Client, path: str, body: dict, **headers):
    return client.post(f"{API}/{path}", body, content_type="application/json", secure=True, headers=headers)


def _counted(call):
    with CaptureQueriesContext(connection) as captured:
        response = call()
    sql = [q["sql"] for q in captured.captured_queries]
    control = sum(1 for s in sql if s.startswith(TRANSACTION_CONTROL))
    return response, sql, control


def measure(client: Client) -> dict:
    """One steady-state login (a device seen before), a login from a new deviceId, refresh and me, plus a
    login that replaces the live session of the same deviceId; returns {endpoint: (status, statements,
    transaction-control statements, sql)}."""
    # Warm-up: loads (or creates) the signing key and the public keys into the process cache, as in
    # a worker that has been serving for a while.
    warm = _post(client, "login", {"email": EMAIL, "password": PASSWORD})
    assert warm.status_code == 200, warm.content
    warm = _post(client, "refresh", {"refreshToken": warm.json()["refreshToken"]})
    assert warm.status_code == 200, warm.content
    client.get(f"{API}/me", secure=True, headers={"authorization": f"Bearer {warm.json()['accessToken']}"})

    results = {}
    response, sql, control = _counted(lambda: _post(client, "login", {"email": EMAIL, "password": PASSWORD}))
    results["login"] = (response.status_code, len(sql), control, sql)
    pair = response.json()
    fresh = {"email": EMAIL, "password": PASSWORD, "deviceId": f"bench-new-{secrets.token_hex(4)}"}
    response, sql, control = _counted(lambda: _post(client, "login", fresh))
    results["login, new deviceId"] = (response.status_code, len(sql), control, sql)
    device = {"email": EMAIL, "password": PASSWORD, "deviceId": "bench-device"}
    assert _post(client, "login", device).status_code == 200
    response, sql, control = _counted(lambda: _post(client, "login", device))
    results["login, same deviceId again"] = (response.status_code, len(sql), control, sql)
    response, sql, control = _counted(lambda: _post(client, "refresh", {"refreshToken": pair["refreshToken"]}))
    results["refresh"] = (response.status_code, len(sql), control, sql)
    access = response.json()["accessToken"]
    response, sql, control = _counted(
        lambda: client.get(f"{API}/me", secure=True, headers={"authorization": f"Bearer {access}"}))
    results["me"] = (response.status_code, len(sql), control, sql)
    return results


def refresh_lookup_explain(user: User) -> str:
    """EXPLAIN ANALYZE of the statement session_refresh uses to find the session a token names (its id and
    the token's hash), for a filler row, with the ordering and LIMIT that .first() adds."""
    session_id, token_hash = DeviceSession.objects.filter(user=user).values_list("pk", "refresh_secret_hash")[:1][0]
    qs = DeviceSession.objects.select_related("user").filter(pk=session_id, refresh_secret_hash=token_hash).order_by(
        "-last_activity_at")[:1]
    return qs.explain(analyze=True, buffers=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,100000", help="comma list of device-session table sizes")
    parser.add_argument("--force", action="store_true", help="allow a database whose name lacks 'bench'")
    args = parser.parse_args()

    db = connection.settings_dict
    if connection.vendor != "postgresql":
        print("bench/queries.py needs PostgreSQL (set DATABASE_URL)", file=sys.stderr)
        return 2
    if "bench" not in db["NAME"] and not args.force:
        print(f"refusing to empty the sessions of database {db['NAME']!r}: use a bench database or --force",
              file=sys.stderr)
        return 2

    bench_user(EMAIL)
    filler = bench_user(FILLER_EMAIL)
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT="bench/queries.py")
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    last = None
    sessions_reset()
    for size in sizes:
        took = sessions_fill(filler, size)
        present = DeviceSession.objects.count()
        results = measure(client)
        for endpoint, (status, count, control, _sql) in results.items():
            rows.append((endpoint, present, count, control, status))
        print(f"# filled to {present:,} device sessions in {took:.1f} s", flush=True)
        last = (present, results)

    print()
    print("| endpoint | device sessions in table | SQL statements | data (SELECT/INSERT/UPDATE) "
          "| transaction control (BEGIN/COMMIT/SAVEPOINT) | status |")
    print("|---|---:|---:|---:|---:|---:|")
    for endpoint, present, count, control, status in rows:
        print(f"| {endpoint} | {present:,} | {count} | {count - control} | {control} | {status} |")

    present, results = last
    for endpoint in ("refresh", "me", "login", "login, new deviceId", "login, same deviceId again"):
        print(f"\nSQL of {endpoint} with {present:,} device sessions (column lists counted, long literals cut):")
        for i, sql in enumerate(results[endpoint][3], 1):
            print(f"  {i}. {compact(sql)}")

    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the refresh lookup with {present:,} device sessions:")
    for line in refresh_lookup_explain(filler).splitlines():
        print(f"  {line}")
    print(f"\nspent refresh tokens in table: {SpentRefreshToken.objects.count()}")
    sessions_reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())

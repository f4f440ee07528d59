"""Soak test: a bounded mixed workload against the production server (config.serve: granian), PostgreSQL
and Redis on loopback (issue 16).

The seed's traffic, simulated by virtual users: every user's browser polls ``GET /api/v1/auth/session``
with its session cookie (the cookie cache answers most of it), every user's app refreshes its token
pair every 15 minutes (spread over the window), and now and then someone signs in (argon2 at the
production cost) or opens a page (``/account``). Every REPORT seconds one line: throughput, p50/p99,
errors, the server's memory (RSS of the server's main process and workers, and of each worker; each process's
least of five readings 0.3 s apart, since a sign-in in progress adds argon2's 100 MiB for its duration)
and its PostgreSQL connections; both must stay flat (the summary gives the RSS change after warm-up). At
the end a summary by kind of request and the service's own counters (``GET /metrics``). It stops by
itself after ``--minutes`` (30 by default) and stops the server by its process group whatever happens.

    bash bench/soak [--minutes 30] [--users 300] [--poll-seconds 10] [--refresh-seconds 900]
                    [--logins-per-minute 20] [--pages-per-minute 60] [--threads 8] [--workers 2]

Environment: SOAK_DATABASE_URL (postgres://postgres@127.0.0.1:5432/soak_auth, created if missing; its
users and sessions are replaced), SOAK_REDIS_URL (redis://127.0.0.1:6379/5). Rate limits are off for
the run (every virtual user comes from 127.0.0.1, as in bench/run_api.sh); lockout stays on.
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PASSWORD = "soak-password-8d2f61c4"
METRICS_TOKEN = secrets.token_urlsafe(24)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, redis_url: str, multiproc: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "PYTEST"))}
    env.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false", SECURE_SSL_REDIRECT="false", ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY="soak-only-secret-key-" + "5" * 40,
        AUTH_KEY_ENCRYPTION_KEY="c29hay1vbmx5LWtleS1lbmNyeXB0aW9uLWtleS0zMmI",
        AUTH_RATE_LIMIT_ENABLED="false", AUTH_METRICS_TOKEN=METRICS_TOKEN, PROMETHEUS_MULTIPROC_DIR=multiproc,
        LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
    )
    return env


def database_create(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare(env: dict, users: int) -> list[dict]:
    """Migrate, make the users (one argon2 hash shared by all), a browser session (cookie) and an app
    session (refresh token) for each. Runs in this process, then lets go of its connection."""
    os.environ.update({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})  # this process: no files
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from sessions_app.app_settings import app_settings
    from sessions_app.browser import snapshot_for
    from sessions_app.models import DeviceSession
    from sessions_app.services import session_browser_key_issue, session_create

    call_command("migrate", verbosity=0)
    DeviceSession.objects.filter(user__email__startswith="soak-").delete()
    User.objects.filter(email__startswith="soak-").delete()
    encoded = make_password(PASSWORD)
    now = timezone.now()
    User.objects.bulk_create([User(email=f"soak-{i}@example.com", name=f"Soak {i}", password=encoded,
                                   email_verified_at=now) for i in range(users)], batch_size=500)
    people = []
    for user in User.objects.filter(email__startswith="soak-").order_by("email"):
        row = session_create(user=user, remember_me=True, device_name="soak browser", tokens=False).session
        raw = session_browser_key_issue(row)
        app = session_create(user=user, device_id=f"soak-app-{user.pk}", device_name="soak app")
        people.append({"email": user.email, "device": f"soak-app-{user.pk}", "refresh": app.refresh_token,
                       "cookies": {app_settings.SESSION_COOKIE: raw,
                                   app_settings.CACHE_COOKIE: snapshot_for(row, raw)},
                       "lock": threading.Lock()})
    connection.close()
    return people


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    samples: list = field(default_factory=list)  # (kind, seconds, ok) since the last report
    all: dict = field(default_factory=dict)  # kind -> [seconds]
    errors: dict = field(default_factory=dict)  # kind -> count
    statuses: dict = field(default_factory=dict)

    def add(self, kind: str, seconds: float, status: int) -> None:
        ok = 200 <= status < 400
        with self.lock:
            self.samples.append((kind, seconds, ok))
            self.all.setdefault(kind, []).append(seconds)
            self.statuses[(kind, status)] = self.statuses.get((kind, status), 0) + 1
            if not ok:
                self.errors[kind] = self.errors.get(kind, 0) + 1

    def take(self) -> list:
        with self.lock:
            samples, self.samples = self.samples, []
        return samples


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, response.msg.get_all("Set-Cookie") or [], data
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    return 599, [], b""
        return 599, [], b""


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def cookies_update(cookies: dict, set_cookies: list[str]) -> None:
    for header in set_cookies:
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            if morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"]):
                cookies.pop(name, None)
            else:
                cookies[name] = morsel.value


def run_workload(args, port: int, people: list[dict], stats: Stats, stop_at: float) -> None:
    import json

    rng = random.Random(16)
    now = time.monotonic()
    events: list = []
    for i in range(len(people)):
        heapq.heappush(events, (now + rng.uniform(0, args.poll_seconds), "session", i))
        heapq.heappush(events, (now + rng.uniform(0, args.refresh_seconds), "refresh", i))
    if args.logins_per_minute > 0:
        heapq.heappush(events, (now + rng.expovariate(args.logins_per_minute / 60), "login", -1))
    if args.pages_per_minute > 0:
        heapq.heappush(events, (now + rng.expovariate(args.pages_per_minute / 60), "page", -1))
    lock = threading.Condition()

    def next_event():
        with lock:
            while True:
                if time.monotonic() >= stop_at:
                    return None
                due, kind, i = events[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(events)
                    return due, kind, i
                lock.wait(min(wait, 0.5))

    def schedule(due: float, kind: str, i: int) -> None:
        with lock:
            heapq.heappush(events, (due, kind, i))
            lock.notify()

    def worker():
        client = Client(port)
        local = random.Random(threading.get_ident())
        while (event := next_event()) is not None:
            due, kind, i = event
            if kind in ("login", "page"):
                i = local.randrange(len(people))
            person = people[i]
            started = time.perf_counter()
            with person["lock"]:
                if kind == "session":
                    status, set_cookies, _ = client.request("GET", "/api/v1/auth/session",
                                                            headers={"Cookie": cookie_header(person["cookies"])})
                    cookies_update(person["cookies"], set_cookies)
                elif kind == "page":
                    status, set_cookies, _ = client.request("GET", "/account",
                                                            headers={"Cookie": cookie_header(person["cookies"])})
                    cookies_update(person["cookies"], set_cookies)
                elif kind == "refresh":
                    body = json.dumps({"refreshToken": person["refresh"]}).encode()
                    status, _, data = client.request("POST", "/api/v1/auth/refresh", body,
                                                     {"Content-Type": "application/json"})
                    if status == 200:
                        person["refresh"] = json.loads(data)["refreshToken"]
                else:
                    body = json.dumps({"email": person["email"], "password": PASSWORD,
                                       "deviceId": person["device"]}).encode()
                    status, _, data = client.request("POST", "/api/v1/auth/login", body,
                                                     {"Content-Type": "application/json"})
                    if status == 200:  # the app signed in again on its device: its old session ended
                        person["refresh"] = json.loads(data)["refreshToken"]
            stats.add(kind, time.perf_counter() - started, status)
            if kind == "session":
                schedule(due + args.poll_seconds, kind, i)
            elif kind == "refresh":
                schedule(due + args.refresh_seconds, kind, i)
            elif kind == "login":
                schedule(due + local.expovariate(args.logins_per_minute / 60), kind, -1)
            else:
                schedule(due + local.expovariate(args.pages_per_minute / 60), kind, -1)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb(master: int, samples: int = 5, gap: float = 0.3) -> tuple[float, dict[int, float]]:
    """RSS of the master and its workers (MiB) and of each worker by pid: for each process the least of
    ``samples`` readings ``gap`` seconds apart, so that a sign-in in progress (argon2's 100 MiB for a
    tenth of a second) does not stand in for the worker's memory."""
    least: dict[int, int] = {}
    workers: set[int] = set()
    for n in range(samples):
        children = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)],
                                                   capture_output=True, text=True).stdout.split()]
        workers.update(children)
        for pid in [master] + children:
            kib = _rss_kib(pid)
            if kib is not None:
                least[pid] = min(kib, least.get(pid, kib))
        if n < samples - 1:
            time.sleep(gap)
    return sum(least.values()) / 1024, {pid: least[pid] / 1024 for pid in sorted(workers) if pid in least}


def rss_change(series: list, since_minute: float) -> str | None:
    """The RSS change from the first row at or after ``since_minute`` to the last: in all and by worker
    (a worker that was replaced in between has no figure)."""
    later = [row for row in series if row[0] >= since_minute - 1e-6]
    if len(later) < 2:
        return None
    first, last = later[0], later[-1]
    each = [f"{pid} {last[8][pid] - mib:+.1f}" for pid, mib in first[8].items() if pid in last[8]]
    return (f"# rss change minute {first[0]:.1f} -> {last[0]:.1f}: {last[5] - first[5]:+.1f} MiB in all; "
            f"by worker (pid MiB): {', '.join(each) or 'none left'}")


def db_connections(url: str) -> int:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (name,)).fetchone()[0]


def scrape(port: int) -> str:
    status, _, data = Client(port).request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    return data.decode() if status == 200 else f"(metrics answered {status})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--poll-seconds", type=float, default=10, help="each browser polls GET session this often")
    parser.add_argument("--refresh-seconds", type=float, default=900, help="each app refreshes this often")
    parser.add_argument("--logins-per-minute", type=float, default=20)
    parser.add_argument("--pages-per-minute", type=float, default=60)
    parser.add_argument("--threads", type=int, default=8, help="load-generating threads")
    parser.add_argument("--workers", type=int, default=2, help="server workers (config.serve: granian, 2 threads each)")
    parser.add_argument("--report-seconds", type=float, default=60)
    parser.add_argument("--warmup-minutes", type=float, default=10,
                        help="the summary gives the RSS change from this minute to the end (flat after warm-up)")
    args = parser.parse_args()

    database_url = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/soak_auth")
    redis_url = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/5")
    data = Path(tempfile.mkdtemp(prefix="mca-soak-"))
    env = server_env(database_url, redis_url, str(data / "prometheus"))
    database_create(database_url)
    t0 = time.monotonic()
    people = prepare(env, args.users)
    print(f"# {args.users} users with a browser session and an app session ready in {time.monotonic() - t0:.1f} s",
          flush=True)

    port = _free_port()
    log = data / "server.log"
    command = [PY, "-m", "config.serve", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
               "--threads", "2"]
    with open(log, "ab") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while Client(port).request("GET", "/api/v1/auth/jwks")[0] != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                print(log.read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.3)
        stats = Stats()
        started = time.monotonic()
        stop_at = started + args.minutes * 60
        print(f"# granian (config.serve) pid {server.pid}, {args.workers} workers x 2 threads, port {port}; "
              f"{args.minutes:g} min; {args.users} users polling every {args.poll_seconds:g} s, refreshing every "
              f"{args.refresh_seconds:g} s, {args.logins_per_minute:g} logins/min, {args.pages_per_minute:g} "
              f"pages/min; {args.threads} client threads", flush=True)
        print(f"{'min':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'rss MiB':>8} {'workers':>7} "
              f"{'db conns':>8}  worker MiB", flush=True)
        load = threading.Thread(target=run_workload, args=(args, port, people, stats, stop_at), daemon=True)
        load.start()
        series = []
        last = started
        while load.is_alive():
            until_report = args.report_seconds - (time.monotonic() - last)
            load.join(timeout=max(0.0, min(until_report, stop_at - time.monotonic())))
            if time.monotonic() - last < args.report_seconds and load.is_alive():
                continue
            now = time.monotonic()
            if not load.is_alive() and now - last < args.report_seconds / 2:
                break  # the last moments after the stop: in the summary, too short for a row of their own
            samples = stats.take()
            latencies = [s[1] for s in samples]
            rss, per_worker = rss_mb(server.pid)
            workers = len(per_worker)
            conns = db_connections(database_url)
            errors = sum(1 for s in samples if not s[2])
            row = ((now - started) / 60, len(samples) / max(now - last, 1e-9), pct(latencies, 0.5) * 1000,
                   pct(latencies, 0.99) * 1000, errors, rss, workers, conns, per_worker)
            series.append(row)
            print(f"{row[0]:5.1f} {row[1]:7.1f} {row[2]:7.1f} {row[3]:7.1f} {row[4]:6d} {row[5]:8.1f} {row[6]:7d} "
                  f"{row[7]:8d}  {' '.join(f'{mib:.1f}' for mib in per_worker.values())}", flush=True)
            last = now

        total = sum(len(v) for v in stats.all.values())
        elapsed = time.monotonic() - started
        print(f"\n# {total} requests in {elapsed:.0f} s: {total / elapsed:.1f} req/s, "
              f"{sum(stats.errors.values())} errors")
        print(f"{'kind':>8} {'count':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
        for kind, values in sorted(stats.all.items()):
            print(f"{kind:>8} {len(values):7d} {pct(values, 0.5) * 1000:7.1f} {pct(values, 0.99) * 1000:7.1f} "
                  f"{stats.errors.get(kind, 0):6d}")
        odd = {f"{k} {s}": n for (k, s), n in sorted(stats.statuses.items()) if not 200 <= s < 400}
        if odd:
            print(f"# non-2xx answers: {odd}")
        if len(series) >= 2:
            rss_values = [r[5] for r in series]
            conn_values = [r[7] for r in series]
            print(f"# rss MiB first/last/max: {series[0][5]:.1f}/{series[-1][5]:.1f}/{max(rss_values):.1f}; "
                  f"db connections min/max: {min(conn_values)}/{max(conn_values)}; "
                  f"p99 ms first/last: {series[0][3]:.1f}/{series[-1][3]:.1f}; "
                  f"stdev of req/s: {statistics.pstdev(r[1] for r in series):.1f}")
            for since in sorted({min(args.warmup_minutes, series[-1][0]), 0}):
                change = rss_change(series, since)
                if change:
                    print(change)
        print("# the service's own counters (GET /metrics):")
        for line in scrape(port).splitlines():
            if line.startswith(("mana_auth_logins_total", "mana_auth_refresh_total", "mana_auth_cookie_cache_total",
                                "mana_auth_outbox_pending", "mana_auth_signing_key_age_seconds")):
                print("  " + line)
        return 1 if sum(stats.errors.values()) else 0
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    sys.exit(main())

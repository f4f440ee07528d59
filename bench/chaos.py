"""A bounded chaos run (issue 17): mixed traffic against the production server (config.serve: granian)
while PostgreSQL is cut and hung, and healed, every few seconds, through a TCP forwarder (tests/support/forwarder.py).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h2 REDIS_URL=redis://127.0.0.1:6379/2 \\
        .venv/bin/python bench/chaos.py --seconds 120

What it holds, and prints (exit status 1 when one fails):
* no 5xx but 503, and no request without an answer;
* no lost or doubled refresh rotation: each client keeps one refresh chain (retrying a refresh that
  answered 503 with the same token, as a client should); afterwards every chain's session is alive, the
  database's current refresh token is the client's last one, and the session counts exactly as many
  rotations (``refresh_count``) as the client saw distinct ones (a replay in the grace window returns the
  same pair);
* ``manage.py audit_verify`` passes afterwards.

It creates a database of its own next to DATABASE_URL's (dropped at the end), migrates it directly,
starts the server (2 workers x 4 threads, DEBUG off, plain HTTP, rate limits off as in the other
benchmarks) with DATABASE_URL pointed at the forwarder, and stops it by its process group.
Figures: docs/benchmarks.md, "Chaos".
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.forwarder import Forwarder  # noqa: E402
from tests.support.http_client import Browser, call  # noqa: E402

PYTHON = sys.executable
PASSWORD = "chaos-Correct-Horse-42"
DB_KINDS = frozenset({"me", "refresh", "login"})


def recoveries(events: list[tuple[float, str]], answers: list[tuple[float, int]]) -> list[float]:
    """For each heal: seconds until a request that needs the database, started after it, answered 200."""
    answers = sorted(answers)
    out = []
    for at, mode in events:
        if mode == "heal":
            first = next((started for started, status in answers if started >= at and status == 200), None)
            if first is not None:
                out.append(first - at)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.seconds: dict[int, list[float]] = collections.defaultdict(list)
        self.bad: list[str] = []
        self.answers: list[tuple[float, int]] = []  # (started at, status) of requests that need the database

    def add(self, kind: str, reply=None, error: str | None = None):
        with self.lock:
            if error is not None:
                self.statuses[kind]["no answer"] += 1
                self.bad.append(f"{kind}: {error}")
                return
            self.statuses[kind][reply.status] += 1
            self.seconds[reply.status].append(reply.seconds)
            if kind in DB_KINDS:
                self.answers.append((time.monotonic() - reply.seconds, reply.status))
            if reply.status >= 500 and reply.status != 503:
                self.bad.append(f"{kind}: {reply.status} {reply.text[:200]}")


class Chain:
    """One client's refresh chain."""

    def __init__(self, base: str, email: str):
        self.base, self.email = base, email
        self.token = self.session = None
        self.rotations = 0
        self.broken: list[str] = []

    def login(self, tally: Tally) -> bool:
        reply = call("POST", self.base + "/api/v1/auth/login", json={"email": self.email, "password": PASSWORD},
                     timeout=30)
        tally.add("login", reply)
        if reply.status == 200:
            body = reply.json()
            if self.session is None:
                self.token, self.session, self.access = body["refreshToken"], body["session"]["id"], body["accessToken"]
            return True
        return False

    def refresh(self, tally: Tally) -> None:
        reply = call("POST", self.base + "/api/v1/auth/refresh", json={"refreshToken": self.token}, timeout=30)
        tally.add("refresh", reply)
        if reply.status == 200:
            body = reply.json()
            if body["refreshToken"] != self.token:
                self.token, self.access = body["refreshToken"], body["accessToken"]
                self.rotations += 1
        elif reply.status != 503:
            self.broken.append(f"{reply.status} {reply.code}")


def client_loop(base: str, email: str, stop: threading.Event, tally: Tally, chains: list, rng: random.Random):
    chain = Chain(base, email)
    while not stop.is_set() and not chain.login(tally):
        time.sleep(0.5)
    chains.append(chain)
    browser = Browser(base)
    browser_ready = False
    while not stop.is_set():
        kind = rng.choices(["refresh", "me", "jwks", "browser", "login", "health"], [30, 20, 20, 20, 5, 5])[0]
        try:
            if kind == "refresh" and not chain.broken:
                chain.refresh(tally)
            elif kind == "me":
                tally.add("me", call("GET", base + "/api/v1/auth/me", timeout=30,
                                     headers={"Authorization": f"Bearer {chain.access}"}))
            elif kind == "jwks":
                tally.add("jwks", call("GET", base + "/.well-known/jwks.json", timeout=30))
            elif kind == "browser":
                if not browser_ready:
                    page = browser.get("/login", timeout=30)
                    tally.add("page", page)
                    # 302: already signed in (a sign-in that answered 503 after its commit still set
                    # the cookie, as the session exists).
                    browser_ready = page.status == 302
                    if page.status == 200:
                        import re

                        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
                        reply = browser.post_form("/login", {**hidden, "email": email, "password": PASSWORD})
                        tally.add("page login", reply)
                        browser_ready = reply.status == 302
                else:
                    tally.add("session", browser.get("/api/v1/auth/session", timeout=30))
                    tally.add("token", browser.get("/api/v1/auth/token", timeout=30))
            elif kind == "login":
                tally.add("login", call("POST", base + "/api/v1/auth/login", timeout=30,
                                        json={"email": email, "password": PASSWORD}))
            else:
                tally.add("healthz", call("GET", base + "/healthz", timeout=30))
        except OSError as exc:
            tally.add(kind, error=repr(exc))
        time.sleep(rng.uniform(0.01, 0.05))


def chaos_loop(forwarder: Forwarder, stop: threading.Event, up: float, down: float, log: list):
    modes = ["cut", "hang"]
    i = 0
    while not stop.wait(up):
        mode = modes[i % 2]
        i += 1
        getattr(forwarder, mode)()
        log.append((time.monotonic(), mode))
        if stop.wait(down):
            break
        forwarder.heal()
        log.append((time.monotonic(), "heal"))
    forwarder.heal()


CHECK = """
import json
from sessions_app.models import DeviceSession
from core.tokens import hash_token
chains = json.load(open({path!r}))
bad = []
for c in chains:
    s = DeviceSession.objects.get(pk=c["session"])
    if s.revoked_at is not None:
        bad.append(f"{{c['session']}} revoked ({{s.revoked_reason}})")
    if s.refresh_secret_hash != hash_token(c["token"]):
        bad.append(f"{{c['session']}}: the database's refresh token is not the client's last one")
    if s.refresh_count != c["rotations"]:  # each rotation counted once (spent tokens have no rows)
        bad.append(f"{{c['session']}}: {{s.refresh_count}} rotations counted for {{c['rotations']}} seen")
print(json.dumps({{"chains": len(chains), "bad": bad, "rotations": sum(c["rotations"] for c in chains)}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--up", type=float, default=4.0, help="seconds the database is reachable each cycle")
    parser.add_argument("--down", type=float, default=2.0, help="seconds it is cut (or hung) each cycle")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or not redis_url:
        raise SystemExit("needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'mana'}_chaos"[:63]
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    direct = urlunsplit(parts._replace(path=f"/{name}"))
    forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    forwarded = urlunsplit(parts._replace(path=f"/{name}", netloc=f"{userinfo}127.0.0.1:{forwarder.port}"))
    data = Path(tempfile.mkdtemp(prefix="mca-chaos-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECURE_SSL_REDIRECT="false",
               ALLOWED_HOSTS="127.0.0.1", SECRET_KEY="chaos-" + uuid.uuid4().hex, MANA_DATA_DIR=str(data),
               LOG_LEVEL="WARNING", EMAIL_URL="consolemail://", AUTH_RATE_LIMIT_ENABLED="false",
               DATABASE_URL=forwarded, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    direct_env = {**env, "DATABASE_URL": direct}
    server = None
    try:
        manage(direct_env, "migrate", "--noinput")
        emails = [f"chaos-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(args.clients)]
        manage(direct_env, "shell", "-c",
               "from django.utils import timezone\nfrom accounts.models import User\n"
               + "".join(f"User.objects.create_user({e!r}, {PASSWORD!r}, name='Chaos', "
                         f"email_verified_at=timezone.now())\n" for e in emails))
        port = free_port()
        log_path = data / "server.log"
        with open(log_path, "wb") as out:
            server = subprocess.Popen([PYTHON, "-m", "config.serve", "--bind", f"127.0.0.1:{port}",
                                       "--workers", str(args.workers), "--threads", str(args.threads)],
                                      cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if call("GET", base + "/readyz", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.3)

        tally, chains, events = Tally(), [], []
        stop = threading.Event()
        rng = random.Random(args.seed)
        threads = [threading.Thread(target=client_loop, args=(base, email, stop, tally, chains,
                                                              random.Random(rng.random())), daemon=True)
                   for email in emails]
        threads.append(threading.Thread(target=chaos_loop, args=(forwarder, stop, args.up, args.down, events),
                                        daemon=True))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
        forwarder.heal()
        # Settle: the last refresh that answered 503 is retried once everything is up (a client would).
        time.sleep(2)
        for chain in chains:
            for _ in range(5):
                if chain.broken:
                    break
                reply = call("POST", base + "/api/v1/auth/refresh", json={"refreshToken": chain.token}, timeout=30)
                tally.add("refresh", reply)
                if reply.status == 200:
                    if reply.json()["refreshToken"] != chain.token:
                        chain.token = reply.json()["refreshToken"]
                        chain.rotations += 1
                    break
                time.sleep(1)

        path = data / "chains.json"
        path.write_text(json.dumps([{"session": c.session, "token": c.token, "rotations": c.rotations}
                                    for c in chains]))
        checked = json.loads(manage(direct_env, "shell", "-c", CHECK.format(path=str(path))).strip().splitlines()[-1])
        audit = subprocess.run([PYTHON, "manage.py", "audit_verify"], cwd=ROOT, env=direct_env, capture_output=True,
                               text=True, timeout=300)
        log_text = log_path.read_text()

        total = sum(sum(c.values()) for c in tally.statuses.values())
        outages = sum(1 for _, mode in events if mode != "heal")
        print(f"chaos run: {elapsed:.0f} s, {args.clients} clients, granian {args.workers}x{args.threads}, "
              f"{outages} outages ({args.up:g} s up / {args.down:g} s cut or hung, alternating)")
        print(f"requests: {total} ({total / elapsed:.0f}/s)")
        for kind in sorted(tally.statuses):
            print(f"  {kind:11s} " + ", ".join(f"{status}: {n}" for status, n in sorted(tally.statuses[kind].items(),
                                                                                    key=lambda kv: str(kv[0]))))
        for status in (200, 503):
            times = sorted(tally.seconds.get(status, []))
            if times:
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                print(f"  time to answer {status}: median {statistics.median(times) * 1000:.0f} ms, "
                      f"p99 {p99 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
        healed = recoveries(events, tally.answers)
        if healed:
            print(f"  recovery after each heal (first 200 of a request that needs the database): median "
                  f"{statistics.median(healed) * 1000:.0f} ms, max {max(healed) * 1000:.0f} ms "
                  f"over {len(healed)} heals")
        broken = [f"{c.session}: {c.broken}" for c in chains if c.broken]
        print(f"refresh chains: {checked['chains']}, rotations {checked['rotations']}, broken {len(broken)}, "
              f"database check problems {len(checked['bad'])}")
        print(f"audit_verify: {'ok' if audit.returncode == 0 else 'FAILED'} ({audit.stdout.strip()[:200]})")
        print(f"server log: {log_text.count('answered 503')} outage warnings, {log_text.count('Traceback')} tracebacks")
        failures = tally.bad + broken + checked["bad"] + ([] if audit.returncode == 0 else [audit.stderr[-500:]])
        if "Traceback" in log_text:
            failures.append("a traceback in the server log")
        for failure in failures[:20]:
            print("FAIL", failure)
        return 1 if failures else 0
    finally:
        if server is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(server.pid, sig)
                    server.wait(10)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        forwarder.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())

"""HTTP benchmark of mana-core-auth under its web server: `me`, `sessions`, `refresh` and `login` with wrk.

Called by bench/run_api.sh, which sets the environment, migrates the bench database and creates
the bench user; run that. Standard library only (it talks to the server over HTTP).

For each server asked for (``granian``: the production server, ``python -m config.serve``; a gunicorn worker
class such as ``gthread`` or ``sync``: gunicorn, with ``-c`` the config file given),
this vacuums the bench database, starts the server, waits until it answers, then per scenario runs wrk
once for WARMUP seconds (discarded) and once for DURATION seconds (reported):

* me: GET /api/v1/auth/me with one Bearer token (bench/lua/me.lua).
* sessions: GET /api/v1/auth/sessions/active with the same token; the user's other sessions are
  ended first (POST sessions/revoke-others), so the list always renders one row.
* refresh: POST /api/v1/auth/refresh, chained: one login per connection before each wrk run, and
  every request spends the token that the previous response on that chain returned
  (bench/lua/refresh.lua).
* login: POST /api/v1/auth/login (argon2-bound; first worker class only; no warm-up run, the
  logins that open the refresh chains have warmed that path).

It also records the CPU used during each measured window by gunicorn, by the PostgreSQL backends
of the bench database, by wrk and by everything else on the machine ("other": other people's
work, which makes the figures noisy). gunicorn is stopped by its PID when done, on error and on
Ctrl-C; its PID is also written to --pid-file so the calling script can make sure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = ROOT / "bench" / "lua"
API = "/api/v1/auth"
HZ = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- HTTP helpers -------------------------------------------------------------------------------
def http(base: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def login(base: str, email: str, password: str) -> dict:
    status, body = http(base, "POST", f"{API}/login", {"email": email, "password": password})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body!r}")
    return body


def logins(base: str, email: str, password: str, count: int) -> list[dict]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda _: login(base, email, password), range(count)))


def one_listed_session(base: str, access: str) -> dict:
    """wrk's env for the sessions list with ``access``: the user's other sessions ended first (the logins of
    earlier runs are live), so every run lists one row."""
    status, _ = http(base, "POST", f"{API}/sessions/revoke-others", token=access)
    assert status == 204, status
    status, body = http(base, "GET", f"{API}/sessions/active", token=access)
    assert status == 200 and len(body["sessions"]) == 1, (status, body)
    return {"ACCESS_TOKEN": access}


def refresh_chains(base: str, email: str, password: str, *, conns: int, wrk_threads: int, tokens_file: Path) -> dict:
    """wrk's env for chained refreshes (bench/lua/refresh.lua): fresh logins, one chain per connection plus
    a spare per wrk thread, their refresh tokens in ``tokens_file``."""
    per_thread = conns // wrk_threads + 1
    chains = logins(base, email, password, per_thread * wrk_threads)
    tokens_file.write_text("".join(p["refreshToken"] + "\n" for p in chains))
    return {"TOKENS_FILE": str(tokens_file), "TOKENS_PER_THREAD": str(per_thread)}


# ---- CPU accounting -----------------------------------------------------------------------------
def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def process_tree(root: int) -> list[int]:
    parents = {}
    for pid in _all_pids():
        fields = _proc_stat(pid)
        if fields:
            parents[pid] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += children
        frontier = children
    return tree


def db_backends(dbname: str) -> list[int]:
    """PostgreSQL backends connected to the bench database (their titles name it)."""
    pids = []
    for pid in _all_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {dbname} " in title:
            pids.append(pid)
    return pids


def jiffies(pids) -> dict[int, int]:
    """utime + stime of each process still there."""
    out = {}
    for pid in pids:
        fields = _proc_stat(pid)
        if fields:
            out[pid] = int(fields[11]) + int(fields[12])
    return out


def machine_busy() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine. Steal is time the hypervisor gave this machine's
    cores to someone else: on a shared host it comes and goes, and a window with much of it is noisy."""
    values = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq, steal


class CpuWindow:
    """Cores used during a window by gunicorn (master and workers), by the PostgreSQL backends of the
    bench database (persistent connections: CONN_MAX_AGE), by wrk, and by everything else."""

    def __init__(self, server_pid: int, dbname: str | None):
        self.server_pid, self.dbname = server_pid, dbname  # dbname None: a server without our database

    def _db_pids(self) -> list[int]:
        return db_backends(self.dbname) if self.dbname else []

    def __enter__(self):
        self.server0 = jiffies(process_tree(self.server_pid))
        self.db0 = jiffies(self._db_pids())
        self.busy0 = machine_busy()
        self.rusage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall0 = time.monotonic()
        return self

    @staticmethod
    def _delta(before: dict, after: dict) -> float:
        return sum(now - before.get(pid, 0) for pid, now in after.items()) / HZ

    def __exit__(self, *exc):
        wall = time.monotonic() - self.wall0
        (busy_now, steal_now), (busy0, steal0) = machine_busy(), self.busy0
        busy, steal = (busy_now - busy0) / HZ, (steal_now - steal0) / HZ
        server = self._delta(self.server0, jiffies(process_tree(self.server_pid)))
        db = self._delta(self.db0, jiffies(self._db_pids()))
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk = (ru.ru_utime - self.rusage0.ru_utime) + (ru.ru_stime - self.rusage0.ru_stime)
        self.cores = {
            "server_cores": server / wall,
            "db_cores": db / wall,
            "wrk_cores": wrk / wall,
            "other_cores": max(0.0, busy - server - db - wrk) / wall,
            "steal_cores": steal / wall,
        }
        return False


# ---- gunicorn -----------------------------------------------------------------------------------
class Gunicorn:
    """gunicorn with a worker class, or (worker class ``granian``) the production server,
    ``python -m config.serve`` (granian, config/serve.py) with ``--threads`` Python threads per worker."""

    def __init__(self, *, worker_class: str, workers: int, threads: int, port: int, logdir: Path, pid_file: Path,
                 conns: int, config: Path | None = None):
        self.worker_class, self.workers, self.threads, self.port = worker_class, workers, threads, port
        self.conns = conns
        self.config = config
        self.log_path = logdir / f"gunicorn-{worker_class}.log"
        self.pid_file = pid_file
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.worker_class == "granian":
            return [str(ROOT / ".venv" / "bin" / "python"), "-m", "config.serve", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(self.workers), "--threads", str(self.threads)]
        cmd = [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "-w", str(self.workers),
               "-b", f"127.0.0.1:{self.port}", "--worker-class", self.worker_class,
               "--error-logfile", str(self.log_path)]
        if self.config is not None:
            cmd[1:1] = ["-c", str(self.config)]
        if self.worker_class == "gthread":
            # Each worker holds at most its share of wrk's keep-alive connections (as bench/session_bench.sh):
            # gunicorn's workers race for accept(), and one of two can take all of them and leave a core
            # idle (a run then shows about one core of gunicorn and half the req/s).
            cmd += ["--threads", str(self.threads), "--worker-connections", str(-(-self.conns // self.workers))]
        return cmd

    def describe(self) -> str:
        cmd = [os.path.relpath(self.command()[0], ROOT)] + self.command()[1:]
        if "--error-logfile" in cmd:
            i = cmd.index("--error-logfile")
            del cmd[i:i + 2]
        return " ".join(cmd)

    def start(self) -> None:
        # gunicorn writes its own log (--error-logfile); granian's goes to the same file from stderr
        log_file = self.log_path.open("ab") if self.worker_class == "granian" else None
        try:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=log_file or subprocess.DEVNULL, stderr=log_file or subprocess.DEVNULL)
        finally:
            if log_file is not None:
                log_file.close()  # the child has its own copy
        self.pid_file.write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}: see {self.log_path}\n"
                                   + self.log_path.read_text()[-3000:])
            try:
                status, _ = http(self.base, "GET", f"{API}/jwks")
                if status == 200:
                    return
                raise RuntimeError(f"GET jwks answered {status}: check DEBUG/SECURE_SSL_REDIRECT/ALLOWED_HOSTS")
            except (TimeoutError, urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # the master stops its workers gracefully
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pid in reversed(process_tree(self.proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait(timeout=5)
        self.proc = None
        self.pid_file.unlink(missing_ok=True)


def vacuum() -> None:
    """VACUUM (ANALYZE) the bench database. Every refresh leaves a dead row version of its session and
    the grace copy behind; where autovacuum is off (CI's PostgreSQL here has it off) they pile up from
    run to run, and the same statements read more pages each time: each server starts on a clean table."""
    subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", "VACUUM (ANALYZE)"], check=True, timeout=600)


# ---- wrk ----------------------------------------------------------------------------------------
def wrk(args, url: str, script: str, seconds: float, env: dict, out: Path | None) -> dict | None:
    cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.conns}", f"-d{seconds:g}s", "--timeout", "30s",
           "-s", str(LUA_DIR / script), url]
    result = subprocess.run(cmd, env={**os.environ, "LUA_DIR": str(LUA_DIR), **env}, capture_output=True,
                            text=True, timeout=seconds + 120)
    if out is not None:
        out.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {(result.stdout + result.stderr)[-2000:]}")
    for line in result.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"no WRKJSON line in wrk output:\n{result.stdout[-2000:]}")


def measured(args, url: str, script: str, seconds: float, warmup: float, prepare, pid: int, dbname: str | None,
             out: Path | None = None) -> dict:
    """A discarded warm-up run, then the measured one, with the cores used in its window (``CpuWindow`` of
    the server ``pid``). prepare() -> env for wrk; called before the warm-up and again before the measured run."""
    if warmup > 0:
        wrk(args, url, script, warmup, prepare(), None)
        time.sleep(1)  # let the server finish the requests wrk abandoned when the warm-up ended
    env = prepare()
    with CpuWindow(pid, dbname) as cpu:
        res = wrk(args, url, script, seconds, env, out)
    res.update(cpu.cores)
    return res


def scenario(args, server: Gunicorn, name: str, script: str, path: str, seconds: float, warmup: float,
             prepare, logdir: Path, dbname: str) -> dict:
    res = measured(args, server.base + path, script, seconds, warmup, prepare, server.proc.pid, dbname,
                   logdir / f"wrk-{server.worker_class}-{name}.txt")
    res.update(scenario=name, worker_class=server.worker_class)
    errors = res["non2xx"] + res["starved"] + sum(res[k] for k in ("err_connect", "err_read", "err_write",
                                                                    "err_timeout"))
    log(f"{server.worker_class:8} {name:8} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:7.2f} ms  "
        f"p99 {res['p99_ms']:7.2f} ms  non-2xx {res['non2xx']}  errors {errors - res['non2xx']}  "
        f"| cores: server {res['server_cores']:.2f} db {res['db_cores']:.2f} wrk {res['wrk_cores']:.2f} "
        f"other {res['other_cores']:.2f} steal {res['steal_cores']:.2f}")
    return res


def efficiency(r: dict) -> str:
    """Requests per second of gunicorn CPU: less sensitive to other load than req/s."""
    return f"{r['rps'] / r['server_cores']:.0f}" if r["server_cores"] else "-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def versions() -> dict:
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except OSError:
            return "?"

    py = str(ROOT / ".venv" / "bin" / "python")
    info = {
        "python": platform.python_version(),
        "django/gunicorn/granian/psycopg": run([py, "-c", "import django, granian, gunicorn, psycopg; print("
                                                "django.get_version(), gunicorn.__version__, granian.__version__, "
                                                "psycopg.__version__)"]),
        "wrk": run(["sh", "-c", "wrk -v 2>&1 | head -1"]).split(" Copyright")[0],
        "postgresql": run(["psql", os.environ.get("DATABASE_URL", ""), "-Atc", "show server_version"]),
        "postgresql autovacuum": run(["psql", os.environ.get("DATABASE_URL", ""), "-Atc", "show autovacuum"]),
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), "?"),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
    }
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-classes", default="granian,gthread",
                        help="comma list; the first is also used for the login run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads per gthread worker (granian: blocking threads per worker)")
    parser.add_argument("--gunicorn-config", type=Path, default=None,
                        help="gunicorn -c FILE, e.g. config/gunicorn.py to measure the production settings "
                             "(metrics in multiprocess mode, gc.freeze); the command line's -w/--threads still apply")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--login-duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the worker classes this many times, interleaved; the summary shows medians")
    parser.add_argument("--email", default=os.environ.get("BENCH_EMAIL", "bench@example.com"))
    parser.add_argument("--password", default=os.environ.get("BENCH_PASSWORD", ""))
    parser.add_argument("--pid-file", type=Path, default=Path(tempfile.gettempdir()) / "mca-bench-gunicorn.pid")
    parser.add_argument("--logdir", type=Path, default=None)
    args = parser.parse_args()
    if args.conns % args.wrk_threads:
        parser.error("--conns must be a multiple of --wrk-threads")
    dbname = urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/")
    logdir = args.logdir or Path(tempfile.mkdtemp(prefix="mca-bench-"))
    logdir.mkdir(parents=True, exist_ok=True)

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)

    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for key, value in versions().items():
        print(f"{key}: {value}")
    print(f"load average before: {loadavg()}")
    print(f"wrk: -t{args.wrk_threads} -c{args.conns}, {args.warmup:g} s warm-up discarded, then "
          f"{args.duration:g} s measured (login {args.login_duration:g} s); logs in {logdir}")
    sys.stdout.flush()

    results, commands = [], {}
    classes = [c.strip() for c in args.worker_classes.split(",") if c.strip()]
    for index, worker_class in enumerate(classes * args.rounds):
        round_no = index // len(classes) + 1
        server = Gunicorn(worker_class=worker_class, workers=args.workers, threads=args.threads,
                          port=args.port or free_port(), logdir=logdir, pid_file=args.pid_file,
                          conns=args.conns, config=args.gunicorn_config)
        commands[worker_class] = server.describe()
        vacuum()
        log(f"starting {server.describe()}")
        try:
            server.start()
            base = server.base
            pair = login(base, args.email, args.password)
            status, body = http(base, "GET", f"{API}/me", token=pair["accessToken"])
            assert status == 200 and body["email"] == args.email, (status, body)
            status, body = http(base, "POST", f"{API}/refresh", {"refreshToken": pair["refreshToken"]})
            assert status == 200 and body["refreshToken"] != pair["refreshToken"], (status, body)

            access = body["accessToken"]
            results.append(scenario(args, server, "me", "me.lua", f"{API}/me", args.duration, args.warmup,
                                    lambda: {"ACCESS_TOKEN": access}, logdir, dbname))

            # The logins of an earlier server in this run (--rounds, several classes) are still live.
            results.append(scenario(args, server, "sessions", "me.lua", f"{API}/sessions/active", args.duration,
                                    args.warmup, lambda: one_listed_session(base, access), logdir, dbname))

            def fresh_chains():
                return refresh_chains(base, args.email, args.password, conns=args.conns,
                                      wrk_threads=args.wrk_threads, tokens_file=logdir / "refresh-tokens.txt")

            results.append(scenario(args, server, "refresh", "refresh.lua", f"{API}/refresh", args.duration,
                                    args.warmup, fresh_chains, logdir, dbname))
            for r in results:
                r.setdefault("round", round_no)
            if worker_class == classes[0] and args.login_duration > 0:
                creds = {"BENCH_EMAIL": args.email, "BENCH_PASSWORD": args.password}
                # No warm-up run: the argon2 path is warm from the logins above, and logins abandoned at
                # the end of a warm-up would keep the CPU busy for a second into the measured window.
                results.append(scenario(args, server, "login", "login.lua", f"{API}/login", args.login_duration,
                                        0, lambda: creds, logdir, dbname))
                results[-1]["round"] = round_no
        finally:
            server.stop()
            log(f"stopped gunicorn ({worker_class})")

    print(f"load average after: {loadavg()}")
    for worker_class, command in commands.items():
        print(f"server ({worker_class}): {command}")
    print()
    print("| worker class | round | scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | non-2xx | "
          "socket errors | cores: server | postgres (bench db) | wrk | other | steal | req per server core-s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        socket_errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"] + r["starved"]
        print(f"| {r['worker_class']} | {r['round']} | {r['scenario']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['requests']} | {r['non2xx']} | "
              f"{socket_errors} | {r['server_cores']:.2f} | {r['db_cores']:.2f} | {r['wrk_cores']:.2f} | "
              f"{r['other_cores']:.2f} | {r['steal_cores']:.2f} | {efficiency(r)} |")
    if args.rounds > 1:
        print()
        print("| worker class | scenario | median req/s | median p50 ms | median p99 ms "
              "| median req per server core-s |")
        print("|---|---|---:|---:|---:|---:|")
        for worker_class in classes:
            for name in ("me", "sessions", "refresh", "login"):
                rows = [r for r in results if r["worker_class"] == worker_class and r["scenario"] == name]
                if rows:
                    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
                    eff = statistics.median(r["rps"] / r["server_cores"] for r in rows if r["server_cores"])
                    print(f"| {worker_class} | {name} | {med('rps'):.0f} | {med('p50_ms'):.1f} | "
                          f"{med('p99_ms'):.1f} | {eff:.0f} |")
    (logdir / "results.json").write_text(json.dumps(results, indent=1))
    failed = [r for r in results if r["non2xx"] or r["starved"] or r["err_timeout"]]
    if failed:
        print(f"\nFAILED: non-2xx or broken chains in {[(r['worker_class'], r['scenario']) for r in failed]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

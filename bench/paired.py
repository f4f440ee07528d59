"""Ratios to Better Auth from paired runs: the peer and us measured alternately, a pair at a time.

    cp -r ../shared/peers/better-auth /tmp/ba && (cd /tmp/ba && npm install)   # once per machine
    bash bench/run_api.sh --paired [--pairs 5]                                  # this script, in run_api's environment

Why: on this machine the same build's refresh measured 935 and 1,397 req/s eight minutes apart, and the
peer moved as much (docs/benchmarks.md, "sixth pass"). A round that runs the peer's whole harness and then
ours compares two stretches of the machine minutes apart; its ratio carries both stretches' drift. Here
both servers run side by side (each idle while the other is measured) and every pair is two wrk runs back
to back, the peer first in odd pairs and last in even ones, so drift over the pair cancels in its ratio
and drift between pairs shows up as spread, not as a biased ratio. The summary is the median of the
pairs' ratios and their range.

The peer: ``server.mjs`` of the Better Auth harness (``--peer-dir``; ``npm install`` done there) with
its best setup as its harness runs it: 2 processes (``WORKERS=2``), SQLite in WAL, the cookie cache off
and the JWT header off, i.e. its uncached ``GET /api/auth/get-session`` (two statements), under
``wrk -t2 -c32`` as its ``bench.sh``. Us: ``python -m config.serve`` (granian, 2 workers x 2 threads) on
the bench database, under ``wrk -t2 -c16`` as bench/api_bench.py, for each of ``--paths``: ``refresh``
(chained, fresh chains per run), ``me`` (bearer), ``sessions`` (bearer list). The ratio is ours over the
peer's run of the same pair. Both get a discarded warm-up before each measured run.
"""

from __future__ import annotations

import argparse
from http.cookiejar import CookieJar
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.api_bench import (  # noqa: E402
    API, Gunicorn, free_port, log, login, measured, one_listed_session, refresh_chains, vacuum)

PEER_EMAIL = "paired@example.com"
PEER_PASSWORD = "paired-correct-horse-battery"
REFRESH_EMAIL = "bench-paired-refresh@example.com"


class Peer:
    """Better Auth's bench server (server.mjs), started and stopped by its PID."""

    def __init__(self, directory: Path, port: int, workers: int, logdir: Path):
        self.directory, self.port, self.workers = directory, port, workers
        self.sqlite = logdir / "peer.db"
        self.log_path = logdir / "peer.log"
        self.proc: subprocess.Popen | None = None
        self.cookie = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/auth"

    def start(self) -> None:
        env = {**os.environ, "PORT": str(self.port), "WORKERS": str(self.workers), "DATABASE": "sqlite",
               "SQLITE_PATH": str(self.sqlite), "COOKIE_CACHE": "0", "JWT_HEADER": "0"}
        env.pop("DATABASE_URL", None)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(["node", "server.mjs"], cwd=self.directory, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the peer exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.api}/ok", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        else:
            raise RuntimeError("the peer did not answer within 60 s")
        self.cookie = self._sign_in()

    def _sign_in(self) -> str:
        """Sign up, sign in, and return the session cookie as a Cookie header (checked by a get-session). The
        sign-up's cookie is not kept: Better Auth refuses (403) a POST that carries cookies and no Origin."""
        jar = CookieJar()
        body = {"email": PEER_EMAIL, "password": PEER_PASSWORD, "name": "Bench"}
        for opener, path, data in ((urllib.request.build_opener(), "/sign-up/email", body),
                                   (urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)),
                                    "/sign-in/email", {k: body[k] for k in ("email", "password")})):
            request = urllib.request.Request(self.api + path, data=json.dumps(data).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            opener.open(request, timeout=30).read()
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        request = urllib.request.Request(f"{self.api}/get-session", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=30) as response:
            if not (json.loads(response.read() or b"null") or {}).get("session"):
                raise RuntimeError("the peer's get-session did not find the session")
        return cookie

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def measure(wrk_args, url: str, script: str, args, env_for, pid: int, dbname: str | None) -> dict:
    """``api_bench.measured``, refused unless every answer was a 2xx and no chain broke."""
    result = measured(wrk_args, url, script, args.duration, args.warmup, env_for, pid, dbname)
    if result["non2xx"] or result["starved"] or result["err_timeout"]:
        raise RuntimeError(f"{url}: non-2xx {result['non2xx']}, broken chains {result['starved']}, "
                           f"timeouts {result['err_timeout']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-dir", type=Path, default=Path(os.environ.get("PEER_DIR", "/tmp/ba")))
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--paths", default="refresh,me", help="ours, comma list of refresh, me, sessions")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-workers", type=int, default=2, help="the peer's processes (2: its best here)")
    parser.add_argument("--conns", type=int, default=16, help="wrk connections to us (bench/api_bench.py's)")
    parser.add_argument("--peer-conns", type=int, default=32, help="wrk connections to the peer (its bench.sh's)")
    parser.add_argument("--email", default=os.environ.get("BENCH_EMAIL", "bench@example.com"))
    parser.add_argument("--password", default=os.environ.get("BENCH_PASSWORD", ""))
    parser.add_argument("--pid-file", type=Path, default=Path(tempfile.gettempdir()) / "mca-bench-paired.pid")
    parser.add_argument("--vacuum-each-pair", action="store_true",
                        help="VACUUM (ANALYZE) the bench database before every pair, outside the measured runs: "
                             "what autovacuum would do about once a minute, were it on (it is off here)")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - {"refresh", "me", "sessions"}
    if unknown:
        parser.error(f"unknown paths: {sorted(unknown)}")
    if not (args.peer_dir / "node_modules" / "better-auth").is_dir():
        parser.error(f"no Better Auth in {args.peer_dir}: cp -r ../shared/peers/better-auth {args.peer_dir} && "
                     f"(cd {args.peer_dir} && npm install)")
    if shutil.which("node") is None or shutil.which("wrk") is None:
        parser.error("needs node and wrk")
    dbname = urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/")

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")  # the servers are stopped on the way out

    signal.signal(signal.SIGTERM, interrupted)
    logdir = Path(tempfile.mkdtemp(prefix="mca-paired-"))
    ours_wrk = SimpleNamespace(wrk_threads=2, conns=args.conns)
    peer_wrk = SimpleNamespace(wrk_threads=2, conns=args.peer_conns)

    vacuum()
    peer = Peer(args.peer_dir, free_port(), args.peer_workers, logdir)
    server = Gunicorn(worker_class="granian", workers=args.workers, threads=args.threads, port=free_port(),
                      logdir=logdir, pid_file=args.pid_file, conns=args.conns)
    rows = []
    try:
        peer.start()
        server.start()
        base = server.base
        access = login(base, args.email, args.password)["accessToken"]
        # The refresh chains sign in as a user of their own: each rotation leaves index entries of its session
        # behind until a vacuum, and under the listing user's id they would slow the sessions list of later
        # pairs (one user does not refresh thousands of times a second; many users do).
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "bench_user.py"), REFRESH_EMAIL,
                        args.password], check=True, stdout=subprocess.DEVNULL)

        def fresh_chains():
            return refresh_chains(base, REFRESH_EMAIL, args.password, conns=args.conns,
                                  wrk_threads=ours_wrk.wrk_threads,
                                  tokens_file=logdir / "refresh-tokens.txt")

        def ours(path: str) -> dict:
            if path == "refresh":
                return measure(ours_wrk, f"{base}{API}/refresh", "refresh.lua", args, fresh_chains,
                               server.proc.pid, dbname)
            if path == "me":
                return measure(ours_wrk, f"{base}{API}/me", "me.lua", args, lambda: {"ACCESS_TOKEN": access},
                               server.proc.pid, dbname)
            # the listing user's other sessions (earlier runs' logins) ended first: one row
            return measure(ours_wrk, f"{base}{API}/sessions/active", "me.lua", args,
                           lambda: one_listed_session(base, access), server.proc.pid, dbname)

        def theirs() -> dict:
            return measure(peer_wrk, f"{peer.api}/get-session", "cookie.lua", args, lambda: {"COOKIE": peer.cookie},
                           peer.proc.pid, None)

        print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {os.cpu_count()} cores; load {os.getloadavg()}")
        print(f"peer: Better Auth server.mjs, {args.peer_workers} processes, SQLite, cache off, JWT header off, "
              f"wrk -t2 -c{args.peer_conns}; us: config.serve {args.workers}x{args.threads}, wrk -t2 -c{args.conns}; "
              f"{args.warmup:g} s warm-up, {args.duration:g} s measured; logs in {logdir}")
        for number in range(1, args.pairs + 1):
            if args.vacuum_each_pair and number > 1:  # the first pair follows the vacuum above
                vacuum()
            for path in paths:
                if number % 2:
                    peer_result, our_result = theirs(), ours(path)
                else:
                    our_result, peer_result = ours(path), theirs()
                ratio = our_result["rps"] / peer_result["rps"]
                rows.append({"pair": number, "path": path, "peer": peer_result, "ours": our_result, "ratio": ratio})
                log(f"pair {number} {path:8} us {our_result['rps']:7.0f} req/s (server {our_result['server_cores']:.2f}"
                    f" db {our_result['db_cores']:.2f} cores) | peer {peer_result['rps']:7.0f} req/s (server "
                    f"{peer_result['server_cores']:.2f} cores) | {ratio:.2f}x | steal "
                    f"{max(our_result['steal_cores'], peer_result['steal_cores']):.2f}")
    finally:
        server.stop()
        peer.stop()

    print()
    print("| pair | path | us req/s | Better Auth get-session req/s | ratio | us: server / db cores "
          "| peer: server cores | steal (max) |")
    print("|---:|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['pair']} | {r['path']} | {r['ours']['rps']:,.0f} | {r['peer']['rps']:,.0f} | {r['ratio']:.2f}x | "
              f"{r['ours']['server_cores']:.2f} / {r['ours']['db_cores']:.2f} | {r['peer']['server_cores']:.2f} | "
              f"{max(r['ours']['steal_cores'], r['peer']['steal_cores']):.2f} |")
    print()
    print("| path | pairs | median ratio | lowest | highest | pairs at 1.0x or more |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in paths:
        ratios = [r["ratio"] for r in rows if r["path"] == path]
        print(f"| {path} | {len(ratios)} | {statistics.median(ratios):.2f}x | {min(ratios):.2f}x "
              f"| {max(ratios):.2f}x | {sum(x >= 1.0 for x in ratios)} |")
    (logdir / "paired.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

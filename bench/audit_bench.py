"""Audited commits per second on PostgreSQL: the old chain lock against the sealed chain, 1 and 16 writers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_audit .venv/bin/python bench/audit_bench.py \
        [--seconds 10] [--writers 1 16] [--modes old new]

Each writer is a process of its own with its own connection (no GIL between them), and commits, in a
loop, the transaction an audited request makes: one small UPDATE (as a refresh rotates its session
row) and one ``audit_record`` row.

* ``old``: the chain lock of audit 0005 as it was, re-created in the bench database: a
  transaction-level advisory lock taken with the chain head (``bench_chain_lock_head``) before the
  row is inserted, held until COMMIT. Every audited commit in the deployment queues on it.
* ``new``: ``audit_record`` as it is now (no lock, no head), with the sealer running beside the
  writers once a second (``audit_seal``, as the beat task does); the chain is verified at the end and
  the seal's lag is printed.

It writes audit rows and seals into the database it is given, so it refuses a database whose name
does not contain "bench" (``--force`` overrides). Migrates first.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402

OLD_LOCK_KEY = 0x6D63615F61756474  # audit/chain.py before issue 15
OLD_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_chain_lock_head(lock_key bigint) RETURNS varchar AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN (SELECT row_hash FROM audit_auditevent ORDER BY id DESC LIMIT 1);
END;
$$ LANGUAGE plpgsql VOLATILE;
CREATE TABLE IF NOT EXISTS bench_session (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
"""


def _writer(mode: str, index: int, start_at: float, seconds: float, hold: float, queue) -> None:
    from django.conf import settings

    from audit.models import EventType
    from audit.services import audit_record

    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False, "FLOOD_CONTROL": False}
    connections.close_all()  # a connection of this process's own
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_session (id) VALUES (%s) ON CONFLICT DO NOTHING", [index])
    while time.time() < start_at:
        time.sleep(0.001)
    done, waited, end = 0, 0.0, start_at + seconds
    while time.time() < end:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("UPDATE bench_session SET n = n + 1 WHERE id = %s", [index])
                if mode == "old":
                    began = time.monotonic()
                    cursor.execute("SELECT bench_chain_lock_head(%s)", [OLD_LOCK_KEY])
                    waited += time.monotonic() - began
            audit_record(event=EventType.LOGIN_FAILED, success=False, writer=index, n=done)
            if hold:
                time.sleep(hold)  # what follows the audit row before COMMIT: more statements, network
        done += 1
    queue.put((done, waited))


def _sealer(start_at: float, seconds: float, queue) -> None:
    from audit.services import audit_seal

    connections.close_all()
    rounds = rows = 0
    worst = 0.0
    while time.time() < start_at + seconds + 1:
        began = time.monotonic()
        result = audit_seal()
        worst = max(worst, time.monotonic() - began)
        rounds, rows = rounds + 1, rows + result.rows
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    queue.put((rounds, rows, worst))


def run(mode: str, writers: int, seconds: float, hold: float = 0.0) -> dict:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    connections.close_all()
    start_at = time.time() + 1.0
    procs = [ctx.Process(target=_writer, args=(mode, i, start_at, seconds, hold, queue)) for i in range(writers)]
    sealer = ctx.Process(target=_sealer, args=(start_at, seconds, queue)) if mode == "new" else None
    for p in procs + ([sealer] if sealer else []):
        p.start()
    results = [queue.get() for _ in range(len(procs) + (1 if sealer else 0))]  # (done, waited) | sealer's
    for p in procs + ([sealer] if sealer else []):
        p.join()
    commits = sum(r[0] for r in results if isinstance(r, tuple) and len(r) == 2)
    waited = sum(r[1] for r in results if isinstance(r, tuple) and len(r) == 2)
    out = {"mode": mode, "writers": writers, "commits": commits, "per_second": commits / seconds,
           "lock_share": waited / (writers * seconds)}
    sealed = [r for r in results if isinstance(r, tuple) and len(r) == 3]
    if sealed:
        out["sealer_rounds"], out["sealed_rows"], out["slowest_round_s"] = sealed[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--modes", nargs="+", default=["old", "new"], choices=["old", "new"])
    parser.add_argument("--hold-ms", type=float, nargs="+", default=[0.0],
                        help="time each transaction spends after its audit row before COMMIT (statements that "
                             "follow it, network round trips to a remote database); default 0")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("PostgreSQL only: set DATABASE_URL")
    if "bench" not in connection.settings_dict["NAME"] and not args.force:
        sys.exit(f"refusing to write into {connection.settings_dict['NAME']!r}: its name does not contain 'bench'")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(OLD_FUNCTION)
        cursor.execute("SELECT current_setting('synchronous_commit'), (SELECT count(*) FROM pg_stat_activity)")
        sync, backends = cursor.fetchone()
    print(f"# {os.cpu_count()} cores, synchronous_commit={sync}, {backends} backends on the server, "
          f"{args.seconds:.0f} s per run")
    print("| mode | hold after the audit row | writers | audited commits/s | time waiting on the chain lock | sealer |")
    print("|---|---:|---:|---:|---:|---|")
    for hold in args.hold_ms:
        for mode in args.modes:
            for writers in args.writers:
                r = run(mode, writers, args.seconds, hold / 1000)
                sealer = (f"{r['sealer_rounds']} rounds, {r['sealed_rows']} rows, slowest "
                          f"{r['slowest_round_s'] * 1000:.0f} ms" if "sealer_rounds" in r else "-")
                print(f"| {mode} | {hold:g} ms | {writers} | {r['per_second']:,.0f} | {r['lock_share']:.0%} "
                      f"| {sealer} |", flush=True)
    from audit.chain import chain_verify
    from audit.services import audit_seal

    while audit_seal().rows:  # what the old runs wrote, and the last second of the new ones
        pass
    result = chain_verify()
    print(f"# chain: ok={result.ok}, {result.checked} rows in {result.seals} seals, {result.unsealed} not sealed")


if __name__ == "__main__":
    main()

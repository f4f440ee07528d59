"""CPU of one request under two variants of the code, measured alternately in one process.

    DJANGO_SETTINGS_MODULE=config.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_auth \
        REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/ab_cpu.py VARIANTS.py \
        [--path refresh|me|sessions] [--rounds 30] [--block 100]

``VARIANTS.py`` is a module with two functions, ``A()`` and ``B()``, each of which puts one variant in
place (typically by assigning a function of the code under test: the old implementation, copied into
the file, and the new one). The script signs one user in (a cheap hasher: the login is not measured),
then runs blocks of ``--block`` requests through Django's WSGI handler (bench/wsgi_client.py: the real
middleware and views), switching variant between blocks (A B, B A, A B, ...), and prints each variant's
median ``time.process_time`` per request and the ratio B/A.

Why alternate: on the project's machines the CPU time of the same code drifts by 10-30% from one
minute to the next (other machines share the host), so two runs one after the other cannot tell a 3%
change from the drift; blocks of a fraction of a second each, interleaved, see the same drift.
``--path refresh`` chains refreshes (each spends the token the previous one returned).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# bench/refresh_cpu.py's sign-in and request loops (it sets Django up with the bench posture on import)
from bench.refresh_cpu import READS, _pair, _reads, _refreshes  # noqa: E402
from bench.wsgi_client import CHEAP_HASHERS, Wsgi  # noqa: E402

from django.test.utils import override_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", type=Path, help="a module with A() and B()")
    parser.add_argument("--path", choices=["refresh", *READS], default="refresh")
    parser.add_argument("--rounds", type=int, default=30, help="blocks per variant (default 30)")
    parser.add_argument("--block", type=int, default=100, help="requests per block (default 100)")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("variants", args.variants)
    variants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variants)
    switch = {"A": variants.A, "B": variants.B}
    with override_settings(PASSWORD_HASHERS=CHEAP_HASHERS, ALLOWED_HOSTS=["127.0.0.1"], SECURE_SSL_REDIRECT=False):
        wsgi = Wsgi()  # in the override: the middleware reads SECURE_SSL_REDIRECT when it is built
        pair = _pair(wsgi)
        tokens = {"refresh": pair["refreshToken"], "access": pair["accessToken"]}

        def block(n: int) -> list[float]:
            """``n`` requests; the CPU of each, in ms (a refresh chain goes on from the token it ended with)."""
            if args.path == "refresh":
                cpu, _, tokens["refresh"], _ = _refreshes(wsgi, tokens["refresh"], n)
                return cpu
            return _reads(wsgi, tokens["access"], n, READS[args.path])[0]

        for name in "AB":  # warm-up of each variant, not counted
            switch[name]()
            block(2 * args.block)
        spent: dict[str, list[float]] = {"A": [], "B": []}
        for round_no in range(args.rounds):
            for name in ("A", "B") if round_no % 2 == 0 else ("B", "A"):
                switch[name]()
                spent[name] += block(args.block)
    for name in "AB":
        values = sorted(spent[name])
        print(f"{name}: {args.path} n={len(values)} CPU median {statistics.median(values) * 1e3:.0f} us, "
              f"mean {statistics.fmean(values) * 1e3:.0f} us, p25 {values[len(values) // 4] * 1e3:.0f} us")
    print(f"B/A (medians): {statistics.median(spent['B']) / statistics.median(spent['A']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Flat at one million device sessions (issue 15): bench/million.py on a database of its own.
#
#   bash bench/million.sh [--sizes 100,1000000] [--requests 300]
#
# Creates the database if missing (BENCH_MILLION_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/bench_million), migrates it and runs bench/million.py, which empties
# its device sessions, fills 1,000,000 live rows by COPY, and prints the Markdown of docs/benchmarks.md.
# About 3 minutes on 2 cores. Extra arguments go to bench/million.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
export DATABASE_URL=${BENCH_MILLION_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench_million}
export REDIS_URL=${BENCH_MILLION_REDIS_URL:-redis://127.0.0.1:6379/5}
export DEBUG=false SECURE_SSL_REDIRECT=false ALLOWED_HOSTS=127.0.0.1 AUTH_RATE_LIMIT_ENABLED=false
export DJANGO_SETTINGS_MODULE=config.settings
"$PY" - <<'PY'
import os
from urllib.parse import urlsplit, urlunsplit
import psycopg
parts = urlsplit(os.environ["DATABASE_URL"])
name = parts.path.lstrip("/")
with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PY
"$PY" manage.py migrate --noinput >/dev/null
exec "$PY" bench/million.py "$@"

#!/usr/bin/env bash
# Speed of mana-core-auth on this machine, in one command (from the repository root or anywhere):
#
#   bash bench/run_api.sh
#
# 1. queries per request (login, refresh, me) with 100 and 100,000 device sessions: bench/queries.py
# 2. gunicorn + PostgreSQL under wrk -t2 -c16: me, refresh (chained), login: bench/api_bench.py
#
# Uses its own PostgreSQL database (created if missing; its device sessions are emptied) and its own
# Redis db number. Knobs (environment): BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/bench_auth),
# BENCH_REDIS_URL (redis://127.0.0.1:6379/5), DURATION (10), WARMUP (3), LOGIN_DURATION (5),
# WORKER_CLASSES (granian,gthread: granian is the production server, config.serve; gthread and sync are gunicorn), WORKERS (2), THREADS (2), CONNS (16),
# GUNICORN_CONFIG (unset; config/gunicorn.py measures the production settings), SKIP_QUERIES=1, SKIP_HTTP=1.
# Extra arguments go to bench/api_bench.py. gunicorn is stopped by its PID whatever happens.
# `bash bench/run_api.sh --paired [--pairs N] [--paths refresh,me,sessions] [--peer-dir DIR] [--vacuum-each-pair]` instead runs
# bench/paired.py: the ratios to Better Auth from pairs of runs measured alternately (needs its npm install in
# DIR, /tmp/ba by default: see ../shared/peers/better-auth/README.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python

command -v wrk >/dev/null || { echo "wrk is missing: apt-get update && apt-get install -y wrk" >&2; exit 1; }
[ -x "$PY" ] || { echo "no .venv: run 'make install' first" >&2; exit 1; }

export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench_auth}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}
# Production posture (DEBUG off) without TLS in front: wrk speaks plain HTTP to 127.0.0.1.
export DEBUG=false SECURE_SSL_REDIRECT=false ALLOWED_HOSTS=127.0.0.1
export AUTH_RATE_LIMIT_ENABLED=false  # as the peer benchmark: measure the work, not the limiter (lockout stays on)
export SECRET_KEY=bench-only-secret-key-6d1f0c2a9b8e4f3aa7c5d2e1b0f9a8c7d6e5f4a3b2c1d0e9
export AUTH_KEY_ENCRYPTION_KEY=YmVuY2gtb25seS1rZXktZW5jcnlwdGlvbi1rZXktMzJi   # 33 bytes, bench only
unset AUTH_REFRESH_GRACE_SECONDS   # the contract's default (10 s)
export DJANGO_SETTINGS_MODULE=config.settings
export BENCH_EMAIL=bench@example.com BENCH_PASSWORD=bench-password-4c8e1f
PID_FILE=$(mktemp -t mca-bench-gunicorn.XXXXXX)

cleanup() {
  # api_bench.py stops gunicorn itself; this is the safety net if it was killed before it could.
  if [ -s "$PID_FILE" ]; then
    pid=$(cat "$PID_FILE")
    if kill -0 "$pid" 2>/dev/null; then
      echo "stopping gunicorn (pid $pid)" >&2
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dbname=${DATABASE_URL##*/}
dbserver=${DATABASE_URL%/*}
if ! psql "$dbserver/postgres" -Atc "select 1 from pg_database where datname = '$dbname'" | grep -q 1; then
  echo "creating database $dbname" >&2
  psql "$dbserver/postgres" -qc "create database \"$dbname\""
fi

tree=$(git log -1 --format='%h %s' 2>/dev/null || echo 'not a git checkout')
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then tree="$tree (+ uncommitted changes)"; fi
echo "== mana-core-auth speed: $tree"
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); uptime: $(uptime)"
"$PY" manage.py migrate --noinput >/dev/null
"$PY" bench/bench_user.py "$BENCH_EMAIL" "$BENCH_PASSWORD"

if [ "${1:-}" = --paired ]; then
  # Paired runs against Better Auth (bench/paired.py): its server and ours side by side, measured alternately.
  shift
  echo "== paired with Better Auth (bench/paired.py), $(date '+%F %T'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" bench/paired.py --pid-file "$PID_FILE" --email "$BENCH_EMAIL" --password "$BENCH_PASSWORD" "$@"
  exit
fi

if [ "${SKIP_QUERIES:-0}" != 1 ]; then
  echo
  echo "== 1. SQL statements per request (bench/queries.py), $(date '+%F %T'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" bench/queries.py
fi

if [ "${SKIP_HTTP:-0}" != 1 ]; then
  echo
  echo "== 2. HTTP under wrk (bench/api_bench.py), $(date '+%F %T'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" bench/api_bench.py --pid-file "$PID_FILE" \
    --duration "${DURATION:-10}" --warmup "${WARMUP:-3}" --login-duration "${LOGIN_DURATION:-5}" \
    --worker-classes "${WORKER_CLASSES:-granian,gthread}" --workers "${WORKERS:-2}" --threads "${THREADS:-2}" \
    --conns "${CONNS:-16}" --email "$BENCH_EMAIL" --password "$BENCH_PASSWORD" \
    ${GUNICORN_CONFIG:+--gunicorn-config "$GUNICORN_CONFIG"} "$@"
fi
echo
echo "== done, $(date '+%F %T'); uptime: $(uptime)"

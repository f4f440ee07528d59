#!/usr/bin/env bash
# Browser hot paths under the production server (config/serve.py: granian; WORKER_CLASS=gthread or sync:
# gunicorn) + PostgreSQL, with the same wrk settings as the Better Auth peer
# (shared/peers/better-auth/bench.sh: wrk -t2 -c32, 3 s warm-up discarded, 10 s measured):
#   GET /api/v1/auth/session  cookie cache on (with and without the Redis revocation lookup) and off
#   GET /api/v1/auth/token    minted for the browser's session (from the cookie-cache snapshot), also
#                             with an organization active
#   GET /.well-known/jwks.json
#
#   bash bench/session_bench.sh            # knobs: DURATION WARMUP CONNS THREADS WORKERS WORKER_CLASS GTHREADS
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
command -v wrk >/dev/null || { echo "wrk is missing: apt-get update && apt-get install -y wrk" >&2; exit 1; }

DURATION=${DURATION:-10s}; WARMUP=${WARMUP:-3s}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}; WORKER_CLASS=${WORKER_CLASS:-granian}; GTHREADS=${GTHREADS:-2}; PORT=${PORT:-8321}
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench_auth}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}
export DEBUG=false SECURE_SSL_REDIRECT=false ALLOWED_HOSTS=127.0.0.1 AUTH_RATE_LIMIT_ENABLED=false  # as the peer: limiter off
export SECRET_KEY=bench-only-secret-key-6d1f0c2a9b8e4f3aa7c5d2e1b0f9a8c7d6e5f4a3b2c1d0e9
export AUTH_KEY_ENCRYPTION_KEY=YmVuY2gtb25seS1rZXktZW5jcnlwdGlvbi1rZXktMzJi
export DJANGO_SETTINGS_MODULE=config.settings LUA_DIR=$ROOT/bench/lua
EMAIL=bench@example.com; PASSWORD=bench-password-4c8e1f
SERVER_PID=""
stop() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi; }
trap stop EXIT
trap 'exit 130' INT TERM

psql -h 127.0.0.1 -U postgres -lqt | cut -d'|' -f1 | grep -qw bench_auth || createdb -h 127.0.0.1 -U postgres bench_auth
REDIS_URL=$BENCH_REDIS_URL "$PY" manage.py migrate -v0
REDIS_URL=$BENCH_REDIS_URL "$PY" bench/bench_user.py "$EMAIL" "$PASSWORD" >/dev/null
# Dead row versions left by earlier runs' refreshes (where autovacuum is off, as in CI's PostgreSQL) would
# make the same statements read more pages from run to run (bench/api_bench.py vacuums before each server too).
psql "$DATABASE_URL" -qc "VACUUM (ANALYZE)"

start() {  # start REDIS_URL COOKIE_CACHE_SECONDS
  local args=(config.wsgi -w "$WORKERS" -b "127.0.0.1:$PORT" --worker-class "$WORKER_CLASS" --log-level warning)
  # Each worker holds at most its share of wrk's keep-alive connections. The peer's node cluster hands
  # connections to its workers round-robin; gunicorn's workers race for accept(), and one of two can
  # take all 32 connections and leave a core idle (runs came out at ~990 or ~2,500 req/s at random).
  [ "$WORKER_CLASS" = gthread ] && args+=(--threads "$GTHREADS" --worker-connections "$(( (CONNS + WORKERS - 1) / WORKERS ))")
  if [ "$WORKER_CLASS" = granian ]; then  # the production server: GTHREADS Python threads per worker
    REDIS_URL=$1 AUTH_COOKIE_CACHE_SECONDS=$2 WEB_LOG_LEVEL=warning "$PY" -m config.serve \
      --bind "127.0.0.1:$PORT" --workers "$WORKERS" --threads "$GTHREADS" &
  else
    REDIS_URL=$1 AUTH_COOKIE_CACHE_SECONDS=$2 "$ROOT/.venv/bin/gunicorn" "${args[@]}" &
  fi
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/.well-known/jwks.json" && return 0; sleep 0.1; done
  echo "the server did not come up" >&2; exit 1
}

bench() {  # bench NAME SCRIPT PATH
  local name=$1 script=$2 path=$3
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" --timeout 30s -s "$LUA_DIR/$script" "http://127.0.0.1:$PORT$path" >/dev/null
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s -s "$LUA_DIR/$script" "http://127.0.0.1:$PORT$path" | sed -n 's/^WRKJSON //p')
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); print("| %s | %.0f | %.2f | %.2f | %d |" % (sys.argv[1], d["rps"], d["p50_ms"], d["p99_ms"], d["non2xx"] + d["err_connect"] + d["err_read"] + d["err_timeout"]))' "$name" "$out"
}

cookies() { REDIS_URL=$1 "$PY" bench/browser_cookies.py "$EMAIL" ${2:-}; }

echo "== $(date -u +'%F %T') UTC; $(git rev-parse --short HEAD); load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$WORKER_CLASS" = granian ]; then server="granian (python -m config.serve) $WORKERS workers x $GTHREADS threads"
elif [ "$WORKER_CLASS" = gthread ]; then server="gunicorn $WORKERS x gthread ($GTHREADS threads, $(( (CONNS + WORKERS - 1) / WORKERS )) connections each)"
else server="gunicorn $WORKERS x $WORKER_CLASS"; fi
echo "== $server; wrk -t$THREADS -c$CONNS, $WARMUP warm-up discarded, $DURATION measured"
echo
echo "| scenario | req/s | p50 ms | p99 ms | errors + non-2xx |"
echo "|---|---:|---:|---:|---:|"
start "$BENCH_REDIS_URL" 300
export BENCH_COOKIE; BENCH_COOKIE=$(cookies "$BENCH_REDIS_URL")
curl -sf -H "Cookie: $BENCH_COOKIE" "http://127.0.0.1:$PORT/api/v1/auth/session" | grep -q '"session"' || { echo "session check failed" >&2; exit 1; }
bench "GET session, cookie cache on + Redis revocation lookup" cookie_get.lua /api/v1/auth/session
bench "GET token, cookie + Redis" cookie_get.lua /api/v1/auth/token
BENCH_COOKIE=$(cookies "$BENCH_REDIS_URL" --org)
curl -sf -H "Cookie: $BENCH_COOKIE" "http://127.0.0.1:$PORT/api/v1/auth/token" | grep -q '"accessToken"' || { echo "token check failed" >&2; exit 1; }
bench "GET token, cookie + Redis, organization active (org/orgRole claims)" cookie_get.lua /api/v1/auth/token
bench "GET /.well-known/jwks.json" plain_get.lua /.well-known/jwks.json
stop
start "" 300
BENCH_COOKIE=$(cookies "")
bench "GET session, cookie cache on, no Redis (embedded)" cookie_get.lua /api/v1/auth/session
bench "GET token, cookie, no Redis" cookie_get.lua /api/v1/auth/token
stop
start "$BENCH_REDIS_URL" 0
BENCH_COOKIE=$(cookies "$BENCH_REDIS_URL" --no-cache)
bench "GET session, cookie cache off" cookie_get.lua /api/v1/auth/session
stop
echo
echo "== done $(date -u +'%T') UTC; load: $(cut -d' ' -f1-3 /proc/loadavg)"

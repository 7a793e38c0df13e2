#!/usr/bin/env bash
# Start Conum on Prefect's scaled layout ("How to scale self-hosted Prefect"), on this machine:
# Prefect's database on PostgreSQL (its own database, created if missing), events and background-service
# coordination through Redis (prefect-redis), two API servers (`prefect server start --no-services`) and the
# background services in a process apart (`prefect server services start`), Conum's own database on
# PostgreSQL, and WORKERS workers (default 2) on the work pool `conum`, worker i polling API server
# ((i - 1) mod 2) + 1, as workers behind a load balancer would. docs/scaling.md shows the same layout
# across machines. Every process is recorded in $CONUM_RUN_DIR/*.pid; `scripts/down.sh` stops exactly that.
#
# Environment (defaults in brackets):
#   CONUM_PG_SERVER       PostgreSQL server for both databases [postgresql://postgres@127.0.0.1:5432]
#   PREFECT_DB_NAME       Prefect's database on it [conum_prefect]
#   CONUM_DATABASE_URL    Conum's database [postgresql+psycopg://postgres@127.0.0.1:5432/conum]
#   CONUM_REDIS_HOST, CONUM_REDIS_PORT, CONUM_REDIS_DB   Redis [127.0.0.1, 6379, 0]
#   PREFECT_PORT          the first API server's port; the second listens on the next one [4200]
#   WORKERS               workers to start [2]
#   WORKER_LIMIT          flow runs each worker runs at once [no limit]
#   CONUM_RUN_DIR         where logs, pid files, mail and payment orders go [run]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="${CONUM_RUN_DIR:-$ROOT/run}"
BIN="$ROOT/.venv/bin"
PORT="${PREFECT_PORT:-4200}"
PORTS=("$PORT" "$((PORT + 1))")
WORKERS="${WORKERS:-2}"
PG_SERVER="${CONUM_PG_SERVER:-postgresql://postgres@127.0.0.1:5432}"
PREFECT_DB_NAME="${PREFECT_DB_NAME:-conum_prefect}"
mkdir -p "$RUN"

export PREFECT_HOME="$RUN/prefect"
export PREFECT_SERVER_EPHEMERAL_ENABLED=false
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
# Prefect's own database, migrated once here rather than by each server at its start
export PREFECT_API_DATABASE_CONNECTION_URL="${PG_SERVER/postgresql:/postgresql+asyncpg:}/$PREFECT_DB_NAME"
export PREFECT_API_DATABASE_MIGRATE_ON_START=false
# events, their cache and ordering, concurrency leases and the background services' queue: in Redis
export PREFECT_SERVER_EVENTS_MESSAGING_BROKER=prefect_redis.messaging
export PREFECT_SERVER_EVENTS_MESSAGING_CACHE=prefect_redis.messaging
export PREFECT_SERVER_EVENTS_CAUSAL_ORDERING=prefect_redis.ordering
export PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect_redis.lease_storage
export PREFECT_REDIS_MESSAGING_HOST="${CONUM_REDIS_HOST:-127.0.0.1}"
export PREFECT_REDIS_MESSAGING_PORT="${CONUM_REDIS_PORT:-6379}"
export PREFECT_REDIS_MESSAGING_DB="${CONUM_REDIS_DB:-0}"
export PREFECT_SERVER_DOCKET_URL="redis://$PREFECT_REDIS_MESSAGING_HOST:$PREFECT_REDIS_MESSAGING_PORT/$PREFECT_REDIS_MESSAGING_DB"
# an operator's action waits for a worker's poll: ask every second (the default is 10 s)
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-1}"
export CONUM_DATABASE_URL="${CONUM_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/conum}"
export CONUM_MAIL_DIR="${CONUM_MAIL_DIR:-$RUN/mail}"
export CONUM_PAYMENT_DIR="${CONUM_PAYMENT_DIR:-$RUN/payments}"
api() { echo "http://127.0.0.1:${PORTS[$1]}/api"; }

set -m # each process leads a group of its own and receives SIGINT (see scripts/up.sh)

source "$ROOT/scripts/pids.sh"
alive() { ours "$1"; }
clean_stale "$RUN" # left by a crash or a reboot: their pids may belong to anyone now
healthy() { "$BIN/python" - "$1/health" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}
# start NAME COMMAND...: start a process in the background, its pid in $RUN/NAME.pid, its log in $RUN/NAME.log
start() {
  local name=$1
  shift
  if alive "$RUN/$name.pid"; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$name started (pid $!, log: $RUN/$name.log)"
}

# 1. both databases on PostgreSQL, created when missing; Prefect's schema migrated once
"$BIN/python" - "$PG_SERVER" "$PREFECT_DB_NAME" "$CONUM_DATABASE_URL" <<'EOF'
import sys
import psycopg
from sqlalchemy.engine import make_url

server, prefect_db, conum_url = sys.argv[1:]
conum = make_url(conum_url)
with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
    for name in (prefect_db, conum.database if conum.get_backend_name() == "postgresql" else None):
        if name and admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
            print(f"created database {name}")
EOF
"$BIN/prefect" --no-prompt server database upgrade -y >"$RUN/prefect-migrate.log" 2>&1 ||
  { tail -20 "$RUN/prefect-migrate.log" >&2; echo "refused: migrating Prefect's database failed (above)" >&2; exit 1; }
"$BIN/conum" init

# 2. two API servers without services, one after the other (the first registers Prefect's block types on a
#    new database: two at once would race on them), and the background services apart
for i in 0 1; do
  if healthy "$(api $i)" && ! alive "$RUN/prefect-server-$((i + 1)).pid"; then
    echo "refused: something else already serves $(api $i): choose another port with PREFECT_PORT" >&2
    exit 1
  fi
  start "prefect-server-$((i + 1))" "$BIN/prefect" server start --host 127.0.0.1 --port "${PORTS[$i]}" \
    --no-services --analytics-off
  for _ in $(seq 1 240); do
    healthy "$(api $i)" && break
    alive "$RUN/prefect-server-$((i + 1)).pid" ||
      { echo "refused: API server $((i + 1)) stopped at start; see $RUN/prefect-server-$((i + 1)).log" >&2; exit 1; }
    sleep 0.5
  done
  healthy "$(api $i)" || { echo "refused: API server $((i + 1)) is not healthy after 120 s" >&2; exit 1; }
done
start prefect-services "$BIN/prefect" server services start
echo "API servers healthy: $(api 0) $(api 1)"

# 3. the work pool and the deployments (through the first server), the workers (on both)
export PREFECT_API_URL="$(api 0)"
# each run is one engine process started by this interpreter (flows/workpool.py)
"$BIN/python" -m flows.workpool conum
if ! "$BIN/prefect" --no-prompt deploy --all >"$RUN/deploy.log" 2>&1; then
  tail -25 "$RUN/deploy.log" >&2
  echo "refused: deploying prefect.yaml failed (above, and $RUN/deploy.log)" >&2
  exit 1
fi
echo "deployments of prefect.yaml ready (log: $RUN/deploy.log)"
for w in $(seq 1 "$WORKERS"); do
  PREFECT_API_URL="$(api $(((w - 1) % 2)))" start "prefect-worker-$w" \
    "$BIN/prefect" worker start --pool conum --type process --name "conum-worker-$w" \
    ${WORKER_LIMIT:+--limit "$WORKER_LIMIT"}
done

cat <<EOF

Conum is up, scaled: API servers $(api 0) and $(api 1), $WORKERS workers on the pool conum.
  UI:        http://127.0.0.1:${PORTS[0]}  (or :${PORTS[1]}: both serve the same Prefect)
  Prefect:   $PREFECT_DB_NAME on PostgreSQL, events on Redis db $PREFECT_REDIS_MESSAGING_DB
  database:  $CONUM_DATABASE_URL
Stop with: make down-scaled
EOF

#!/usr/bin/env bash
# The operator's wait and the workers' throughput on Prefect's scaled layout (docs/scaling.md), for one
# and for two workers: for each, `scripts/up-scaled.sh` on databases and a Redis database of its own, then
# `bench/bench_worker.py --api --db` (20 actions one after the other, then 40 created at once), then
# `scripts/down.sh` and the databases dropped (the layout seeds nothing: the bench adds its own cases).
# Prints one JSON line per layout.
#
#     bash bench/bench_scaled.sh [WORKERS...]      # default: 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/.venv/bin"
PG="${CONUM_PG_SERVER:-postgresql://postgres@127.0.0.1:5432}"
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 2)
for n in "${COUNTS[@]}"; do
  name="conum_bench_$$_$n"
  run=$(mktemp -d -t conum-bench-scaled-XXXX)
  export CONUM_RUN_DIR="$run" CONUM_PG_SERVER="$PG" PREFECT_DB_NAME="${name}_prefect" WORKERS="$n"
  export CONUM_DATABASE_URL="${PG/postgresql:/postgresql+psycopg:}/$name" CONUM_REDIS_DB="${CONUM_REDIS_DB:-7}"
  export PREFECT_PORT="${PREFECT_PORT:-4380}" PREFECT_HOME="$run/prefect"
  "$BIN/python" -c "import redis, os; redis.Redis(db=int(os.environ['CONUM_REDIS_DB'])).flushdb()"
  psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
  trap 'bash scripts/down.sh >/dev/null 2>&1 || true' EXIT
  bash scripts/up-scaled.sh >"$run/up.log" 2>&1 || { tail -20 "$run/up.log" >&2; exit 1; }
  figures=$("$BIN/python" bench/bench_worker.py --api "http://127.0.0.1:$PREFECT_PORT/api" \
    --db "${CONUM_DATABASE_URL}" --runs 20 --burst 40 | tail -1)
  echo "{\"workers\": $n, \"figures\": $figures}"
  bash scripts/down.sh >/dev/null 2>&1 || true
  trap - EXIT
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${name}_prefect WITH (FORCE)" >/dev/null
  rm -rf "$run"
done

#!/usr/bin/env bash
# Start Conum on this machine: a local Prefect server (127.0.0.1:4200), the work pool `conum`,
# every deployment of prefect.yaml and one worker; seed a small demo programme if the database
# has no case. Everything it starts is recorded in run/*.pid; `scripts/down.sh` stops exactly that.
#
# Environment: CONUM_DATABASE_URL (default sqlite:///<project>/conum.db) and the other CONUM_*
# settings are passed to the worker, hence to every flow run. PREFECT_PORT changes the port,
# CONUM_RUN_DIR the folder of the logs, pid files, login, mail and payment orders (default run/).
#
# Login: at its first start it writes a random credential into run/api-auth (one line user:password,
# readable by its owner only); the server accepts no API call without it (Prefect's basic
# authentication), and the worker, the deployments and the commands below use it. Delete the file and
# restart (make down && make up) to change the password.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="${CONUM_RUN_DIR:-$ROOT/run}"
SHOWN="${RUN#"$ROOT"/}" # as the messages print it
BIN="$ROOT/.venv/bin"
PORT="${PREFECT_PORT:-4200}"
mkdir -p "$RUN"

export PREFECT_HOME="$RUN/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT="$PORT"
export PREFECT_SERVER_EPHEMERAL_ENABLED=false
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export CONUM_DATABASE_URL="${CONUM_DATABASE_URL:-sqlite:///$ROOT/conum.db}"
export CONUM_MAIL_DIR="${CONUM_MAIL_DIR:-$RUN/mail}"
export CONUM_PAYMENT_DIR="${CONUM_PAYMENT_DIR:-$RUN/payments}"
# an operator's action waits for the worker's poll: ask every second (Prefect's default is 10 s)
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-1}"

# the login: one credential, generated at the first start
AUTH_FILE="$RUN/api-auth"
if [ ! -s "$AUTH_FILE" ]; then
  (umask 077 && "$BIN/python" -c 'import secrets; print("conum:" + secrets.token_urlsafe(24))' >"$AUTH_FILE")
  echo "login created in $SHOWN/api-auth (user:password)"
fi
chmod 600 "$AUTH_FILE"
export PREFECT_API_AUTH_STRING="$(head -n 1 "$AUTH_FILE")"

# job control: each process started below leads a process group of its own, and receives SIGINT
# (a non-interactive shell would start it with SIGINT ignored, and the worker would not stop)
set -m

source "$ROOT/scripts/pids.sh"
alive() { ours "$1"; }
clean_stale "$RUN" # left by a crash or a reboot: their pids may belong to anyone now
healthy() { "$BIN/python" - "$PREFECT_API_URL/health" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

# 1. the server
if alive "$RUN/prefect-server.pid"; then
  echo "Prefect server already running (pid $(cat "$RUN/prefect-server.pid"))"
else
  if healthy; then
    echo "refused: something else already serves $PREFECT_API_URL: stop it, or choose another port with PREFECT_PORT=4201 make up" >&2
    exit 1
  fi
  echo "starting the Prefect server on 127.0.0.1:$PORT (log: $SHOWN/prefect-server.log)"
  PREFECT_SERVER_API_AUTH_STRING="$PREFECT_API_AUTH_STRING" "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" --analytics-off \
    >"$RUN/prefect-server.log" 2>&1 </dev/null &
  echo $! >"$RUN/prefect-server.pid"
fi
for _ in $(seq 1 120); do
  healthy && break
  if ! alive "$RUN/prefect-server.pid"; then
    echo "refused: the Prefect server stopped at start; see $SHOWN/prefect-server.log" >&2
    rm -f "$RUN/prefect-server.pid"
    exit 1
  fi
  sleep 0.5
done
healthy || { echo "refused: the Prefect server is not healthy after 60 s; see $SHOWN/prefect-server.log" >&2; exit 1; }
echo "Prefect server healthy"

# 2. the database (schema, and a small demo programme when it has no case)
"$BIN/conum" init
if [ "$("$BIN/conum" list --json | "$BIN/python" -c 'import json, sys; print(len(json.load(sys.stdin)["cases"]))')" = 0 ]; then
  echo "seeding a small demo programme into $CONUM_DATABASE_URL"
  c() { "$BIN/conum" "$@" --json >/dev/null; }
  c structure add --name "Médiathèque François-Mitterrand" --departement 86 --posts 2 --email mediatheque@ville-exemple.fr
  c structure add --name "Association Les Connectés" --departement 974 --posts 1 --kind private --email contact@lesconnectes.re
  c training-org add --name "Simplon.co" --email formation@simplon.co
  c candidate add --name "Amina Diallo" --email amina@exemple.fr --departement 86
  c candidate add --name "Bruno Petit" --email bruno@exemple.fr --departement 86
  c candidate add --name "Émilie Robert" --email emilie@exemple.fr --departement 974
  c present --structure 1 --candidate 1
  c present --structure 1 --candidate 2
  c present --structure 2 --candidate 3
fi

# 3. the work pool, the deployments, the worker
# each run is one engine process started by this interpreter (flows/workpool.py)
"$BIN/python" -m flows.workpool conum
echo "deploying prefect.yaml (log: $SHOWN/deploy.log)"
if ! "$BIN/prefect" --no-prompt deploy --all >"$RUN/deploy.log" 2>&1; then
  tail -25 "$RUN/deploy.log" >&2
  echo "refused: deploying prefect.yaml failed (above, and $SHOWN/deploy.log): fix it and run make up again" >&2
  exit 1
fi
"$BIN/prefect" deployment ls
if alive "$RUN/prefect-worker.pid"; then
  echo "worker already running (pid $(cat "$RUN/prefect-worker.pid"))"
else
  echo "starting a worker of the pool conum (log: $SHOWN/prefect-worker.log)"
  "$BIN/prefect" worker start --pool conum --type process \
    >"$RUN/prefect-worker.log" 2>&1 </dev/null &
  echo $! >"$RUN/prefect-worker.pid"
fi
# the inbox at once: follow-cases opens a decision run for each case waiting on a person (then every two minutes)
"$BIN/prefect" deployment run 'follow-cases/follow-cases' >/dev/null && echo "follow-cases started: the inbox fills"

cat <<EOF

Conum is up.
  UI:        http://127.0.0.1:$PORT  (it asks for the login: the line in $SHOWN/api-auth)
  API:       $PREFECT_API_URL
  database:  $CONUM_DATABASE_URL
  mail:      $CONUM_MAIL_DIR    payment orders: $CONUM_PAYMENT_DIR
Use the CLI with:  export PREFECT_API_URL=$PREFECT_API_URL PREFECT_HOME=$PREFECT_HOME
                   export PREFECT_API_AUTH_STRING="\$(cat $SHOWN/api-auth)"
  .venv/bin/prefect deployment ls
  .venv/bin/prefect deployment run 'advance-case/advance-case' -p case_id=1 -p event=select
Stop with: make down
EOF

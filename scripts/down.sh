#!/usr/bin/env bash
# Stop what `scripts/up.sh` started, and nothing else (the process ids are in run/*.pid):
# 1. the worker, with SIGINT (a worker started with SIGINT ignored would not stop: up.sh takes
#    care of that); the flow runs it started run in sessions of their own: they are tracked as
#    its children, given WAIT seconds (default 60) to finish, then SIGTERM — a batch run loses at
#    most the chunk in progress, which rolls back, and the next run does it;
# 2. the Prefect server, with SIGTERM (its process group: the server and its own children).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="$(pwd)/run"
WAIT="${WAIT:-60}"

alive() { kill -0 "$1" 2>/dev/null; }
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# wait_gone SECONDS PID... : wait until every PID has exited (true) or the time is up (false)
wait_gone() {
  local until=$((SECONDS + $1)) pid left
  shift
  while :; do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && return 0
    [ "$SECONDS" -ge "$until" ] && return 1
    sleep 0.5
  done
}

stop_worker() {
  local file="$RUN/prefect-worker.pid" pid child runs=()
  if [ ! -f "$file" ]; then
    echo "worker: not started by make up (no run/prefect-worker.pid)"
    return
  fi
  pid=$(cat "$file")
  if ! alive "$pid"; then
    echo "worker: already stopped"
    rm -f "$file"
    return
  fi
  echo "worker: stopping (pid $pid, SIGINT)"
  runs+=($(pgrep -P "$pid" || true))
  kill -INT "$pid" 2>/dev/null || true
  local until=$((SECONDS + WAIT))
  while alive "$pid" && [ "$SECONDS" -lt "$until" ]; do
    runs+=($(pgrep -P "$pid" || true)) # a run being submitted when the signal came
    sleep 0.5
  done
  if alive "$pid"; then
    echo "worker: still running after ${WAIT}s: SIGINT again (it then kills itself)"
    kill -INT "$pid" 2>/dev/null || true
    wait_gone 15 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; }
  fi
  if [ "${#runs[@]}" -gt 0 ] && ! wait_gone "$WAIT" "${runs[@]}"; then
    for child in "${runs[@]}"; do
      if alive "$child" && ps -o args= -p "$child" | grep -q prefect; then # not a reused pid
        echo "worker: flow run process $child still running after ${WAIT}s: SIGTERM"
        kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
        wait_gone 15 "$child" || { kill -KILL -- "-$child" 2>/dev/null || kill -KILL "$child" 2>/dev/null || true; }
      fi
    done
  fi
  rm -f "$file"
  echo "worker: stopped"
}

stop_server() {
  local file="$RUN/prefect-server.pid" pid
  if [ ! -f "$file" ]; then
    echo "Prefect server: not started by make up (no run/prefect-server.pid)"
    return
  fi
  pid=$(cat "$file")
  if ! group_alive "$pid"; then
    echo "Prefect server: already stopped"
    rm -f "$file"
    return
  fi
  echo "Prefect server: stopping (process group $pid, SIGTERM)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  local until=$((SECONDS + 30))
  while group_alive "$pid" && [ "$SECONDS" -lt "$until" ]; do sleep 0.5; done
  if group_alive "$pid"; then
    echo "Prefect server: still running after 30 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  echo "Prefect server: stopped"
}

stop_worker
stop_server

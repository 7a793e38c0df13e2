#!/usr/bin/env bash
# Stop what `scripts/up.sh` or `scripts/up-scaled.sh` started, and nothing else (the process ids are in
# run/*.pid, or in $CONUM_RUN_DIR):
# 1. each worker, with SIGINT (a worker started with SIGINT ignored would not stop: up.sh takes
#    care of that); the flow runs it started run in sessions of their own: they are tracked as
#    its children, given WAIT seconds (default 60) to finish, then SIGTERM — a batch run loses at
#    most the chunk in progress, which rolls back, and the next run does it;
# 2. each Prefect server and the background services, with SIGTERM (its process group: the process and its
#    own children).
# A pid file whose process is gone, or whose pid now names a process that is not ours, is only deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${CONUM_RUN_DIR:-$(pwd)/run}"
source scripts/pids.sh
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
  local file=$1 name pid child runs=()
  name=$(basename "$file" .pid)
  pid=$(cat "$file")
  if ! ours "$file" || ! alive "$pid"; then
    echo "$name: already stopped"
    rm -f "$file"
    return
  fi
  echo "$name: stopping (pid $pid, SIGINT)"
  runs+=($(pgrep -P "$pid" || true))
  kill -INT "$pid" 2>/dev/null || true
  local until=$((SECONDS + WAIT))
  while alive "$pid" && [ "$SECONDS" -lt "$until" ]; do
    runs+=($(pgrep -P "$pid" || true)) # a run being submitted when the signal came
    sleep 0.5
  done
  if alive "$pid"; then
    echo "$name: still running after ${WAIT}s: SIGINT again (it then kills itself)"
    kill -INT "$pid" 2>/dev/null || true
    wait_gone 15 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; }
  fi
  if [ "${#runs[@]}" -gt 0 ] && ! wait_gone "$WAIT" "${runs[@]}"; then
    for child in "${runs[@]}"; do
      if alive "$child" && ps -o args= -p "$child" | grep -q prefect; then # not a reused pid
        echo "$name: flow run process $child still running after ${WAIT}s: SIGTERM"
        kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
        wait_gone 15 "$child" || { kill -KILL -- "-$child" 2>/dev/null || kill -KILL "$child" 2>/dev/null || true; }
      fi
    done
  fi
  rm -f "$file"
  echo "$name: stopped"
}

stop_server() {
  local file=$1 name pid
  name=$(basename "$file" .pid)
  pid=$(cat "$file")
  if ! ours "$file"; then # gone, or its pid reused by a process that is not ours
    echo "$name: already stopped"
    rm -f "$file"
    return
  fi
  echo "$name: stopping (process group $pid, SIGTERM)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  local until=$((SECONDS + 30))
  while group_alive "$pid" && [ "$SECONDS" -lt "$until" ]; do sleep 0.5; done
  if group_alive "$pid"; then
    echo "$name: still running after 30 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  echo "$name: stopped"
}

shopt -s nullglob
workers=("$RUN"/prefect-worker*.pid)
servers=("$RUN"/prefect-server*.pid "$RUN"/prefect-services*.pid) # globs: a missing file is left out
[ "${#workers[@]}" -gt 0 ] || echo "worker: not started by make up (no run/prefect-worker*.pid)"
[ "${#servers[@]}" -gt 0 ] || echo "Prefect server: not started by make up (no run/prefect-server*.pid)"
for file in "${workers[@]}"; do stop_worker "$file" & done
wait
for file in "${servers[@]}"; do stop_server "$file"; done

# Pid files of the processes `make up` starts (sourced by up.sh, up-scaled.sh and down.sh).
# A pid file names our process only while that process runs a Prefect command: after a crash or a
# reboot the pid may belong to anyone, and such a file is stale.

# ours PIDFILE: true if the pid file names a running Prefect process (the process, or a member of its group)
ours() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  if kill -0 "$pid" 2>/dev/null; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q prefect
  else
    pgrep -g "$pid" -f prefect >/dev/null 2>&1 # the leader is gone, members of its group are left
  fi
}

# clean_stale FOLDER: delete the pid files of FOLDER that name no process of ours
clean_stale() {
  local file
  for file in "$1"/*.pid; do
    [ -e "$file" ] || continue
    if ! ours "$file"; then
      echo "removing the stale $(basename "$file") (its process is gone)"
      rm -f "$file"
    fi
  done
}

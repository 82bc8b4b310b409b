# Helpers shared by stack.sh and run_local.sh (sourced, not run).
# Background services run in their own session (setsid), with their pid in $STACK_DIR/pids/NAME.pid
# and a marker (a string of their command line) in NAME.marker, so `stop` ends exactly the process
# group it started, and nothing else if the pid was reused.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${AFFINITY_STACK_DIR:-$ROOT/.stack}"
case "$STACK_DIR" in /*) ;; *) STACK_DIR="$ROOT/$STACK_DIR" ;; esac
VENV="$ROOT/.tools/venv"
PY="$VENV/bin/python"

# Never fails, even when stderr is gone (a closed pipe while stopping on Ctrl-C).
log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2 2>/dev/null || true; }

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_bg NAME MARKER CMD...: run CMD detached, log to $STACK_DIR/logs/NAME.log.
start_bg() {
  local name="$1" marker="$2"
  shift 2
  mkdir -p "$STACK_DIR/pids" "$STACK_DIR/logs"
  setsid "$@" >"$STACK_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/pids/$name.pid"
  printf '%s' "$marker" >"$STACK_DIR/pids/$name.marker"
}

pid_of() { cat "$STACK_DIR/pids/$1.pid" 2>/dev/null || true; }

# alive PID: the process exists and is not a zombie waiting for its (adoptive) parent to reap it.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}

is_running() {
  local pid marker
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  marker="$(cat "$STACK_DIR/pids/$1.marker" 2>/dev/null || true)"
  [[ -z "$marker" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# stop NAME: TERM the process group, KILL it after 10 s.
stop() {
  local name="$1" pid i
  pid="$(pid_of "$name")"
  if [[ -n "$pid" ]] && is_running "$name"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$STACK_DIR/pids/$name.pid" "$STACK_DIR/pids/$name.marker"
}

# fail_with_log NAME MESSAGE: print the tail of a service log and exit 1.
fail_with_log() {
  log "$2 (last lines of $STACK_DIR/logs/$1.log):"
  tail -n 30 "$STACK_DIR/logs/$1.log" >&2 || true
  exit 1
}

# set_env FILE NAME VALUE: FILE's `export NAME=...` line becomes `export NAME=VALUE` (shell-quoted).
set_env() {
  local file="$1" name="$2" value="$3" tmp
  tmp="$file.tmp"
  grep -v "^export $name=" "$file" >"$tmp" || true
  printf 'export %s=%q\n' "$name" "$value" >>"$tmp"
  mv "$tmp" "$file"
}

# print_store FILE: the store of a local stack's env file, as a newcomer needs it.
print_store() {
  local site key url
  site="$(sed -n 's/^export AFFINITY_SITE=//p' "$1")"
  key="$(sed -n 's/^export AFFINITY_API_KEY=//p' "$1")"
  url="$(sed -n 's/^export AFFINITY_API_URL=//p' "$1")"
  log "your store: site id $site"
  log "  API key   $key   (this local stack's only; keep it out of anything you commit)"
  log "  API       $url"
  log "  in another shell: set -a && source $1 && set +a   (AFFINITY_API_URL, AFFINITY_SITE, AFFINITY_API_KEY,"
  log "    AFFINITY_IDENTITY_SECRET)"
  log "  an identity token for a logged-in customer (README, \"Identity tokens\"):"
  log "    cargo run -q -p affinity-admin -- identity-token --site \"\$AFFINITY_SITE\" --customer 42 --secret \"\$AFFINITY_IDENTITY_SECRET\""
}

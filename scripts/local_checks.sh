#!/usr/bin/env bash
# Checks against the running local stack (scripts/run_local.sh, e.g. the one fuzz_api.sh started):
#   scripts/local_checks.sh check_events_doc   every example of docs/EVENTS.md, on a store of its own
#   scripts/local_checks.sh local_deletion     a throw-away store deleted through the HTTP route and
#                                              finished by the schedule (scripts/local_deletion.py)
#   scripts/local_checks.sh attacks            issue 10's attacker over HTTP, each on a store of its own
#                                              (scripts/attacks.py)
# Each prints "NAME: N passed, M failed" and exits non-zero on a failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
[[ -s "$STACK_DIR/env" ]] && grep -q '^export AFFINITY_API_URL=' "$STACK_DIR/env" || {
  log "no running stack in $STACK_DIR (scripts/run_local.sh)"
  echo "${1:-local_checks}: 0 passed, 1 failed"
  exit 1
}
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
set +a
cargo build --quiet -p affinity-admin --bin affinity-admin || exit 1
target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
admin="$target_dir/debug/affinity-admin"
case "${1:-}" in
  check_events_doc)
    # A store of its own, as `make up` makes one: the examples read AFFINITY_SITE and AFFINITY_API_KEY.
    site="docs-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
    tenant="$("$admin" create-demo-tenant "$site")" || { echo "check_events_doc: 0 passed, 1 failed"; exit 1; }
    AFFINITY_SITE="$site" AFFINITY_API_KEY="$(printf '%s' "$tenant" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')" \
      "$PY" scripts/check_events_doc.py
    ;;
  local_deletion)
    "$PY" scripts/local_deletion.py --admin "$admin" --scheduler-log "$STACK_DIR/logs/scheduler.log"
    ;;
  attacks)
    "$PY" scripts/attacks.py --admin "$admin"
    ;;
  *) echo "usage: $0 check_events_doc|local_deletion|attacks" >&2; exit 2 ;;
esac

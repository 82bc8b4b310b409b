#!/usr/bin/env bash
# Fuzzes the running local stack against openapi.yaml with Schemathesis (property-based: schema-valid
# and schema-breaking requests on every operation), through scripts/gateway.py as a client would:
#   1. scripts/run_local.sh --no-reload (starts the functions and the gateway, or finds them running)
#   2. a store to fuzz against: `affinity-admin create-demo-tenant fuzz-<random>` (site id, API key)
#   3. schemathesis run openapi.yaml, twice:
#        anonymous:  every operation, no credentials (storefront routes, and every refusal: 401 without
#                    a key, 400/401 from the platform routes' signature checks);
#        api key:    every operation with the store's key (Authorization: Bearer), except the key
#                    rotation (it would rotate the key away from the rest of the run) and, for now,
#                    the consent grant (see the exclusion below);
#      the path's site_id is the store's in 70 % of the cases (else generated, mostly unknown sites).
#      Checks: no 5xx, status codes, content types, headers and bodies as the contract says, schema-
#      breaking input refused with a 4xx, no request slower than --request-timeout (a hang fails).
#   4. prints "fuzz_api: N cases, M failed" and exits non-zero on any failure.
# Bounds: AFFINITY_FUZZ_EXAMPLES cases per operation and phase (default 25), AFFINITY_FUZZ_SEED
# (default: a fixed seed, so a failure reproduces), each run under `timeout` (AFFINITY_FUZZ_TIMEOUT_S,
# default 420 s). Reports (JUnit, and a pytest file that replays each failure) in
# $STACK_DIR/fuzz/<run>/.
#
# Exceptions, per operation (scripts/schemathesis.toml says why at each):
# - the live and import ingest routes answer 200 to a body whose events break the schema: each event
#   stands or falls alone and is listed in `rejected` (the lookup likewise, per identity), so
#   negative_data_rejection does not apply there;
# - the BigCommerce callback exchanges the code at BigCommerce before anything else (its only proof);
#   locally BIGCOMMERCE_LOGIN_URL points at a closed port, so a well-formed callback gets the
#   documented 502 platform_error: 502 is expected there, any other 5xx still fails.
# Leaves the stack running (scripts/stack.sh down stops it).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

EXAMPLES="${AFFINITY_FUZZ_EXAMPLES:-25}"
SEED="${AFFINITY_FUZZ_SEED:-20261201}"
RUN_TIMEOUT="${AFFINITY_FUZZ_TIMEOUT_S:-420}"
OUT="$STACK_DIR/fuzz"
rm -rf "$OUT"
mkdir -p "$OUT"

# A closed port: the platforms' token endpoints refuse at once (no network, no 5 s wait).
export BIGCOMMERCE_LOGIN_URL="${BIGCOMMERCE_LOGIN_URL:-http://127.0.0.1:9}"
export SHOPIFY_BASE_URL="${SHOPIFY_BASE_URL:-http://127.0.0.1:9}"
AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/run_local.sh" --no-reload || { log "the local stack did not start"; exit 1; }
set -a
# shellcheck disable=SC1090
source "$STACK_DIR/env"
set +a

log "creating a store to fuzz against (affinity-admin create-demo-tenant)"
cargo build --quiet -p affinity-admin --bin affinity-admin || exit 1
target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
site="fuzz-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
tenant="$("$target_dir/debug/affinity-admin" create-demo-tenant "$site")" || { log "create-demo-tenant failed"; exit 1; }
api_key="$(printf '%s' "$tenant" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
log "store: site id $site"

# The configuration (checks, and the exceptions per operation, each with its reason) with the store's site id.
sed "s/@SITE@/$site/" scripts/schemathesis.toml >"$OUT/schemathesis.toml"

total=0
failed=0
# run NAME ARGS...: one schemathesis run; adds its case count and failures to the totals.
run() {
  local name="$1"
  shift
  local dir="$OUT/$name" rc
  mkdir -p "$dir"
  log "schemathesis ($name): up to $EXAMPLES cases per operation and phase, seed $SEED"
  timeout --kill-after=10 "$RUN_TIMEOUT" "$VENV/bin/schemathesis" --config-file "$OUT/schemathesis.toml" \
    run openapi.yaml --url "$AFFINITY_API_URL" --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" --seed "$SEED" --generation-database none --workers 1 --request-timeout 20 --no-color \
    --report junit,ndjson --report-dir "$dir" --output-truncate false --warnings off "$@" \
    >"$dir/output.txt" 2>&1
  rc=$?
  local n
  n="$("$PY" - "$dir" <<'PYEOF'
import json, pathlib, sys
# Every case Schemathesis ran: one ScenarioFinished event per scenario, with its recorder's cases.
n = 0
for path in pathlib.Path(sys.argv[1]).glob("*.ndjson"):
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        for kind, body in ev.items():
            if kind == "ScenarioFinished":
                n += len((body.get("recorder") or {}).get("cases") or {})
print(n)
PYEOF
)"
  total=$((total + ${n:-0}))
  if [[ $rc == 124 || $rc == 137 ]]; then
    log "schemathesis ($name) did not finish in ${RUN_TIMEOUT} s: a hang (see $dir/output.txt)"
    failed=$((failed + 1))
  elif [[ $rc != 0 ]]; then
    log "schemathesis ($name) found failures (exit $rc): $dir/output.txt"
    sed -n '/FAILURES/,$p' "$dir/output.txt" | head -n 200 >&2
    failed=$((failed + 1))
  fi
  tail -n 12 "$dir/output.txt" >&2
  log "schemathesis ($name): $n cases"
}

run anonymous
# Not the key rotation (it would rotate the key away from the rest of the run). The messaging-consent
# grant is fuzzed too: create-demo-tenant makes a complete store (with its pepper), so events and
# lookups with an email or phone keep working once consent is granted.
exclude=(--exclude-operation-id rotateApiKey)
run api-key --header "Authorization: Bearer $api_key" "${exclude[@]}"

echo "fuzz_api: $total cases, $failed failed"
((failed == 0))

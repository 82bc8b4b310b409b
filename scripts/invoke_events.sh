#!/usr/bin/env bash
# Invokes every events/*.json with `cargo lambda invoke --data-file` against `cargo lambda watch`,
# each file on the binary of the function that receives it (scripts/check_events.py, which also
# checks the file's shape for `sam local invoke -e`; sam local itself needs a container runtime).
#
#   - runs on a stack of its own (DynamoDB Local + moto in $AFFINITY_STACK_DIR/invoke-events, fresh,
#     stopped at the end): it never writes into a running `make up` stack, and every answer below is
#     the answer of a stack that holds no store;
#   - builds the template's binaries (debug, `cargo build --workspace`, so the workspace's feature set
#     is reused from `cargo test --workspace`),
#   - starts its own `cargo lambda watch --only-lambda-apis` on a free port of 127.0.0.1 and one
#     instance of each binary on it (as scripts/run_local.sh --no-reload does), and stops them at the
#     end, pass or fail,
#   - a file is as expected when the function answers with the status of the EXPECTED table below
#     (API Gateway events), or with a result (the schedule, the stream). Most sample requests are
#     refused on a fresh stack (the sample store "demo" does not exist, the platforms are not
#     reachable): the check is that each is answered as the table says, not that it succeeds.
#
# Ends with "invoke_events: N as expected, M not" and exits 1 if any was not.
set -euo pipefail
# A stack of its own, below the caller's stack directory (make test: .stack/test/invoke-events).
export AFFINITY_STACK_DIR="${AFFINITY_STACK_DIR:-.stack}/invoke-events"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export PATH="$VENV/bin:$PATH" # cargo-lambda

# file -> expected answer on a stack without stores: an HTTP status and, when the answer is JSON, its
# error code; or "result" (a non-HTTP invocation answered without a function error).
declare -A EXPECTED=(
  [events/aggregate-stream.json]="result"                         # the sample's site has no store: ignored
  [events/consent-bigcommerce-callback.json]="502"                # the code is exchanged at a closed port
  [events/consent-bigcommerce-load.json]="401"                    # the sample's JWT is not the local app's
  [events/consent-bigcommerce-uninstall.json]="401 bad_signed_payload"
  [events/consent-messaging-consent.json]="404 unknown_site"      # no store "demo"
  [events/consent-shopify-callback.json]="400"                    # the sample's timestamp is stale (HTML page)
  [events/consent-shopify-install.json]="400"                     # likewise
  [events/ingest-import.json]="404 unknown_site"
  [events/ingest-live.json]="404 unknown_site"
  [events/recommend.json]="404 unknown_site"
  [events/recommend-also-viewed.json]="404 unknown_site"          # each list type (issue 11): no store "demo"
  [events/recommend-bought-together.json]="404 unknown_site"
  [events/recommend-for-you.json]="404 unknown_site"
  [events/recommend-recently-viewed.json]="404 unknown_site"
  [events/recommend-similar.json]="404 unknown_site"
  [events/recommend-trending.json]="404 unknown_site"
  [events/tenant-delete-erase-shopper.json]="404 unknown_site"
  [events/tenant-delete-export-shopper.json]="404 unknown_site"
  [events/tenant-delete-schedule.json]="result"                   # nothing pending
  [events/tenant-delete-status.json]="404 not_found"              # no deletion of this tenant
  [events/tenant-delete.json]="404 not_found"                     # no such tenant
  [events/webhook-shopify-app-uninstalled.json]="200"             # signed with the local secret; unknown shop
  [events/webhook-shopify-customers-data-request.json]="200"      # likewise (Shopify wants a 200)
  [events/webhook-shopify-customers-redact.json]="200"
  [events/webhook-shopify-shop-redact.json]="200"
)

started=()
cleanup() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop "${started[i]}"; done # functions, then watch
  "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/stack.sh" up
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
set +a

mapping="$("$PY" scripts/check_events.py)" || { log "events/ files fail their shape check"; exit 1; }
mapfile -t bins < <(cut -f3 <<<"$mapping" | sort -u)

log "building ${bins[*]} (debug)"
build_args=()
for b in "${bins[@]}"; do build_args+=(--bin "$b"); done
cargo build --quiet --workspace "${build_args[@]}"
target_dir="$(cargo metadata --no-deps --format-version 1 |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

port="$(free_port)"
start_bg events-watch "cargo-lambda" env -u RUST_LOG "$VENV/bin/cargo-lambda" lambda watch \
  -A 127.0.0.1 -P "$port" --only-lambda-apis
started+=(events-watch)
ready=0
for _ in $(seq 1 100); do
  is_running events-watch || fail_with_log events-watch "cargo lambda watch exited"
  if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' \
    "$port" 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
[[ $ready == 1 ]] || fail_with_log events-watch "cargo lambda watch is not listening after 10 s"
# The functions' own settings: the local placeholders the sample webhooks are signed with, and
# platform URLs that refuse at once (no call leaves the machine).
for bin in "${bins[@]}"; do
  start_bg "events-fn-$bin" "$target_dir/debug/$bin" env \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$bin" AWS_LAMBDA_FUNCTION_NAME="$bin" \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 RUST_LOG="${RUST_LOG:-warn}" \
    SHOPIFY_CLIENT_ID=local-shopify-client-id SHOPIFY_CLIENT_SECRET=local-shopify-client-secret \
    BIGCOMMERCE_CLIENT_ID=local-bigcommerce-client-id \
    BIGCOMMERCE_CLIENT_SECRET=local-bigcommerce-client-secret \
    SHOPIFY_BASE_URL=http://127.0.0.1:9 BIGCOMMERCE_LOGIN_URL=http://127.0.0.1:9 PLATFORM_TIMEOUT_MS=1000 \
    "$target_dir/debug/$bin"
  started+=("events-fn-$bin")
done

passed=0
failed=0
while IFS=$'\t' read -r file function bin; do
  expected="${EXPECTED[$file]:-}"
  if [[ -z "$expected" ]]; then
    failed=$((failed + 1))
    printf 'invoke_events: %-52s -> %-14s NOT AS EXPECTED: the EXPECTED table has no answer for it\n' "$file" "$bin" >&2
    continue
  fi
  if ! is_running "events-fn-$bin"; then
    failed=$((failed + 1))
    printf 'invoke_events: %-52s -> %-14s NOT AS EXPECTED: the function exited: %s\n' "$file" "$bin" \
      "$(grep -m1 -e panicked -e Error "$STACK_DIR/logs/events-fn-$bin.log" || tail -n 1 "$STACK_DIR/logs/events-fn-$bin.log")" >&2
    continue
  fi
  out="$(timeout 30 "$VENV/bin/cargo-lambda" lambda invoke "$bin" --invoke-address 127.0.0.1 \
    --invoke-port "$port" --data-file "$file" --output-format json 2>&1)" && rc=0 || rc=$?
  verdict="$("$PY" - "$file" "$rc" "$out" "$expected" <<'EOF'
import json, sys
file, rc, out, expected = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
http = "routeKey" in json.load(open(file))
if rc != 0:
    print("bad invoke exited %d: %s" % (rc, out.strip().splitlines()[-1] if out.strip() else ""))
    sys.exit()
try:
    answer = json.loads(out)
except ValueError:
    print("bad not JSON: %s" % out[:200])
    sys.exit()
if not http:
    if expected == "result":
        print("ok expected a result, got %s" % json.dumps(answer)[:120])
    else:
        print("bad expected %s, got a result: %s" % (expected, json.dumps(answer)[:120]))
    sys.exit()
status = answer.get("statusCode") if isinstance(answer, dict) else None
if not isinstance(status, int):
    print("bad no HTTP response: %s" % out[:200])
    sys.exit()
try:
    code = " " + json.loads(answer.get("body") or "")["error"]["code"]
except (ValueError, KeyError, TypeError):
    code = ""
want_status, _, want_code = expected.partition(" ")
ok = str(status) == want_status and (not want_code or code.strip() == want_code)
print("%s expected %s, got %d%s" % ("ok" if ok else "bad", expected, status, code))
EOF
)"
  if [[ "$verdict" == ok* ]]; then
    passed=$((passed + 1))
    printf 'invoke_events: %-52s -> %-14s %s\n' "$file" "$bin" "${verdict#ok }" >&2
  else
    failed=$((failed + 1))
    printf 'invoke_events: %-52s -> %-14s NOT AS EXPECTED: %s\n' "$file" "$bin" "${verdict#bad }" >&2
  fi
done <<<"$mapping"

echo "invoke_events: $passed as expected, $failed not"
((failed == 0))

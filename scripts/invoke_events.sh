#!/usr/bin/env bash
# Invokes every events/*.json with `cargo lambda invoke --data-file` against `cargo lambda watch`,
# each file on the binary of the function that receives it (scripts/check_events.py, which also
# checks the file's shape for `sam local invoke -e`; sam local itself needs a container runtime).
#
#   - builds the template's binaries (debug, `cargo build --workspace`, so the workspace's feature set
#     is reused from `cargo test --workspace`),
#   - starts its own `cargo lambda watch --only-lambda-apis` on a free port of 127.0.0.1 and one
#     instance of each binary on it (as scripts/run_local.sh --no-reload does), and stops them at the
#     end, pass or fail,
#   - passes a file when the function answers it: an HTTP response for API Gateway events (any status
#     but 500: the sample tenant "demo" may not exist, the platforms are not reachable), a result for
#     the schedule and the stream. A function error, a crash or a 500 fails.
#
# Needs the local stack's environment (AWS_ENDPOINT_URL_*, table names, KMS_KEY_ID): run it through
# `make test`, or `scripts/stack.sh up && set -a && source .stack/env && set +a` first.
# Ends with "invoke_events: N passed, M failed"; exits 1 if any failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export PATH="$VENV/bin:$PATH" # cargo-lambda
[[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" && -n "${KMS_KEY_ID:-}" ]] || {
  log "needs the local stack's environment: scripts/stack.sh up, then source its env"
  exit 1
}

mapping="$("$PY" scripts/check_events.py)" || { log "events/ files fail their shape check"; exit 1; }
mapfile -t bins < <(cut -f3 <<<"$mapping" | sort -u)

log "building ${bins[*]} (debug)"
build_args=()
for b in "${bins[@]}"; do build_args+=(--bin "$b"); done
cargo build --quiet --workspace "${build_args[@]}"
target_dir="$(cargo metadata --no-deps --format-version 1 |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

started=()
cleanup() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop "${started[i]}"; done # functions, then watch
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
  if ! is_running "events-fn-$bin"; then
    failed=$((failed + 1))
    printf 'invoke_events: %-52s -> %-14s FAIL the function exited: %s\n' "$file" "$bin" \
      "$(grep -m1 -e panicked -e Error "$STACK_DIR/logs/events-fn-$bin.log" || tail -n 1 "$STACK_DIR/logs/events-fn-$bin.log")" >&2
    continue
  fi
  out="$(timeout 30 "$VENV/bin/cargo-lambda" lambda invoke "$bin" --invoke-address 127.0.0.1 \
    --invoke-port "$port" --data-file "$file" --output-format json 2>&1)" && rc=0 || rc=$?
  verdict="$("$PY" - "$file" "$rc" "$out" <<'EOF'
import json, sys
file, rc, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
http = "routeKey" in json.load(open(file))
if rc != 0:
    print("FAIL invoke exited %d: %s" % (rc, out.strip().splitlines()[-1] if out.strip() else ""))
    sys.exit()
try:
    answer = json.loads(out)
except ValueError:
    print("FAIL not JSON: %s" % out[:200])
    sys.exit()
if http:
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if not isinstance(status, int):
        print("FAIL no HTTP response: %s" % out[:200])
    elif status == 500:
        print("FAIL 500: %s" % answer.get("body", "")[:200])
    else:
        print("ok %d" % status)
else:
    print("ok %s" % json.dumps(answer)[:120])
EOF
)"
  if [[ "$verdict" == ok* ]]; then
    passed=$((passed + 1))
    printf 'invoke_events: %-52s -> %-14s %s\n' "$file" "$bin" "${verdict#ok }" >&2
  else
    failed=$((failed + 1))
    printf 'invoke_events: %-52s -> %-14s %s\n' "$file" "$bin" "$verdict" >&2
  fi
done <<<"$mapping"

echo "invoke_events: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# make bench: every measurement of issue 7, raw results in bench/results/, tables in BENCHMARKS.md.
#
#   1. in process: cargo bench -p affinity --bench core (criterion)
#   2. cold start: each function's RELEASE binary against a fake runtime API (first poll, peak RSS)
#   3. sizes: cargo lambda build --release --arm64 (stripped bootstrap per function)
#   4. the local stack with RELEASE binaries (DynamoDB Local + moto in .stack/bench, cargo lambda's
#      runtime API, the gateway; no stream follower). Per round, a fresh tenant: the REES46 replay
#      through the live ingest route straight into the ingest binary (affinity-bench ingest --direct:
#      a runtime API inside the load client, no gateway.py, no cargo lambda) and the same DynamoDB
#      writes from a bare SDK loop (affinity-bench floor-writes, into copies of the tables), then the
#      stream drained into aggregate; the "aws usage" log lines summed per phase. Then once through
#      the HTTP API (gateway.py + cargo lambda), the cost of the way in (requests answered before
#      any DynamoDB call), recommendations (direct and HTTP) and their read floor (GetItem,
#      BatchGetItem)
#   5. bench/report.py: BENCHMARKS.md
#
# Knobs (environment): BENCH_CONCURRENCY (4: clients, and instances per function), BENCH_ROUNDS (3),
# BENCH_COLDSTART_RUNS (20), BENCH_RECOMMEND_REQUESTS (2000), BENCH_NULL_REQUESTS (1000),
# BENCH_SKIP=criterion,coldstart,sizes,stack (any of them; inside the stack phase also floor,
# http-ingest, null: the steps recommendations do not need), BENCH_KEEP_STACK=1 (leave the stack up
# at the end, for a look at it: `AFFINITY_STACK_DIR=.stack/bench scripts/stack.sh down` stops it),
# BENCH_RESULTS (another results directory: then BENCHMARKS.md is not rewritten), AFFINITY_STACK_DIR.
# Recommendations alone (their p50/p99 against one GetItem), into a scratch directory:
#   BENCH_SKIP=criterion,coldstart,sizes,floor,http-ingest,null BENCH_ROUNDS=1 \
#     BENCH_RESULTS=/tmp/rec AFFINITY_STACK_DIR=.stack/NAME bench/run.sh
# The stack lives in .stack/bench (its own ports and pids), beside any `make up`; it is stopped at
# the end, pass or fail.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AFFINITY_STACK_DIR="${AFFINITY_STACK_DIR:-$ROOT/.stack/bench}"
# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

CONCURRENCY="${BENCH_CONCURRENCY:-4}"
ROUNDS="${BENCH_ROUNDS:-3}"
COLD_RUNS="${BENCH_COLDSTART_RUNS:-20}"
REC_REQUESTS="${BENCH_RECOMMEND_REQUESTS:-2000}"
NULL_REQUESTS="${BENCH_NULL_REQUESTS:-1000}"
SKIP="${BENCH_SKIP:-}"
DATA="$ROOT/data/rees46-2019-oct-sample.csv"
RESULTS="${BENCH_RESULTS:-$ROOT/bench/results}"
FUNCTIONS=(ingest recommend aggregate consent tenant-delete)
SERVED=(ingest recommend aggregate) # the functions the stack phase calls
export PATH="$VENV/bin:$PATH"        # cargo-lambda and its zig

skipped() { [[ ",$SKIP," == *",$1,"* ]]; }
started=$(date +%s)
step() { log "[$(($(date +%s) - started)) s] $*"; }
# timed NAME CMD...: runs CMD, records its wall seconds in $RESULTS/steps.json.
timed() {
  local name="$1" t0 t1
  shift
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  "$PY" - "$RESULTS/steps.json" "$name" "$t0" "$t1" <<'PYEOF'
import json, os, sys
path, name, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
d = json.load(open(path)) if os.path.exists(path) else {}
d[name] = round(t1 - t0, 2)
json.dump(d, open(path, "w"), indent=1)
PYEOF
}

mkdir -p "$RESULTS"
find "$RESULTS" -maxdepth 1 \( -name '*.json' -o -name '*.log' \) ! -name lambda-rustc-flags.json -delete
"$PY" - "$RESULTS/meta.json" "$CONCURRENCY" "$ROUNDS" "$COLD_RUNS" "$REC_REQUESTS" <<'PYEOF'
import json, os, platform, subprocess, sys, time
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "commit": sh("git", "rev-parse", "--short", "HEAD"),
    "dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
    "dirty_files": [l.split(None, 1)[1] for l in sh("git", "status", "--porcelain", "--untracked-files=no").splitlines() if l.strip()],
    "machine": platform.machine(), "cpus": os.cpu_count(),
    "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "rustc": sh("rustc", "--version"),
    "concurrency": int(sys.argv[2]), "rounds": int(sys.argv[3]), "coldstart_runs": int(sys.argv[4]),
    "recommend_requests": int(sys.argv[5]),
}, open(sys.argv[1], "w"), indent=1)
PYEOF

step "setup (tools into .tools/)"
"$ROOT/scripts/setup.sh" >&2

target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
REL="$target_dir/release"

step "building the release binaries (functions, affinity-bench, bare-lambda)"
# By package (-p): the workspace's default members are the functions only. Each function's package is
# named like its binary.
bin_args=(-p affinity-bench)
for b in "${FUNCTIONS[@]}"; do bin_args+=(-p "$b" --bin "$b"); done
for b in affinity-bench bare-lambda; do bin_args+=(--bin "$b"); done
timed build_release cargo build --release --quiet "${bin_args[@]}"
BENCH="$REL/affinity-bench"

# --- 1. in process ----------------------------------------------------------------------------
if ! skipped criterion; then
  step "criterion: cargo bench -p affinity --bench core"
  rm -rf "$target_dir/criterion"
  timed criterion bash -c 'cargo bench -p affinity --bench core 2>&1 | tee "$0"' "$RESULTS/criterion.log" >&2
  "$PY" - "$target_dir/criterion" >"$RESULTS/criterion.json" <<'PYEOF'
import glob, json, os, sys
out = {}
for est in glob.glob(os.path.join(sys.argv[1], "**", "new", "estimates.json"), recursive=True):
    d = os.path.dirname(est)
    bench = json.load(open(os.path.join(d, "benchmark.json")))
    e = json.load(open(est))
    out[bench["full_id"]] = {
        "median_ns": e["median"]["point_estimate"],
        "median_ci_ns": [e["median"]["confidence_interval"]["lower_bound"], e["median"]["confidence_interval"]["upper_bound"]],
        "mean_ns": e["mean"]["point_estimate"],
        "mad_ns": e["median_abs_dev"]["point_estimate"],
        "elements": (bench.get("throughput") or {}).get("Elements"),
    }
json.dump(out, sys.stdout, indent=1)
PYEOF
  grep -E '^(profile item|popularity item).*bytes' "$RESULTS/criterion.log" >"$RESULTS/criterion-sizes.log" || true
fi

# --- 2. cold start ----------------------------------------------------------------------------
if ! skipped coldstart; then
  step "cold start: $COLD_RUNS runs per binary against a fake runtime API"
  memory="$("$PY" scripts/cfn_template.py global MemorySize)"
  cold_env=(
    PATH=/usr/bin:/bin AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
    # Nothing listens on port 9 of loopback: a function that called AWS at start would fail to.
    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:9 AWS_ENDPOINT_URL_KMS=http://127.0.0.1:9
    TENANTS_TABLE=affinity-tenants EVENTS_TABLE=affinity-events PROFILES_TABLE=affinity-profiles
    POPULARITY_TABLE=affinity-popularity KMS_KEY_ID=alias/affinity-local-data
    EVENT_TTL_DAYS=90 AFFINITY_HALF_LIFE_DAYS=30 RUST_LOG=info
    SHOPIFY_CLIENT_ID=bench SHOPIFY_CLIENT_SECRET=bench BIGCOMMERCE_CLIENT_ID=bench
    BIGCOMMERCE_CLIENT_SECRET=bench
    AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE="${memory:-256}"
    AWS_LAMBDA_LOG_STREAM_NAME=bench
  )
  env_args=()
  for kv in "${cold_env[@]}"; do env_args+=(--env "$kv"); done
  bins=()
  for b in "${FUNCTIONS[@]}" bare-lambda; do bins+=("$REL/$b"); done
  timed coldstart bash -c '"$@" >"$0"' "$RESULTS/coldstart.json" \
    "$BENCH" coldstart --runs "$COLD_RUNS" "${env_args[@]}" "${bins[@]}"
  # The same with one CA bundle file and no CA directory: what loading the system's roots costs.
  "$BENCH" coldstart --runs "$COLD_RUNS" "${env_args[@]}" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --env SSL_CERT_DIR=/nonexistent "${bins[@]}" >"$RESULTS/coldstart-cafile.json"
fi

# --- 3. sizes ---------------------------------------------------------------------------------
if ! skipped sizes; then
  step "sizes: cargo lambda build --release --arm64"
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu >&2
  fi
  fn_args=()
  for b in "${FUNCTIONS[@]}"; do fn_args+=(--bin "$b"); done
  # --verbose: cargo prints each rustc command line, i.e. the profile settings cargo lambda applied.
  timed sizes_build bash -c 'cargo lambda build --release --arm64 --verbose "$@" >"$0" 2>&1 || { tail -40 "$0" >&2; exit 1; }' \
    "$RESULTS/lambda-build.log" "${fn_args[@]}"
  "$PY" - "$target_dir" "$RESULTS/lambda-build.log" "${FUNCTIONS[@]}" >"$RESULTS/sizes.json" <<'PYEOF'
import json, os, re, subprocess, sys
target, log, names = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(log, errors="replace").read()
out = {}
for n in names:
    p = os.path.join(target, "lambda", n, "bootstrap")
    info = subprocess.run(["file", "-b", p], capture_output=True, text=True).stdout.strip()
    crate = n.replace("-", "_")
    flags = None
    for line in text.splitlines():
        if "Running `" in line and f"--crate-name {crate} " in line and "--crate-type bin" in line:
            flags = sorted(set(re.findall(r"-C (?:opt-level=\S+|lto(?:=\S+)?|codegen-units=\S+|panic=\S+|strip=\S+|target-cpu=\S+|debuginfo=\S+)", line)))
            flags = [f.rstrip("`") for f in flags]
    # Only a rebuild prints the rustc lines: keep the last ones seen (lambda-rustc-flags.json survives runs).
    saved = os.path.join(os.path.dirname(log), "lambda-rustc-flags.json")
    known = json.load(open(saved)) if os.path.exists(saved) else {}
    if flags:
        known[n] = flags
    json.dump(known, open(saved, "w"), indent=1)
    out[n] = {"bytes": os.path.getsize(p), "file": info, "rustc_flags": flags or known.get(n),
              "rustc_flags_from_this_build": bool(flags)}
env = sorted(set(re.findall(r"CARGO_PROFILE_RELEASE_\w+=\S+", text)))
# cargo lambda logs what it adds to the release profile ("release optimizations config=[...]").
extra = re.findall(r"release optimizations config=(.*)", text)
json.dump({"functions": out, "profile_env": env, "cargo_lambda_config": extra[0].strip() if extra else None}, sys.stdout, indent=1)
PYEOF
fi

# --- 4. the local stack -----------------------------------------------------------------------
if ! skipped stack; then
  trap '"$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true' EXIT
  step "stack: DynamoDB Local + moto in $STACK_DIR, tables, floor tables"
  "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
  AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/stack.sh" up
  set -a
  # shellcheck disable=SC1091
  source "$STACK_DIR/env"
  set +a
  # The floor's tables: the template's definitions under another prefix (keys, by_site, stream, TTL).
  AFFINITY_TABLE_PREFIX=affinity-floor "$PY" scripts/create_tables.py >"$STACK_DIR/floor.env"
  FLOOR_EVENTS="$(sed -n 's/^export EVENTS_TABLE=//p' "$STACK_DIR/floor.env")"
  FLOOR_PROFILES="$(sed -n 's/^export PROFILES_TABLE=//p' "$STACK_DIR/floor.env")"
  export SHOPIFY_CLIENT_ID=bench SHOPIFY_CLIENT_SECRET=bench BIGCOMMERCE_CLIENT_ID=bench BIGCOMMERCE_CLIENT_SECRET=bench

  step "functions: release binaries, $CONCURRENCY instances each, on cargo lambda's runtime API; gateway"
  watch_port="$(free_port)"
  gateway_port="$(free_port)"
  while [[ "$gateway_port" == "$watch_port" ]]; do gateway_port="$(free_port)"; done
  start_bg functions "cargo-lambda" env -u RUST_LOG "$VENV/bin/cargo-lambda" lambda watch \
    -A 127.0.0.1 -P "$watch_port" --disable-cors --only-lambda-apis
  memory="$("$PY" scripts/cfn_template.py global MemorySize)"
  for bin in "${SERVED[@]}"; do
    for i in $(seq 1 "$CONCURRENCY"); do
      AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$watch_port/.rt/$bin" AWS_LAMBDA_FUNCTION_NAME="$bin" \
        AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE="${memory:-256}" \
        start_bg "fn-$bin-$i" "$REL/$bin" bash -c \
        'while :; do "$0"; echo "bench: $0 exited ($?), restarting" >&2; sleep 1; done' "$REL/$bin"
    done
  done
  start_bg gateway "gateway.py" "$PY" scripts/gateway.py --port "$gateway_port" --watch-port "$watch_port"
  ready=0
  for _ in $(seq 1 150); do
    is_running functions || fail_with_log functions "cargo lambda watch exited"
    is_running gateway || fail_with_log gateway "gateway exited"
    if "$PY" - "$watch_port" "$gateway_port" <<'PYEOF'; then ready=1; break; fi
import socket, sys, urllib.request, urllib.error
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/__ready", timeout=1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 404 else 1)
except OSError:
    sys.exit(1)
PYEOF
    sleep 0.2
  done
  [[ $ready == 1 ]] || fail_with_log functions "not ready after 30 s"
  API="http://127.0.0.1:$gateway_port"
  LOGS="$STACK_DIR/logs"
  usage_since() { # usage_since MARKS BINARY [PREFIX DIR]
    "$PY" bench/usage.py since "${4:-$LOGS}" "$1" "$2" "${3:-fn}"
  }
  mark() { "$PY" bench/usage.py mark "$LOGS" >"$1"; }
  health() { # health NAME: DynamoDB Local's latency per table now (bench/health.py)
    "$PY" bench/health.py "$TENANTS_TABLE" "$EVENTS_TABLE" "$PROFILES_TABLE" "$POPULARITY_TABLE" \
      "$FLOOR_EVENTS" "$FLOOR_PROFILES" >"$RESULTS/health-$1.json" || true
  }
  # Lets the last log lines of the functions reach their files.
  settle() { sleep 1; }

  # The first call of each instance pays its own start (and the first SDK connection): warm them.
  warm_site="bench-warm-$$"
  "$BENCH" tenant --site "$warm_site" >/dev/null
  "$BENCH" ingest --api "$API" --site "$warm_site" --max-requests $((CONCURRENCY * 8)) --concurrency "$CONCURRENCY" --data "$DATA" >/dev/null
  "$BENCH" recommend --api "$API" --site "$warm_site" --requests $((CONCURRENCY * 8)) --concurrency "$CONCURRENCY" --data "$DATA" >/dev/null
  # DynamoDB Local is a JVM: its JIT warms up on the first few thousand requests. Warm it on the floor
  # tables, so that round 1 is not the slow one.
  "$BENCH" floor-writes --site "$warm_site" --events-table "$FLOOR_EVENTS" --profiles-table "$FLOOR_PROFILES" \
    --concurrency "$CONCURRENCY" --data "$DATA" --max-requests 2000 >/dev/null
  # ...and aggregate, with the warm-up's stream records, so round 1 counts only its own.
  "$PY" scripts/stream_pump.py --drain --watch-port "$watch_port" 2>/dev/null

  drain() { # drain OUT: the stream into aggregate, its usage lines summed into OUT
    mark "$STACK_DIR/mark.json"
    local t0 t1
    t0=$(date +%s.%N)
    "$PY" scripts/stream_pump.py --drain --watch-port "$watch_port" 2>"${1%.json}.log"
    t1=$(date +%s.%N)
    settle
    usage_since "$STACK_DIR/mark.json" aggregate |
      "$PY" -c 'import json, sys; d = json.load(sys.stdin); d["drain_s"] = round(float(sys.argv[2]) - float(sys.argv[1]), 2); json.dump(d, sys.stdout)' "$t0" "$t1" >"$1"
  }
  # Straight into the function (bench/src/direct.rs): its release binary, $CONCURRENCY instances,
  # polling a runtime API inside affinity-bench; no gateway.py, no cargo lambda.
  direct_args() { echo --direct "$REL/$1" --instances "$CONCURRENCY" --log-dir "$2"; }

  run_id="$(date +%H%M%S)"
  for r in $(seq 1 "$ROUNDS"); do
    site="bench-$run_id-r$r"
    "$BENCH" tenant --site "$site" >"$RESULTS/round$r-tenant.json"
    floor() {
      step "round $r: floor (bare SDK loop, $CONCURRENCY at a time)"
      health "round$r-floor"
      "$BENCH" floor-writes --site "$site" --events-table "$FLOOR_EVENTS" --profiles-table "$FLOOR_PROFILES" \
        --concurrency "$CONCURRENCY" --data "$DATA" >"$RESULTS/round$r-floor.json"
    }
    ingest() {
      step "round $r: ingest replay straight into the function ($CONCURRENCY clients, $CONCURRENCY instances)"
      local dir="$LOGS/round$r-direct"
      rm -rf "$dir" && mkdir -p "$dir"
      health "round$r-ingest"
      # shellcheck disable=SC2046
      "$BENCH" ingest $(direct_args ingest "$dir") --site "$site" --concurrency "$CONCURRENCY" --data "$DATA" \
        >"$RESULTS/round$r-ingest.json"
      usage_since - ingest direct "$dir" >"$RESULTS/round$r-ingest-usage.json"
    }
    # Alternate the order, so neither always runs on the emptier tables.
    if skipped floor; then
      ingest
    elif ((r % 2 == 1)); then floor; ingest; else ingest; floor; fi
    step "round $r: draining the events stream into aggregate"
    drain "$RESULTS/round$r-aggregate-usage.json"
  done

  if ! skipped http-ingest; then
  step "ingest replay through the HTTP API (gateway.py, cargo lambda; $CONCURRENCY clients)"
  site="bench-$run_id-http"
  "$BENCH" tenant --site "$site" >/dev/null
  health http-ingest
  mark "$STACK_DIR/mark.json"
  "$BENCH" ingest --api "$API" --site "$site" --concurrency "$CONCURRENCY" --data "$DATA" >"$RESULTS/http-ingest.json"
  settle
  usage_since "$STACK_DIR/mark.json" ingest >"$RESULTS/http-ingest-usage.json"
  drain "$RESULTS/http-aggregate-usage.json"
  fi

  if ! skipped null; then
  step "the way in alone: requests answered before any DynamoDB call (HTTP API, and direct)"
  for kind in ingest recommend; do
    "$BENCH" null --api "$API" --site "$site" --kind "$kind" --requests "$NULL_REQUESTS" --concurrency "$CONCURRENCY" >"$RESULTS/null-http-$kind.json"
    # shellcheck disable=SC2046
    "$BENCH" null $(direct_args "$kind" "$LOGS/null-direct") --site "$site" --kind "$kind" --requests "$NULL_REQUESTS" --concurrency "$CONCURRENCY" >"$RESULTS/null-direct-$kind.json"
  done
  fi

  step "recommendations: $REC_REQUESTS reads, $CONCURRENCY at a time, straight into the function and through the HTTP API"
  rec_site="bench-$run_id-r$ROUNDS"
  dir="$LOGS/recommend-direct"
  rm -rf "$dir" && mkdir -p "$dir"
  health recommend
  # shellcheck disable=SC2046
  "$BENCH" recommend $(direct_args recommend "$dir") --site "$rec_site" --requests "$REC_REQUESTS" --concurrency "$CONCURRENCY" --data "$DATA" >"$RESULTS/recommend.json"
  usage_since - recommend direct "$dir" >"$RESULTS/recommend-usage.json"
  "$BENCH" recommend --api "$API" --site "$rec_site" --requests "$REC_REQUESTS" --concurrency "$CONCURRENCY" --data "$DATA" >"$RESULTS/http-recommend.json"
  step "read floor: GetItem, and recommend's BatchGetItem, from a bare SDK loop"
  "$BENCH" floor-reads --site "$rec_site" --requests "$REC_REQUESTS" --concurrency "$CONCURRENCY" --data "$DATA" >"$RESULTS/floor-reads.json"
  "$PY" -c 'import json, sys; json.dump({"loadavg_end": open("/proc/loadavg").read().split()[:3]}, sys.stdout)' >"$RESULTS/load-end.json"

  trap - EXIT
  if [[ "${BENCH_KEEP_STACK:-0}" == 1 ]]; then
    echo "export AFFINITY_API_URL=$API AFFINITY_WATCH_PORT=$watch_port" >>"$STACK_DIR/env"
    step "stack left up (BENCH_KEEP_STACK=1): source $STACK_DIR/env; API $API"
  else
    step "stopping the stack"
    "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
  fi
fi

if [[ -n "${BENCH_RESULTS:-}" ]]; then
  step "done: raw results in $RESULTS (BENCHMARKS.md left as it is)"
  exit 0
fi
step "writing BENCHMARKS.md"
"$PY" bench/report.py "$RESULTS" "$ROOT/BENCHMARKS.md"
step "done: BENCHMARKS.md, raw results in bench/results/"

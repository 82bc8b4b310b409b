#!/usr/bin/env bash
# make test: every check that needs no cloud, with the local stand-ins it needs.
#   1. template.yaml: cfn-lint; sam validate --lint; checkov (every finding fixed or skipped in the
#      template with its reason)
#   2. events/*.json: the event shape of the function that receives each (scripts/check_events.py);
#      no function that sam build compiles has a test double in its feature graph
#      (scripts/check_no_test_doubles.py); openapi.yaml is valid OpenAPI 3.1 with exactly the
#      template's routes and the README's error codes (scripts/check_contract.py)
#   3. unit tests of these scripts (python unittest; also: the deployed template has no dependency
#      cycle, the permissions reader)
#   4. DynamoDB Local + moto (scripts/stack.sh up, in .stack/test so a `make up` can keep running)
#   5. cargo test --workspace --no-fail-fast, with the stack's environment (AWS_ENDPOINT_URL_DYNAMODB,
#      ...); among them tests/tests/iam_scope.rs, the IAM proof
#   6. every events/*.json through `cargo lambda invoke` on its function (scripts/invoke_events.sh)
#   6b. Schemathesis: the functions behind scripts/gateway.py (scripts/run_local.sh --no-reload, a
#      store from affinity-admin) fuzzed against openapi.yaml (scripts/fuzz_api.sh, two runs)
#   6c. on the same running stack: every example of docs/EVENTS.md (scripts/check_events_doc.py) and a
#      store deleted through DELETE /v1/tenants/{id}, finished by the schedule (scripts/local_deletion.py),
#      and issue 10's attacker over HTTP (scripts/attacks.py)
#   7. sam build: the arm64 release binaries that `sam deploy` would upload (scripts/sam_build.sh)
#   8. the storefront kit (issue 12): its JS unit tests (node --test in storefront/), its size budgets
#      (scripts/storefront_size.sh: esbuild-minified, gzip -9), and the browser suite in headless
#      Chromium against the whole local service on its own stack (scripts/browser_test.sh)
# Runs them all, stops the stack whatever happens, exits non-zero if any step failed, and ends with
# one line "summary: N passed, M failed" (every test and check) for CI.
set -uo pipefail
export AFFINITY_STACK_DIR="${AFFINITY_STACK_DIR:-.stack/test}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh" || exit 1
failed=()
passed_n=0
failed_n=0
step() { printf '\n== %s\n' "$*" >&2; }
# check NAME CMD...: one check, counted once.
check() {
  local name="$1"
  shift
  step "$name"
  if "$@"; then passed_n=$((passed_n + 1)); else
    failed+=("$name")
    failed_n=$((failed_n + 1))
  fi
}
out="$(mktemp)"
trap 'rm -f "$out"; "$ROOT/scripts/stack.sh" down' EXIT
# The SAM CLI: no telemetry; `sam validate` needs a region, not an account.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

check "cfn-lint template.yaml" "$VENV/bin/cfn-lint" template.yaml
check "sam validate --lint" "$VENV/bin/sam" validate --lint --template-file template.yaml
check "checkov -f template.yaml" "$ROOT/.tools/checkov-venv/bin/checkov" -f template.yaml --skip-download \
  --compact --quiet
check "events/*.json: shapes (sam local invoke -e)" "$PY" scripts/check_events.py >/dev/null
check "no test double in a deployed build (sam build's feature graph)" "$PY" scripts/check_no_test_doubles.py
check "openapi.yaml: OpenAPI 3.1, the template's routes, the README's error codes" "$PY" scripts/check_contract.py

step "script unit tests"
"$PY" -m unittest discover -s scripts/tests 2>&1 | tee "$out"
[[ ${PIPESTATUS[0]} == 0 ]] || failed+=("script unit tests")
ran="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -n 1)"
bad="$(sed -n 's/^FAILED (\(.*\))/\1/p' "$out" | grep -o '[0-9]\+' | awk '{ n += $1 } END { print n + 0 }')"
passed_n=$((passed_n + ${ran:-0} - ${bad:-0}))
failed_n=$((failed_n + ${bad:-0}))

step "local stack (DynamoDB Local, moto)"
if AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/stack.sh" up; then
  set -a
  # shellcheck disable=SC1090
  source "$STACK_DIR/env"
  set +a
  step "cargo test --workspace"
  # --no-fail-fast: every test binary runs, so the counts below are complete.
  cargo test --workspace --no-fail-fast 2>&1 | tee "$out"
  [[ ${PIPESTATUS[0]} == 0 ]] || failed+=("cargo test")
  read -r p f < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1);
    if ($(i) ~ /^failed;?$/) f += $(i-1) } } END { print p + 0, f + 0 }' "$out")
  passed_n=$((passed_n + p))
  failed_n=$((failed_n + f))
  # A build failure runs no test at all: count it, so the summary cannot read as a pass.
  if [[ " ${failed[*]} " == *" cargo test "* && $f == 0 ]]; then failed_n=$((failed_n + 1)); fi

  step "events/*.json through cargo lambda invoke"
  "$ROOT/scripts/invoke_events.sh" | tee "$out"
  [[ ${PIPESTATUS[0]} == 0 ]] || failed+=("cargo lambda invoke events")
  read -r p f < <(sed -n 's/^invoke_events: \([0-9]*\) as expected, \([0-9]*\) not$/\1 \2/p' "$out" | tail -n 1)
  passed_n=$((passed_n + ${p:-0}))
  failed_n=$((failed_n + ${f:-0}))
  if [[ " ${failed[*]} " == *" cargo lambda invoke events "* && ${f:-0} == 0 ]]; then failed_n=$((failed_n + 1)); fi

  # The schedule fires every 5 s on this stack (scripts/scheduler.py), so the deletion check is quick.
  export AFFINITY_SCHEDULE_PERIOD_S="${AFFINITY_SCHEDULE_PERIOD_S:-5}"
  step "Schemathesis: the running stack (functions behind gateway.py) against openapi.yaml"
  # Two runs (anonymous, with a store's API key), each one check; the cases they ran are reported below.
  "$ROOT/scripts/fuzz_api.sh" | tee "$out"
  fuzz_rc=${PIPESTATUS[0]}
  read -r fuzz_cases fuzz_failed < <(sed -n 's/^fuzz_api: \([0-9]*\) cases, \([0-9]*\) failed$/\1 \2/p' "$out" | tail -n 1)
  if [[ $fuzz_rc == 0 ]]; then passed_n=$((passed_n + 2)); else
    failed+=("schemathesis")
    # A run that never started (no stack, no store) counts as both runs failed.
    bad=${fuzz_failed:-2}
    ((bad >= 1 && bad <= 2)) || bad=2
    failed_n=$((failed_n + bad))
    passed_n=$((passed_n + 2 - bad))
  fi

  # docs/EVENTS.md's examples, a store's deletion through the schedule and issue 10's attacker
  # (scripts/attacks.py), on the same running stack.
  for local_check in check_events_doc local_deletion attacks; do
    step "$local_check (scripts/local_checks.sh, on the running stack)"
    scripts/local_checks.sh "$local_check" | tee "$out"
    [[ ${PIPESTATUS[0]} == 0 ]] || failed+=("$local_check")
    read -r p f < <(sed -n "s/^$local_check: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p" "$out" | tail -n 1)
    passed_n=$((passed_n + ${p:-0}))
    failed_n=$((failed_n + ${f:-0}))
    if [[ " ${failed[*]} " == *" $local_check "* && ${f:-0} == 0 ]]; then failed_n=$((failed_n + 1)); fi
  done
else
  failed+=("stack up")
  failed_n=$((failed_n + 1))
fi

"$ROOT/scripts/stack.sh" down # now: sam build needs no stack, and the summary below is the last line
# --- storefront kit (issue 12) ---------------------------------------------------------------
step "storefront: JS unit tests (node --test)"
(cd storefront && npm run --silent build && node --test test/) 2>&1 | tee "$out"
[[ ${PIPESTATUS[0]} == 0 ]] || failed+=("storefront unit tests")
p="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -n 1)"
f="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out" | tail -n 1)"
passed_n=$((passed_n + ${p:-0}))
failed_n=$((failed_n + ${f:-0}))
if [[ " ${failed[*]} " == *" storefront unit tests "* && ${f:-0} == 0 ]]; then failed_n=$((failed_n + 1)); fi
check "storefront: size budgets (tracker <= 4 KB gzip, tracker + widget <= 10 KB)" scripts/storefront_size.sh
step "storefront: browser suite (headless Chromium, scripts/browser_test.sh)"
AFFINITY_STACK_DIR=.stack/test-browser scripts/browser_test.sh 2>&1 | tee "$out"
[[ ${PIPESTATUS[0]} == 0 ]] || failed+=("browser suite")
read -r p f < <(sed -n 's/^browser_test: \([0-9]*\) passed, \([0-9]*\) failed, [0-9]* skipped$/\1 \2/p' "$out" | tail -n 1)
passed_n=$((passed_n + ${p:-0}))
failed_n=$((failed_n + ${f:-0}))
if [[ " ${failed[*]} " == *" browser suite "* && ${f:-0} == 0 ]]; then failed_n=$((failed_n + 1)); fi
# ---------------------------------------------------------------------------------------------

check "sam build (arm64, cargo lambda)" env AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/sam_build.sh"

printf '\nschemathesis: %s cases against the local stack\n' "${fuzz_cases:-0}" >&2
if ((${#failed[@]})); then
  printf '\nmake test: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
else
  printf '\nmake test: all checks passed\n' >&2
fi
# The closing line CI reads: every test and check of this run.
echo "summary: $passed_n passed, $failed_n failed"
((${#failed[@]} == 0))

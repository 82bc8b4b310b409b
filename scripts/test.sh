#!/usr/bin/env bash
# make test: every check that needs no cloud, with the local stand-ins it needs.
#   1. cfn-lint template.yaml
#   2. unit tests of these scripts (python unittest)
#   3. DynamoDB Local + moto (scripts/stack.sh up, in .stack/test so a `make up` can keep running)
#   4. cargo test --workspace, with the stack's environment (AWS_ENDPOINT_URL_DYNAMODB, ...)
# Runs them all, stops the stack whatever happens, exits non-zero if any step failed.
set -uo pipefail
export AFFINITY_STACK_DIR="${AFFINITY_STACK_DIR:-.stack/test}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh" || exit 1
trap '"$ROOT/scripts/stack.sh" down' EXIT

failed=()
step() { printf '\n== %s\n' "$*" >&2; }

step "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml || failed+=("cfn-lint")

step "script unit tests"
"$PY" -m unittest discover -s scripts/tests || failed+=("script unit tests")

step "local stack (DynamoDB Local, moto)"
if AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/stack.sh" up; then
  set -a
  # shellcheck disable=SC1090
  source "$STACK_DIR/env"
  set +a
  step "cargo test --workspace"
  cargo test --workspace || failed+=("cargo test")
else
  failed+=("stack up")
fi

if ((${#failed[@]})); then
  printf '\nmake test: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
  exit 1
fi
printf '\nmake test: all checks passed\n' >&2

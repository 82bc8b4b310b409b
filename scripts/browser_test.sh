#!/usr/bin/env bash
# The storefront kit in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the
# whole local service, on its own stack ($AFFINITY_STACK_DIR, default .stack/browser):
#   1. builds the kit (storefront/: esbuild into storefront/dist)
#   2. scripts/run_local.sh --no-reload with a fake Shopify, then a tenant through the real OAuth flow
#      (tools/demo-install), Personalized Messaging consent, and a store's history
#      (tests/browser/seed.py: REES46 rows through the live route, the stream drained)
#   3. tests/browser/test_storefront.py (unittest; the demo storefront on another origin)
# Stops the stack it started, and ends with "browser_test: N passed, M failed, K skipped".
set -uo pipefail
export AFFINITY_STACK_DIR="${AFFINITY_STACK_DIR:-.stack/browser}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

summary() { echo "browser_test: $1 passed, $2 failed, $3 skipped"; }
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { log "no Chromium at ${CHROMIUM:-/usr/bin/chromium}: run scripts/setup.sh"; summary 0 1 0; exit 1; }
(cd storefront && npm run --silent build) || { log "storefront build failed"; summary 0 1 0; exit 1; }

fake_port="$(free_port)"
export SHOPIFY_BASE_URL="http://127.0.0.1:$fake_port"
export SHOPIFY_CLIENT_SECRET="${SHOPIFY_CLIENT_SECRET:-local-shopify-client-secret}"
trap '"$ROOT/scripts/stack.sh" down >/dev/null 2>&1' EXIT
"$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
# One more try if it does not come up (a free port taken between picking and binding it).
AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/run_local.sh" --no-reload >/dev/null ||
  AFFINITY_SKIP_SETUP=1 "$ROOT/scripts/run_local.sh" --no-reload >/dev/null ||
  { log "local stack did not start"; summary 0 1 0; exit 1; }
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
set +a

cargo build --quiet -p affinity-demo-install --bin demo-install || { summary 0 1 0; exit 1; }
target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
tenant="$("$target_dir/debug/demo-install")" || { log "demo-install failed"; summary 0 1 0; exit 1; }
field() { printf '%s' "$tenant" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
export AFFINITY_SITE_ID="$(field site_id)" AFFINITY_API_KEY="$(field api_key)"
export AFFINITY_GATEWAY_LOG="$STACK_DIR/logs/gateway.log"
"$PY" - "$AFFINITY_API_URL/v1/sites/$AFFINITY_SITE_ID/messaging-consent" "$AFFINITY_API_KEY" <<'PYEOF' || { summary 0 1 0; exit 1; }
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], method="PUT", data=b'{"granted": true}',
                             headers={"content-type": "application/json", "authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200, r.status
PYEOF
"$PY" tests/browser/seed.py "$AFFINITY_API_URL" "$AFFINITY_SITE_ID" || { summary 0 1 0; exit 1; }

out="$(mktemp)"
"$PY" -m unittest -v tests.browser.test_storefront "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
ran="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -n 1)"
bad="$(sed -n 's/^FAILED (\(.*\))/\1/p' "$out" | grep -o '\(failures\|errors\)=[0-9]\+' | grep -o '[0-9]\+' | awk '{ n += $1 } END { print n + 0 }')"
skipped="$(grep -o 'skipped=[0-9]\+' "$out" | tail -n 1 | grep -o '[0-9]\+')"
rm -f "$out"
ran=${ran:-0}; bad=${bad:-0}; skipped=${skipped:-0}
if [[ $rc != 0 && $bad == 0 ]]; then bad=1; fi # the suite could not run at all
summary "$((ran - bad - skipped))" "$bad" "$skipped"
exit "$rc"

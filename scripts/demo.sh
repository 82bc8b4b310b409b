#!/usr/bin/env bash
# make demo: the whole service on this machine, on real store data.
#   1. the local stack and every function (scripts/run_local.sh --no-reload), with the consent
#      function's Shopify base URL pointed at a fake Shopify on loopback;
#   2. a merchant installs the app: the real OAuth flow (install, signed callback, token exchange
#      against the fake Shopify), which creates the tenant, its KMS-sealed token and pepper, and
#      shows its API key once (tools/demo-install);
#   3. the merchant grants Personalized Messaging consent (PUT /v1/sites/{site_id}/messaging-consent);
#   4. the REES46 clickstream sample (data/) replays through the live ingest route, shifted so that
#      its last event is now, shaped as storefronts send it, each user id of the file under a stable
#      32-hex-digit guest id (tools/importer/README.md, "Guest ids"); the events stream is drained
#      into the popularity aggregate; then one JSON line for each of the file's five busiest shoppers
#      (the file's `user_id` beside the guest id, their preferred categories and brands and their
#      recommendations, read through the API-key lookup route) and the totals;
#   5. one messaging lookup by email: a shopper of the file signs up with an email on the storefront,
#      and the email tool asks for their recommendations by that address (in other letter case).
#   6. the store's site id and API key are printed and written to .stack/env (AFFINITY_SITE,
#      AFFINITY_API_KEY, AFFINITY_TENANT_ID), so that make import and docs/EVENTS.md work on it;
#   7. the demo storefront (scripts/serve_storefront.py): static pages built from the REES46 sample's
#      products with the tracker and the recommendations widget, on its own port (another origin than
#      the API, so CORS is real); its URL is printed last.
# The service keeps running; `make down` stops it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

fake_port="$(free_port)"
export SHOPIFY_BASE_URL="http://127.0.0.1:$fake_port"
export SHOPIFY_CLIENT_SECRET="${SHOPIFY_CLIENT_SECRET:-local-shopify-client-secret}"
if [[ -f "$STACK_DIR/env" ]] && grep -q '^export AFFINITY_API_URL=' "$STACK_DIR/env"; then
  # A running stack was started without this fake Shopify: start afresh so the functions see it.
  scripts/stack.sh down >/dev/null 2>&1 || true
fi
scripts/run_local.sh --no-reload
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
set +a

log "building the demo installer, the admin tool and the importer"
cargo build --quiet -p affinity-demo-install --bin demo-install
cargo build --quiet -p affinity-admin --bin affinity-admin
cargo build --quiet --release -p affinity-importer --bin affinity-import
target_dir="$(cargo metadata --no-deps --format-version 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

log "installing the demo store through Shopify's OAuth flow (fake Shopify on 127.0.0.1:$fake_port)"
tenant="$("$target_dir/debug/demo-install")"
field() { printf '%s' "$tenant" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
site_id="$(field site_id)"
api_key="$(field api_key)"
log "tenant $(field tenant_id), site id $site_id"
# The way in for everything after the demo (make import, docs/EVENTS.md's examples): source .stack/env.
set_env "$STACK_DIR/env" AFFINITY_SITE "$site_id"
set_env "$STACK_DIR/env" AFFINITY_TENANT_ID "$(field tenant_id)"
set_env "$STACK_DIR/env" AFFINITY_API_KEY "$api_key"
set_env "$STACK_DIR/env" AFFINITY_IDENTITY_SECRET "$(field identity_secret)"

log "granting Personalized Messaging consent"
"$PY" - "$AFFINITY_API_URL/v1/sites/$site_id/messaging-consent" "$api_key" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], method="PUT", data=b'{"granted": true}',
                             headers={"content-type": "application/json", "authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200, r.status
EOF

log "replaying the REES46 sample through the live ingest route"
report="$STACK_DIR/demo-report.jsonl"
"$target_dir/release/affinity-import" replay --api "$AFFINITY_API_URL" --site "$site_id" --api-key "$api_key" \
  --format rees46 --live --shift-to-now \
  --before-report "'$PY' '$ROOT/scripts/stream_pump.py' --drain" \
  data/rees46-2019-oct-sample.csv | tee "$report"

log "a messaging lookup by email"
"$PY" - "$AFFINITY_API_URL" "$site_id" "$api_key" "$report" <<'EOF'
import json, sys, urllib.request
api, site, key, report = sys.argv[1:5]
top = json.loads(open(report).readline())["shopper_id"]
def call(method, path, body, auth=True):
    headers = {"content-type": "application/json"}
    if auth:
        headers["authorization"] = "Bearer " + key
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
# The storefront: shopper `top` subscribes to the newsletter; the beacon carries the address.
ingest = call("POST", f"/v1/sites/{site}/events", {"events": [
    {"type": "search", "shopper_id": top, "query": "newsletter signup", "email": "demo.shopper@example.com"}]}, auth=False)
print(json.dumps({"step": "storefront event with an email", "shopper_id": top, "answer": ingest}))
# The email tool, later: which products for this subscriber?
answer = call("POST", f"/v1/sites/{site}/recommendations/lookup",
              {"shoppers": [{"email": " Demo.Shopper@Example.com "}, {"email": "nobody@example.com"}], "limit": 3})
print(json.dumps({"step": "messaging lookup by email", "results": answer["results"]}))
assert answer["results"][0]["matched"] and answer["results"][0]["shopper_id"] == "g:" + top, answer
EOF
log "each list type for the busiest shopper and the store's top product (issue 11)"
"$PY" - "$AFFINITY_API_URL" "$site_id" "$report" <<'EOF'
import json, sys, urllib.parse, urllib.request
api, site, report = sys.argv[1:4]
top = json.loads(open(report).readline())["shopper_id"]
def lst(**q):
    url = f"{api}/v1/sites/{site}/shoppers/{urllib.parse.quote(top)}/recommendations?" + urllib.parse.urlencode(q)
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)
product = (lst(type="trending", limit=1)["items"] or [{}])[0].get("product_id", "none")
for q in [dict(type="for_you"), dict(type="similar", product_id=product), dict(type="also_viewed", product_id=product),
          dict(type="bought_together", product_id=product), dict(type="recently_viewed"), dict(type="trending")]:
    a = lst(limit=5, **q)
    print(json.dumps({"step": "list", **q, "shopper_id": top,
                      "items": [[i["product_id"], i["reason_text"]] for i in a["items"]]}))
EOF
# --- cross-device, proven (issue 10) ---------------------------------------------------------
log "a customer logs in on a second device with an identity token (README, \"Identity tokens\")"
# What the merchant's server signs for the logged-in customer: affinity-admin identity-token makes it.
token="$("$target_dir/debug/affinity-admin" identity-token --site "$site_id" --customer demo-customer-1 \
  --secret "$(field identity_secret)")"
"$PY" - "$AFFINITY_API_URL" "$site_id" "$token" <<'EOF'
import json, sys, urllib.request, uuid
api, site, token = sys.argv[1:4]
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, method=method, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
trending = call("GET", f"/v1/sites/{site}/shoppers/{uuid.uuid4()}/recommendations?limit=20")["items"]
# A product outside the store's top trend's category, so the customer's taste shows in the answer.
top_category = trending[0].get("category")
pick = next((p for p in reversed(trending) if p.get("category") and p["category"] != top_category), trending[-1])
product = {"id": pick["product_id"], "category": pick.get("category"), "brand": pick.get("brand")}
laptop, phone = str(uuid.uuid4()), str(uuid.uuid4())
who = {"customer_id": "demo-customer-1", "identity_token": token}
a = call("POST", f"/v1/sites/{site}/events", {"events": [
    {"type": "view", "shopper_id": laptop, "product": product, **who},
    {"type": "cart_add", "shopper_id": laptop, "product": product, **who}]})
b = call("POST", f"/v1/sites/{site}/events", {"events": [
    {"type": "search", "shopper_id": phone, "query": "login", **who}]})
claimed = call("POST", f"/v1/sites/{site}/events", {"events": [
    {"type": "search", "shopper_id": str(uuid.uuid4()), "customer_id": "demo-customer-1", "query": "no token"}]})
assert (a["identity_unverified"], b["identity_unverified"], claimed["identity_unverified"]) == (0, 0, 1), (a, b, claimed)
with_token = call("GET", f"/v1/sites/{site}/shoppers/{phone}/recommendations?limit=3&identity_token={token}")
without = call("GET", f"/v1/sites/{site}/shoppers/{phone}/recommendations?limit=3")
show = lambda r: [(i["product_id"], i.get("category"), i.get("reason")) for i in r["items"]]
print(json.dumps({"step": "second device, with the token", "category_on_laptop": pick.get("category"), "items": show(with_token)}))
print(json.dumps({"step": "second device, without the token (its own empty history)", "items": show(without)}))
print(json.dumps({"step": "a customer id claimed without a token", "answer": claimed}))
assert show(with_token) != show(without), "the token lets the second device use the whole history"
EOF
# --- the demo storefront (issue 12) ---------------------------------------------------------
log "building the storefront kit and serving the demo storefront"
(cd storefront && npm run --silent build)
stop storefront
storefront_port="$(free_port)"
start_bg storefront "serve_storefront.py" "$PY" "$ROOT/scripts/serve_storefront.py" --site "$site_id" \
  --api "$AFFINITY_API_URL" --port "$storefront_port" --out "$STACK_DIR/storefront"
for _ in $(seq 1 50); do
  "$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$storefront_port/index.html" 2>/dev/null && break
  is_running storefront || fail_with_log storefront "the storefront server exited"
  sleep 0.2
done
log "demo storefront: http://127.0.0.1:$storefront_port/  (browse a few products, then the home page's"
log "  'Recommended for you' follows what you looked at)"
# ---------------------------------------------------------------------------------------------
print_store "$STACK_DIR/env"
log "next: make import FILE=data/uci-online-retail-sample.csv FORMAT=uci; docs/EVENTS.md's curl examples;"
log "  make demo-delete (a throw-away store deleted through the HTTP route, finished by the schedule)"
log "Affinity runs at $AFFINITY_API_URL (site id $site_id); stop it with: make down"

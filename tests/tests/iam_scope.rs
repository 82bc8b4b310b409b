//! The IAM scope, proven rather than claimed. Each function runs its routes and code paths (conflicts,
//! retries, duplicates, a deletion to completion, the webhooks) against DynamoDB Local and the KMS
//! emulator, with SDK clients that record every IAM action and resource they send
//! (`affinity::observe`). The recorded set must equal what `template.yaml` allows the function's role:
//! a test fails when the role lacks an action the code calls, or allows one it never calls.
//!
//! What AWS itself does with a role (Lambda writing logs and traces, DynamoDB decrypting the tables'
//! key, the stream's event source mapping) is never recorded; it is listed in [`platform`] with the
//! reason. A grant the tests cannot reach on purpose would be listed per function with its reason
//! (none today).
//!
//! The template is read by `scripts/cfn_template.py permissions`, the reader the local stack uses:
//! tables by their local names (the stack's `TENANTS_TABLE`, ...), indexes as `table/index/by_site`,
//! KMS key-policy statements by the encryption-context purpose they require (`purpose=...`), or the
//! service they are limited to (`via=dynamodb`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use affinity::identity::TenantKeys;
use affinity::kms::{Kms, Peppers, PEPPER_TTL};
use affinity::oauth::shopify::{encode_component, webhook_hmac};
use affinity::oauth::Secret;
use affinity::observe::{self, AwsCalls};
use affinity::profile::Decay;
use affinity::store::deletion::DeletionSettings;
use affinity::store::dynamo::DynamoStore;
use affinity::tenant::Tenant;
use affinity_tests::*;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `(IAM action, resource)`, as the recorder and the template reader name them.
type Grant = (String, String);

fn grant(action: &str, resource: &str) -> Grant {
    (action.to_string(), resource.to_string())
}

// ------------------------------------------------------------------------------------------------
// The template's side
// ------------------------------------------------------------------------------------------------

/// Every function's permissions, from `scripts/cfn_template.py permissions` under the repo's venv.
fn template_permissions() -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests through `make test` (scripts/setup.sh installs it)",
        python.display()
    );
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/cfn_template.py"))
        .arg("permissions")
        .output()
        .expect("run scripts/cfn_template.py permissions");
    assert!(
        out.status.success(),
        "scripts/cfn_template.py permissions failed (a policy it cannot judge?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("permissions JSON")
}

/// What the template allows `function`'s role, with the statement that allows it.
fn allowed(function: &str) -> BTreeMap<Grant, String> {
    let all = template_permissions();
    let f = all
        .get(function)
        .unwrap_or_else(|| panic!("{function} is not a function of template.yaml"));
    f["allowed"]
        .as_array()
        .expect("allowed")
        .iter()
        .map(|g| {
            let s = |k: &str| g[k].as_str().expect("string").to_string();
            ((s("action"), s("resource")), s("source"))
        })
        .collect()
}

/// What AWS does with `function`'s role on the function's behalf, never through its code: allowed on
/// purpose, never recorded.
fn platform(function: &str) -> Vec<(Grant, &'static str)> {
    let logs = format!("log-group:{}Logs", function.trim_end_matches("Function"));
    let mut out = vec![
        (
            grant("logs:CreateLogStream", &logs),
            "Lambda creates the function's log streams in its own log group with the role",
        ),
        (
            grant("logs:PutLogEvents", &logs),
            "Lambda writes the function's log lines to its own log group with the role",
        ),
        (
            grant("xray:PutTraceSegments", "*"),
            "active tracing: Lambda sends the segments with the role (no resource-level permission)",
        ),
        (
            grant("xray:PutTelemetryRecords", "*"),
            "active tracing: Lambda sends the telemetry with the role (no resource-level permission)",
        ),
        (
            grant("kms:Decrypt", "via=dynamodb"),
            "DynamoDB decrypts the tables' key (SSE under DataKey) with the permissions of the principal \
             that reads or writes a table; only through DynamoDB",
        ),
        (
            grant("kms:Decrypt", "via=lambda"),
            "Lambda decrypts the function's environment (encrypted under OpsKey) when it starts an \
             execution environment; only through Lambda",
        ),
    ];
    if function == "AggregateFunction" {
        let stream = format!("{}/stream", tables().events);
        for action in [
            "dynamodb:DescribeStream",
            "dynamodb:GetShardIterator",
            "dynamodb:GetRecords",
        ] {
            out.push((
                grant(action, &stream),
                "the event source mapping reads the EventsTable stream with the function's role",
            ));
        }
        out.push((
            grant("dynamodb:ListStreams", "*"),
            "the event source mapping lists the table's streams (no resource-level permission)",
        ));
    }
    out
}

/// Fails unless what `calls` recorded is exactly what the template allows `function`, less
/// [`platform`] and `unreachable` (grants the tests cannot reach on purpose, with the reason).
fn prove(function: &str, calls: &AwsCalls, unreachable: &[(Grant, &str)]) {
    let allowed = allowed(function);
    let called: BTreeSet<Grant> = calls
        .actions()
        .into_iter()
        .map(|a| (a.action, a.resource))
        .collect();
    let platform = platform(function);
    let mut problems = Vec::new();
    for g in &called {
        if !allowed.contains_key(g) {
            problems.push(format!(
                "its code calls {} on {}, which its role does not allow",
                g.0, g.1
            ));
        }
    }
    let excused: BTreeMap<&Grant, &str> = platform
        .iter()
        .map(|(g, why)| (g, *why))
        .chain(unreachable.iter().map(|(g, why)| (g, *why)))
        .collect();
    for (g, source) in &allowed {
        if !called.contains(g) && !excused.contains_key(g) {
            problems.push(format!(
                "its role allows {} on {} ({source}), which its code never called",
                g.0, g.1
            ));
        }
    }
    for (g, why) in &excused {
        if !allowed.contains_key(*g) {
            problems.push(format!(
                "the test excuses {} on {} ({why}), which its role does not allow: drop it from the list",
                g.0, g.1
            ));
        }
        if called.contains(*g) {
            problems.push(format!(
                "the test excuses {} on {} as not called by the code, but the code called it",
                g.0, g.1
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{function} (template.yaml) does not match its code:\n  - {}\ncalled: {called:#?}",
        problems.join("\n  - ")
    );
}

#[test]
fn every_function_of_the_template_is_proven_here() {
    let all = template_permissions();
    let functions: BTreeSet<&str> = keys_of(&all);
    assert_eq!(
        functions,
        BTreeSet::from([
            "AggregateFunction",
            "ConsentFunction",
            "IngestFunction",
            "RecommendFunction",
            "TenantDeleteFunction"
        ]),
        "a function was added or renamed: prove its role in this file"
    );
}

// ------------------------------------------------------------------------------------------------
// Recording clients and tenants
// ------------------------------------------------------------------------------------------------

fn key_id() -> String {
    std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID: run the tests through `make test`")
}

/// A store and a KMS envelope whose clients record into `calls`.
async fn recording(calls: &AwsCalls) -> (DynamoStore, Kms) {
    let aws = affinity::config::aws().await;
    (
        DynamoStore::new(observe::dynamodb_client(&aws, calls), tables()),
        Kms::new(observe::kms_client(&aws, calls), key_id()),
    )
}

/// KMS for setting tests up (not recorded).
async fn plain_kms() -> Kms {
    recording(&AwsCalls::default()).await.1
}

/// An active tenant of `platform` with messaging consent, a real KMS-sealed pepper and its
/// `tenant#` pointer, as the consent function leaves it. Returns it and its API key.
async fn tenant_with_pepper(platform: &str, prefix: &str) -> (Tenant, String) {
    let (mut tenant, key) = new_tenant(platform.parse().expect("platform"), &unique_site(prefix));
    tenant.pepper_ciphertext = Some(
        plain_kms()
            .await
            .new_pepper(&tenant.tenant_id)
            .await
            .expect("pepper"),
    );
    let (identity_ct, _) = plain_kms()
        .await
        .new_identity_secret(&tenant.tenant_id)
        .await
        .expect("identity secret");
    tenant.identity_secret_ciphertext = Some(identity_ct);
    tenant.messaging_consent = true;
    tenant.messaging_consent_at = tenant.consent_granted_at.clone();
    tenant.default_region = Some("US".into());
    put_tenant_with_pointer(&store().await, &tenant).await;
    (tenant, key)
}

/// An identity token for `customer_id` of `tenant`, signed with its KMS-sealed identity secret
/// (opened here, not recorded), valid for an hour: what the merchant's server gives the page.
async fn token_for(tenant: &Tenant, customer_id: &str) -> String {
    let secret = plain_kms()
        .await
        .open_identity_secret(
            &tenant.tenant_id,
            tenant
                .identity_secret_ciphertext
                .as_deref()
                .expect("secret"),
        )
        .await
        .expect("open identity secret");
    affinity::identity::sign(
        &secret,
        &tenant.site_id,
        &affinity::identity::Claims {
            customer_id: customer_id.into(),
            expires_s: affinity::now_ms() / 1000 + 3600,
            email_sha256: None,
            phone_sha256: None,
        },
    )
}

fn ingest_deps_over(store: DynamoStore, kms: Kms) -> ingest::Deps<DynamoStore, TenantKeys> {
    ingest::Deps {
        store,
        peppers: TenantKeys::new(kms, PEPPER_TTL),
        decay: Decay::default(),
        event_ttl_s: 90 * 86_400,
        clock: affinity::clock::system(),
    }
}

fn events_request(site: &str, import_key: Option<&str>, events: &Value) -> Request {
    let body = json!({ "events": events }).to_string();
    match import_key {
        Some(key) => request_with(
            "POST",
            &format!("/v1/sites/{site}/events/import"),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {key}")),
            ],
            &body,
        ),
        None => request(
            "POST",
            &format!("/v1/sites/{site}/events"),
            Some("text/plain"),
            &body,
        ),
    }
}

/// A shopper's history, as a storefront and a server import would send it: guest views, a login
/// (customer `191167`) with a phone, another browser known only by an email, another shopper.
fn history(now: i64) -> (Value, Value) {
    let live = json!([
        {"type": "view", "shopper_id": "dev-a-0000000000", "event_id": "a1", "timestamp": now - 9000,
         "product": {"id": "p1", "category": "shoes", "brand": "acme"}},
        {"type": "view", "shopper_id": "dev-a-0000000000", "event_id": "a2", "timestamp": now - 8000,
         "product": {"id": "p2", "category": "shoes", "brand": "acme"}},
        {"type": "view", "shopper_id": "someone-else-000", "event_id": "o1", "timestamp": now - 7500,
         "product": {"id": "p2", "category": "shoes", "brand": "acme"}}
    ]);
    let import = json!([
        {"type": "purchase", "shopper_id": "dev-a-0000000000", "customer_id": "191167", "phone": "+1 650 253 0000",
         "event_id": "a3", "timestamp": now - 7000, "currency": "USD",
         "items": [{"id": "p1", "category": "shoes", "brand": "acme", "price": 80.0}]},
        {"type": "view", "shopper_id": "newsletter-00000", "email": "John@Example.com ", "event_id": "b1",
         "timestamp": now - 6000, "product": {"id": "p3", "category": "bags"}}
    ]);
    (live, import)
}

/// Stores [`history`] for `tenant` through the ingest handler (not recorded).
async fn seed(tenant: &Tenant, key: &str) {
    let calls = AwsCalls::default();
    let (store, kms) = recording(&calls).await;
    let deps = ingest_deps_over(store, kms);
    let (live, import) = history(affinity::now_ms());
    for req in [
        events_request(&tenant.site_id, None, &live),
        events_request(&tenant.site_id, Some(key), &import),
    ] {
        let (s, b) = json_of(ingest::handle(&deps, req).await);
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["rejected"], json!([]), "{b}");
    }
}

// ------------------------------------------------------------------------------------------------
// ingest
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_ingest_role_allows_exactly_what_ingest_calls() {
    let (t, key) = tenant_with_pepper("shopify", "iam-ingest").await;
    let calls = AwsCalls::default();
    let (store, kms) = recording(&calls).await;
    let deps = ingest_deps_over(store, kms);
    let (live, import) = history(affinity::now_ms());
    let site = &t.site_id;

    // Storefront: tenant read, profile batch read, event batch write, one profile write.
    let (s, b) = json_of(ingest::handle(&deps, events_request(site, None, &live)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(3)), "{b}");
    // Import: a login and emails, hashed with the tenant's pepper (KMS), linked in one transaction.
    let (s, b) = json_of(ingest::handle(&deps, events_request(site, Some(&key), &import)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(2)), "{b}");
    // A retried batch changes nothing.
    let (s, b) = json_of(ingest::handle(&deps, events_request(site, Some(&key), &import)).await);
    assert_eq!((s, b["duplicates"].as_u64()), (200, Some(2)), "{b}");
    // The guest is an alias now: its profile read follows it to the customer's.
    let more = json!([{"type": "cart_add", "shopper_id": "dev-a-0000000000", "event_id": "a4",
        "product": {"id": "p2", "category": "shoes"}}]);
    let (s, b) = json_of(ingest::handle(&deps, events_request(site, None, &more)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(1)), "{b}");
    // Concurrent requests for one shopper: conditional writes conflict and are retried.
    let burst = |i: usize| {
        let e = json!([{"type": "view", "shopper_id": "dev-c-0000000000", "event_id": format!("c{i}"),
            "product": {"id": format!("q{i}"), "category": "hats"}}]);
        ingest::handle(&deps, events_request(site, None, &e))
    };
    let (r0, r1, r2, r3) = tokio::join!(burst(0), burst(1), burst(2), burst(3));
    for resp in [r0, r1, r2, r3] {
        let (s, b) = json_of(resp);
        assert_eq!(s, 200, "{b}");
    }
    // A login proven by an identity token: the tenant's identity secret is opened (KMS).
    let login = json!([{"type": "view", "shopper_id": "dev-d-0000000000", "event_id": "d1", "customer_id": "191167",
        "identity_token": token_for(&t, "191167").await, "product": {"id": "p1", "category": "shoes"}}]);
    let (s, b) = json_of(ingest::handle(&deps, events_request(site, None, &login)).await);
    assert_eq!(
        (s, b["accepted"].as_u64(), b["identity_unverified"].as_u64()),
        (200, Some(1), Some(0)),
        "{b}"
    );
    prove("IngestFunction", &calls, &[]);
}

// ------------------------------------------------------------------------------------------------
// recommend
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_recommend_role_allows_exactly_what_recommend_calls() {
    let (t, key) = tenant_with_pepper("shopify", "iam-recommend").await;
    seed(&t, &key).await;
    aggregate_site(&t.site_id).await;
    let calls = AwsCalls::default();
    let (store, kms) = recording(&calls).await;
    let deps = recommend::Deps {
        store,
        peppers: TenantKeys::new(kms, PEPPER_TTL),
        popularity: recommend::cache::PopularityCache::default(),
        decay: Decay::default(),
        clock: affinity::clock::system(),
    };
    let site = &t.site_id;
    // Storefront: tenant, profile and popularity in one read; the guest is an alias of the customer.
    let (s, b) = json_of(
        recommend::handle(
            &deps,
            request(
                "GET",
                &format!(
                    "/v1/sites/{site}/shoppers/dev-a-0000000000/recommendations?limit=5&identity_token={}",
                    token_for(&t, "191167").await
                ),
                None,
                "",
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    let items: Vec<&str> = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["product_id"].as_str())
        .collect();
    // p1 is the store's most popular product; only the customer's profile knows it was bought.
    assert!(
        !items.is_empty() && !items.contains(&"p1"),
        "the customer's profile was found through the alias (its purchase left out): {b}"
    );
    // Messaging lookup: the tenant, the email hashed with its pepper (KMS), profiles and popularity,
    // then the profiles the aliases point to.
    let body = json!({"shoppers": [{"email": "john@example.com"}, {"customer_id": "191167"},
        {"shopper_id": "dev-a-0000000000"}, {"phone": "not a phone"}], "limit": 3});
    let (s, b) = json_of(recommend::handle(&deps, lookup_request(site, &key, &body)).await);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["matched"], true, "{b}");
    prove("RecommendFunction", &calls, &[]);
}

// ------------------------------------------------------------------------------------------------
// aggregate
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_aggregate_role_allows_exactly_what_aggregate_calls() {
    let (t, key) = tenant_with_pepper("demo", "iam-aggregate").await;
    seed(&t, &key).await;
    let calls = AwsCalls::default();
    let (store, _) = recording(&calls).await;
    let deps = aggregate::Deps {
        store,
        decay: Decay::default(),
    };
    // The sample stream batch, for this tenant: popularity read, then the transaction (popularity
    // Put, tenant ConditionCheck).
    let batch = repo_file("events/aggregate-stream.json")
        .replace("\"demo#", &format!("\"{}#", t.site_id))
        .replace("\"S\": \"demo\"", &format!("\"S\": \"{}\"", t.site_id));
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&batch).expect("stream event");
    let report = aggregate::handle(&deps, event).await;
    assert!(report.applied > 0, "{report:?}");
    // Everything stored so far, again: the popularity item exists now (a versioned Put).
    let report = aggregate::aggregate(&deps, stored_events(&t.site_id).await)
        .await
        .expect("aggregate");
    assert_eq!(report.tenants, 1, "{report:?}");
    prove("AggregateFunction", &calls, &[]);
}

// ------------------------------------------------------------------------------------------------
// consent
// ------------------------------------------------------------------------------------------------

const SHOPIFY_ID: &str = "iam-shopify-client-id";
const SHOPIFY_SECRET: &str = "iam-shopify-client-secret";
const BC_ID: &str = "U8RphZeDjQc4kLVSzNjePo0CMjq7yOg";
const BC_SECRET: &str = "iam-bigcommerce-client-secret";
const PUBLIC: &str = "https://affinity.test";

fn consent_deps(
    store: DynamoStore,
    kms: Kms,
    platform: &MockServer,
    clock: affinity::clock::SharedClock,
) -> consent::Deps<DynamoStore, Kms> {
    let app = TestApp {
        shopify: (SHOPIFY_ID, SHOPIFY_SECRET),
        bigcommerce: (BC_ID, BC_SECRET),
        public_base_url: PUBLIC,
    };
    app.deps((store, kms), &platform.uri(), Duration::from_secs(5), clock)
}

async fn get(deps: &consent::Deps<DynamoStore, Kms>, path_and_query: &str) -> Response<Body> {
    consent::handle(deps, request("GET", path_and_query, None, "")).await
}

/// Install and callback of `shop` through the consent handler; returns the success page.
async fn shopify_install(
    deps: &consent::Deps<DynamoStore, Kms>,
    server: &MockServer,
    shop: &str,
) -> String {
    let ts = (affinity::now_ms() / 1000).to_string();
    let resp = get(
        deps,
        &format!(
            "/v1/oauth/shopify/install?{}",
            shopify_signed(&[("shop", shop), ("timestamp", &ts)], SHOPIFY_SECRET)
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 302, "{}", text(&resp));
    let state = state_of_redirect(&resp);
    let code = unique_site("code");
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": format!("shpat_{code}"), "scope": "read_products,read_orders,read_customers,write_pixels,read_customer_events"}),
        ))
        .mount(server)
        .await;
    let resp = get(
        deps,
        &format!(
            "/v1/oauth/shopify/callback?{}",
            shopify_signed(
                &[
                    ("code", &code),
                    ("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvdGVzdA"),
                    ("shop", shop),
                    ("state", &state),
                    ("timestamp", &ts)
                ],
                SHOPIFY_SECRET
            )
        ),
    )
    .await;
    let page = text(&resp);
    assert_eq!(resp.status().as_u16(), 200, "{page}");
    page
}

/// The documented BigCommerce payload's claims for `hash` with its own `jti`, changed by `edit`,
/// signed with the app's secret.
fn bigcommerce_signed(hash: &str, jti: &str, edit: impl FnOnce(&mut Value)) -> String {
    bigcommerce_load_jwt(hash, BC_SECRET, |c| {
        c["jti"] = json!(format!("{jti}-{hash}"));
        edit(c)
    })
}

/// The documented payload's issue time, in ms: the clock of the load and uninstall calls.
fn at_fixture_time() -> i64 {
    1_659_031_626_000
}

#[tokio::test]
async fn the_consent_role_allows_exactly_what_consent_calls() {
    let server = MockServer::start().await;
    let calls = AwsCalls::default();
    let (store, kms) = recording(&calls).await;
    let deps = consent_deps(
        store.clone(),
        kms.clone(),
        &server,
        affinity::clock::system(),
    );
    let shop = format!("{}.myshopify.com", unique_site("iam-consent"));

    // First install: state Put, state Delete, token Encrypt, pointer Get, pepper GenerateDataKey,
    // tenant and pointer Put (one transaction).
    let first = shopify_install(&deps, &server, &shop).await;
    let (site, api_key) = (
        meta(&first, "site-id").expect("site"),
        meta(&first, "api-key").expect("key"),
    );
    // Re-install: refresh (Update + ConditionCheck of the pointer), and a rotation grant (Put).
    let second = shopify_install(&deps, &server, &shop).await;
    let grant = meta(&second, "rotation-grant").expect("grant");
    // A new API key with the grant (state Delete, Update), then with the current key (Update).
    let resp = consent::handle(
        &deps,
        request(
            "POST",
            &format!("/v1/sites/{site}/api-key"),
            Some("application/x-www-form-urlencoded"),
            &format!("grant={}", encode_component(&grant)),
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let api_key = meta(&text(&resp), "api-key").unwrap_or(api_key);
    let (s, b) = json_of(
        consent::handle(
            &deps,
            request_with(
                "POST",
                &format!("/v1/sites/{site}/api-key"),
                &[("authorization", &format!("Bearer {api_key}"))],
                "",
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    let api_key = b["api_key"].as_str().expect("key").to_string();
    // Messaging consent (Update).
    let (s, b) = json_of(
        consent::handle(
            &deps,
            request_with(
                "PUT",
                &format!("/v1/sites/{site}/messaging-consent"),
                &[
                    ("authorization", &format!("Bearer {api_key}")),
                    ("content-type", "application/json"),
                ],
                r#"{"granted": true}"#,
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");

    // BigCommerce: callback (code exchange, tenant created), load (reads), uninstall (Update, then
    // the deletion's mark: job Put, tenant and queue Update).
    let hash = unique_site("bc").replace('-', "").to_lowercase();
    let context = format!("stores/{hash}");
    let fixture: Value = serde_json::from_str(&repo_file(
        "tests/fixtures/bigcommerce/bigcommerce_auth_callback_docs_example.json",
    ))
    .expect("fixture");
    let mut answer = fixture["token_response"].clone();
    answer["context"] = json!(context);
    answer["access_token"] = json!(format!("bc-token-{hash}"));
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let resp = get(
        &deps,
        &format!(
            "/v1/oauth/bigcommerce/callback?account_uuid=12345678-90ab-cdef-1234-567890abcdef&code=c0de&context={}&scope=store_v2_orders",
            encode_component(&context)
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let at_fixture = consent_deps(
        store,
        kms,
        &server,
        affinity::clock::ManualClock::at(at_fixture_time()).shared(),
    );
    let jwt = bigcommerce_signed(&hash, "load", |_| {});
    let resp = get(
        &at_fixture,
        &format!("/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    // The uninstall (a new payload, by the owner): its jti receipt (Put), the stored token opened
    // (Decrypt, purpose=platform-access-token) to see BigCommerce refuse it.
    Mock::given(method("GET"))
        .and(path(format!("/stores/{hash}/v2/store")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"status": 401})))
        .mount(&server)
        .await;
    // By the store owner (`user` = `owner`).
    let uninstall_jwt = bigcommerce_signed(&hash, "uninstall", |c| c["user"] = c["owner"].clone());
    let (s, b) = json_of(
        get(
            &at_fixture,
            &format!("/v1/oauth/bigcommerce/uninstall?signed_payload_jwt={uninstall_jwt}"),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    prove("ConsentFunction", &calls, &[]);
}

// ------------------------------------------------------------------------------------------------
// tenant-delete
// ------------------------------------------------------------------------------------------------

const WEBHOOK_SECRET: &str = "iam-webhook-secret";

fn webhook(topic: &str, id: &str, payload: &str) -> Request {
    request_with(
        "POST",
        "/v1/webhooks/shopify",
        &[
            ("content-type", "application/json"),
            (
                "x-shopify-hmac-sha256",
                &webhook_hmac(WEBHOOK_SECRET, payload.as_bytes()),
            ),
            ("x-shopify-topic", topic),
            ("x-shopify-webhook-id", id),
        ],
        payload,
    )
}

fn privacy_payload(file: &str, t: &Tenant) -> String {
    let shop_name = t.shop_domain.trim_end_matches(".myshopify.com");
    repo_file(&format!("tests/fixtures/shopify/{file}")).replace("{shop}", shop_name)
}

/// An operator request as API Gateway delivers it (the sample event, IAM-authorized).
fn operator_request(file: &str, tenant_id: &str) -> Request {
    let text = repo_file(file).replace("shopify-89364bef617b484bc4f94e58dbf8649a", tenant_id);
    lambda_http::request::from_str(&text).expect("sample event parses")
}

fn in_a_minute() -> i64 {
    affinity::now_ms() + 60_000
}

#[tokio::test]
async fn the_tenant_delete_role_allows_exactly_what_tenant_delete_calls() {
    let shopify = MockServer::start().await;
    let calls = AwsCalls::default();
    let (store, kms) = recording(&calls).await;
    let settings = DeletionSettings {
        grace_ms: 300,
        recheck_ms: 100,
        clean_passes: 2,
        margin_ms: 0,
        page_size: 2,
    };
    let deps = tenant_delete::Deps {
        store: store.clone(),
        peppers: Peppers::new(kms, PEPPER_TTL),
        settings,
        request_budget_ms: 200,
        shopify_secret: Secret::new(WEBHOOK_SECRET),
        platform: affinity::oauth::client::PlatformClient::new(Duration::from_secs(5))
            .expect("client"),
        shopify_base_url: shopify.uri(),
        clock: affinity::clock::system(),
    };
    let (t, key) = tenant_with_pepper("shopify", "iam-delete").await;
    seed(&t, &key).await;
    aggregate_site(&t.site_id).await;
    let site = &t.site_id;
    let call = |method: &str, path: String| {
        request_with(
            method,
            &path,
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
    };

    // Shopper export and erasure with the API key: tenant Get, profiles BatchGet, events Query
    // (the table's key), deletes by BatchWrite.
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            call(
                "GET",
                format!("/v1/sites/{site}/shoppers/191167/export?id_type=customer"),
            ),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!((s, b["found"].as_bool()), (200, Some(true)), "{b}");
    // Shopify's privacy webhooks: receipt Put, pointer and tenant Get, the pepper (KMS) for the
    // payload's email, then the export and the erasure.
    for topic in ["customers/data_request", "customers/redact"] {
        let file = topic.replace('/', "_") + ".json";
        let id = unique_site("wh");
        let payload = privacy_payload(&file, &t);
        let (s, b) = json_of(
            tenant_delete::handle(&deps, webhook(topic, &id, &payload), in_a_minute()).await,
        );
        assert_eq!(s, 200, "{topic}: {b}");
        // Shopify repeats the delivery: the receipt's conditional Put refuses it.
        let (s, b) = json_of(
            tenant_delete::handle(&deps, webhook(topic, &id, &payload), in_a_minute()).await,
        );
        assert_eq!((s, b["duplicate"].as_bool()), (200, Some(true)), "{b}");
    }
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            call(
                "DELETE",
                format!("/v1/sites/{site}/shoppers/newsletter-00000"),
            ),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    // A webhook that fails (the tenant's pepper does not decrypt) releases its receipt (Delete),
    // so that Shopify's retry is processed.
    let (broken, _) = tenant_with_pepper("shopify", "iam-broken").await;
    let mut damaged = broken.clone();
    damaged.pepper_ciphertext = Some(b"not a KMS ciphertext".to_vec());
    store.put_tenant(&damaged).await.expect("put");
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            webhook(
                "customers/redact",
                &unique_site("wh"),
                &privacy_payload("customers_redact.json", &broken),
            ),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!(s, 503, "{b}");

    // app/uninstalled: the stored access token opened (Decrypt, purpose=platform-access-token) to see
    // Shopify's Admin API refuse it, then the deletion's mark.
    let (mut gone, _) = tenant_with_pepper("shopify", "iam-uninstalled").await;
    gone.access_token_ciphertext = Some(
        plain_kms()
            .await
            .seal_access_token(&gone.tenant_id, &Secret::new("shpat_iam_revoked"))
            .await
            .expect("seal"),
    );
    store.put_tenant(&gone).await.expect("put");
    Mock::given(method("GET"))
        .and(path(format!(
            "/admin/api/{}/shop.json",
            affinity::oauth::shopify::ADMIN_API_VERSION
        )))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": "revoked"})))
        .mount(&shopify)
        .await;
    let shop_object =
        json!({"id": 954889, "name": "Gone", "myshopify_domain": gone.shop_domain}).to_string();
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            webhook("app/uninstalled", &unique_site("wh"), &shop_object),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!(
        (s, b["trigger"].as_str()),
        (200, Some("shopify:app/uninstalled")),
        "{b}"
    );

    // Tenant deletion: the operator route (IAM) marks and works for its budget; shop/redact starts
    // another; the schedule and the runs finish both (index Queries, BatchGet confirmations,
    // BatchWrite deletes, lease Update, checkpoint Put, the final transaction).
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            operator_request("events/tenant-delete.json", &t.tenant_id),
            in_a_minute(),
        )
        .await,
    );
    assert!(s == 202 || s == 200, "{s}: {b}");
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            webhook(
                "shop/redact",
                &unique_site("wh"),
                &privacy_payload("shop_redact.json", &broken),
            ),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    let mut ctx = Context::default();
    ctx.deadline = u64::try_from(affinity::now_ms() + 1500).expect("deadline");
    let schedule: Value =
        serde_json::from_str(&repo_file("events/tenant-delete-schedule.json")).expect("json");
    tenant_delete::invoke(&deps, LambdaEvent::new(schedule, ctx))
        .await
        .expect("scheduled run");
    for tenant in [&t, &broken] {
        run_deletion_to_completion(
            &store,
            &tenant.tenant_id,
            &settings,
            Duration::from_secs(60),
        )
        .await;
    }
    let (s, b) = json_of(
        tenant_delete::handle(
            &deps,
            operator_request("events/tenant-delete-status.json", &t.tenant_id),
            in_a_minute(),
        )
        .await,
    );
    assert_eq!((s, b["state"].as_str()), (200, Some("completed")), "{b}");
    prove("TenantDeleteFunction", &calls, &[]);
}

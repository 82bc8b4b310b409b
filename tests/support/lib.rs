//! Test support: the real stack (DynamoDB Local and the KMS emulator, started by `make test`), tenants
//! made per test, requests shaped as API Gateway delivers them, and independent readers of the tables.
//!
//! Every test makes its own tenant with a unique site id, so tests share the tables and still run in
//! parallel without seeing each other's items.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use affinity::config::Tables;
use affinity::pii::DerivedPeppers;
use affinity::profile::Decay;
use affinity::store::deletion::{DeletionJob, DeletionSettings, RunOutcome};
use affinity::store::dynamo::DynamoStore;
use affinity::store::StoredEvent;
use affinity::tenant::{new_api_key, Platform, Tenant};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request};

mod consent_pages;
pub use consent_pages::*;

/// A DynamoDB item as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// The tables from the stack's environment.
///
/// # Panics
/// When the stack is not running: these tests need `make test` (or `scripts/stack.sh up` and its env).
pub fn tables() -> Tables {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the integration tests through `make test`, which starts DynamoDB Local and the KMS emulator")
        })
    };
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run the integration tests through `make test`"
    );
    Tables {
        tenants: get("TENANTS_TABLE"),
        events: get("EVENTS_TABLE"),
        profiles: get("PROFILES_TABLE"),
        popularity: get("POPULARITY_TABLE"),
    }
}

/// A client of the local DynamoDB.
pub async fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&affinity::config::aws().await)
}

/// The store over every table.
pub async fn store() -> DynamoStore {
    DynamoStore::new(client().await, tables())
}

/// A site id no other test uses: `{prefix}-{pid}-{counter}-{nanos}`.
pub fn unique_site(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new active tenant of `site_id` on `platform` (not stored yet): shop domain `{site_id}.myshopify.com`
/// on Shopify, `{site_id}.test.local` elsewhere; consent granted now; a fresh API key (its SHA-256
/// stored). Returns it and the API key.
pub fn new_tenant(platform: Platform, site_id: &str) -> (Tenant, String) {
    let (key, hash) = new_api_key(site_id).expect("random");
    let domain = if platform == Platform::Shopify {
        format!("{site_id}.myshopify.com")
    } else {
        format!("{site_id}.test.local")
    };
    let now = affinity::rfc3339(affinity::now_ms());
    let mut tenant = Tenant::new(platform, &domain, site_id, &now);
    tenant.consent_granted_at = Some(now);
    tenant.api_key_sha256 = Some(hash);
    (tenant, key)
}

/// Creates an active tenant for `site_id` on the demo platform ([`new_tenant`]); returns it and its
/// API key.
pub async fn create_tenant(store: &DynamoStore, site_id: &str) -> (Tenant, String) {
    let (tenant, key) = new_tenant(Platform::Demo, site_id);
    store.put_tenant(&tenant).await.expect("put tenant");
    (tenant, key)
}

/// Stores `tenant` and its `tenant#{tenant_id}` pointer item, as the consent function leaves them.
pub async fn put_tenant_with_pointer(store: &DynamoStore, tenant: &Tenant) {
    store.put_tenant(tenant).await.expect("put tenant");
    client()
        .await
        .put_item()
        .table_name(tables().tenants)
        .item(
            "pk",
            AttributeValue::S(format!("tenant#{}", tenant.tenant_id)),
        )
        .item("site_id", AttributeValue::S(tenant.site_id.clone()))
        .item("tenant_id", AttributeValue::S(tenant.tenant_id.clone()))
        .send()
        .await
        .expect("put pointer");
}

/// Ingest dependencies over the real store, with per-tenant test peppers.
pub async fn ingest_deps() -> ingest::Deps<DynamoStore, DerivedPeppers> {
    ingest::Deps {
        store: store().await,
        peppers: DerivedPeppers,
        decay: Decay::default(),
        event_ttl_s: 90 * 86_400,
        clock: affinity::clock::system(),
    }
}

/// Recommend dependencies over the real store, with per-tenant test peppers.
pub async fn recommend_deps() -> recommend::Deps<DynamoStore, DerivedPeppers> {
    recommend::Deps {
        popularity: recommend::cache::PopularityCache::default(),
        store: store().await,
        peppers: DerivedPeppers,
        decay: Decay::default(),
        clock: affinity::clock::system(),
    }
}

/// Aggregate dependencies over the real store.
pub async fn aggregate_deps() -> aggregate::Deps<DynamoStore> {
    aggregate::Deps {
        store: store().await,
        decay: Decay::default(),
    }
}

/// A request as API Gateway's HTTP API delivers it, with a text body.
pub fn request(
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: &str,
) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path_and_query}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Body::Text(body.to_string())).expect("request")
}

/// The status and JSON body of a response.
pub fn json_of(resp: lambda_http::Response<Body>) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let bytes: &[u8] = match resp.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"null",
    };
    (
        status,
        serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Every item of `table` (a full scan, for tests only).
pub async fn scan_all(table: &str) -> Vec<Item> {
    let c = client().await;
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let r = c
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        out.extend(r.items.unwrap_or_default());
        match r.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// Every item of `table` whose `site_id` (or tenant key) belongs to `site_id`.
pub async fn items_of_site(table: &str, site_id: &str) -> Vec<Item> {
    scan_all(table)
        .await
        .into_iter()
        .filter(|i| {
            matches!(i.get("site_id"), Some(AttributeValue::S(s)) if s == site_id)
                || matches!(i.get("pk"), Some(AttributeValue::S(p)) if p == &format!("site#{site_id}"))
        })
        .collect()
}

/// The events stored for `site_id`, read back through the `by_site` index, as the aggregate function's
/// stream would deliver them.
pub async fn stored_events(site_id: &str) -> Vec<StoredEvent> {
    let t = tables();
    let c = client().await;
    let mut keys = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let r = c
            .query()
            .table_name(&t.events)
            .index_name("by_site")
            .key_condition_expression("site_id = :s")
            .expression_attribute_values(":s", AttributeValue::S(site_id.to_string()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("query by_site");
        keys.extend(r.items.unwrap_or_default());
        match r.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for k in keys {
        let key: Item = ["pk", "sk"]
            .iter()
            .filter_map(|a| k.get(*a).map(|v| (a.to_string(), v.clone())))
            .collect();
        let r = c
            .get_item()
            .table_name(&t.events)
            .set_key(Some(key))
            .send()
            .await
            .expect("get event");
        if let Some(item) = r.item {
            out.push(affinity::store::dynamo::event_from_item(item).expect("event item"));
        }
    }
    out
}

/// Runs the aggregate function over everything stored for `site_id` (the local stand-in for its stream).
pub async fn aggregate_site(site_id: &str) -> aggregate::Report {
    aggregate::aggregate(&aggregate_deps().await, stored_events(site_id).await)
        .await
        .expect("aggregate")
}

/// Runs the deletion of `tenant_id` (as the schedule would: 5 s per run, again after 50 ms when it
/// pauses, is busy or fails) until it completes; returns the completed job.
///
/// # Panics
/// When it has not completed `within` that time, or there is no deletion job.
pub async fn run_deletion_to_completion(
    store: &DynamoStore,
    tenant_id: &str,
    settings: &DeletionSettings,
    within: std::time::Duration,
) -> DeletionJob {
    let start = std::time::Instant::now();
    loop {
        assert!(start.elapsed() < within, "deletion did not complete");
        match store
            .run_deletion(
                tenant_id,
                settings,
                affinity::now_ms,
                affinity::now_ms() + 5000,
            )
            .await
        {
            Ok(RunOutcome::Completed(job)) => return job,
            Ok(RunOutcome::Paused(_) | RunOutcome::Busy(_)) | Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Ok(RunOutcome::NotFound) => panic!("no deletion job"),
        }
    }
}

/// The documented BigCommerce load payload's claims
/// (`tests/fixtures/bigcommerce/bigcommerce_load_callback_jwt_claims_docs_example.json`) for the store
/// `hash`, changed by `edit`, as a JWT signed HS256 with `secret`.
pub fn bigcommerce_load_jwt(
    hash: &str,
    secret: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let fixture: serde_json::Value = serde_json::from_str(&repo_file(
        "tests/fixtures/bigcommerce/bigcommerce_load_callback_jwt_claims_docs_example.json",
    ))
    .expect("fixture");
    let mut claims = fixture["claims"].clone();
    claims["sub"] = serde_json::json!(format!("stores/{hash}"));
    // Each payload its own jti (a jti is used once: issue 10 §2).
    claims["jti"] = serde_json::json!(unique_site("jti"));
    edit(&mut claims);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("jwt")
}

/// The keys of the JSON object `v`.
///
/// # Panics
/// When `v` is not an object.
pub fn keys_of(v: &serde_json::Value) -> std::collections::BTreeSet<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Reads a repository file (paths from the workspace root).
pub fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `events` as a storefront sends them for logged-in customers: each event that carries a
/// `customer_id` gets a valid identity token for it (signed with the test doubles' identity secret of
/// `tenant_id`, [`affinity::identity::derived_identity_secret`]), as the merchant's theme would add.
pub fn signed_logins(
    tenant_id: &str,
    site_id: &str,
    mut events: serde_json::Value,
) -> serde_json::Value {
    let secret = affinity::identity::derived_identity_secret(tenant_id);
    let expires_s = affinity::now_ms() / 1000 + 3600;
    if let Some(list) = events.as_array_mut() {
        for e in list {
            let customer = match e.get("customer_id") {
                Some(serde_json::Value::String(c)) => c.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let token = affinity::identity::sign(
                &secret,
                site_id,
                &affinity::identity::Claims {
                    customer_id: customer,
                    expires_s,
                    email_sha256: None,
                    phone_sha256: None,
                },
            );
            e["identity_token"] = serde_json::Value::String(token);
        }
    }
    events
}

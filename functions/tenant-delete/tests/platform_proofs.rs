//! Shopify's webhooks prove what they destroy: a body must have the shape of its (unsigned) topic, and
//! `app/uninstalled` of an active store starts a deletion only once Shopify's Admin API refuses the
//! store's token (a 401). Against the memory doubles and a fake Shopify (wiremock on loopback): every
//! refusal leaves the tenant active and its data in place; the proven paths still delete.

use std::time::Duration;

use affinity::clock::ManualClock;
use affinity::oauth::client::PlatformClient;
use affinity::oauth::shopify::{webhook_hmac, ACCESS_TOKEN_HEADER, ADMIN_API_VERSION};
use affinity::oauth::{AccessTokenOpener, Secret};
use affinity::pii::{DerivedPeppers, Pepper, PepperSource};
use affinity::store::memory::MemoryStore;
use affinity::store::StoredEvent;
use affinity::tenant::{Platform, Tenant, TenantStatus};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const T0: i64 = 1_796_083_200_000;
const SECRET: &str = "proofs-webhook-secret";
const SHOP: &str = "proofs.myshopify.com";
const SITE: &str = "s_proofs";
/// The tenant's access token (the opener double reads the stored "ciphertext" as the token).
const TOKEN: &str = "shpat_proofs_token";

type Deps = tenant_delete::Deps<MemoryStore, Remembering>;

/// [`DerivedPeppers`] that records each tenant id it was told to forget.
#[derive(Debug, Default)]
struct Remembering(std::sync::Mutex<Vec<String>>);

impl Remembering {
    fn forgotten(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

impl PepperSource for Remembering {
    async fn pepper(
        &self,
        tenant: &Tenant,
    ) -> Result<std::sync::Arc<Pepper>, affinity::kms::KmsError> {
        DerivedPeppers.pepper(tenant).await
    }

    fn forget(&self, tenant_id: &str) {
        self.0.lock().expect("lock").push(tenant_id.to_string());
    }
}

impl AccessTokenOpener for Remembering {
    async fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, affinity::kms::KmsError> {
        DerivedPeppers
            .open_access_token(tenant_id, ciphertext)
            .await
    }
}

fn tenant() -> Tenant {
    let mut t = Tenant::new(Platform::Shopify, SHOP, SITE, "2026-12-01T00:00:00Z");
    t.access_token_ciphertext = Some(TOKEN.as_bytes().to_vec());
    t.pepper_ciphertext = Some(b"sealed pepper".to_vec());
    t.messaging_consent = true;
    t
}

fn event(id: &str) -> StoredEvent {
    serde_json::from_value(json!({
        "site_id": SITE, "shopper_id": "g0", "event_id": id, "type": "view", "ts": T0,
        "received_ms": T0, "expires_at": T0 / 1000 + 86_400,
        "product": {"id": "p1"}
    }))
    .expect("event")
}

struct World {
    deps: Deps,
    shopify: MockServer,
}

async fn world() -> World {
    let shopify = MockServer::start().await;
    let store = MemoryStore::with_tenants([tenant()]);
    store.tenant_pointers.set(&tenant().tenant_id, SITE);
    store
        .events
        .lock()
        .expect("lock")
        .extend([event("e1"), event("e2")]);
    let deps = tenant_delete::Deps {
        store,
        peppers: Remembering::default(),
        settings: Default::default(),
        request_budget_ms: 0,
        shopify_secret: Secret::new(SECRET),
        platform: PlatformClient::new(Duration::from_secs(2)).expect("client"),
        shopify_base_url: shopify.uri(),
        clock: ManualClock::at(T0).shared(),
    };
    World { deps, shopify }
}

/// Shopify's Admin API answers `status` to the tenant's token.
async fn admin_api_answers(w: &World, status: u16) {
    Mock::given(method("GET"))
        .and(path(format!("/admin/api/{ADMIN_API_VERSION}/shop.json")))
        .and(header(ACCESS_TOKEN_HEADER, TOKEN))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({"errors": "x"})))
        .mount(&w.shopify)
        .await;
}

fn webhook(topic: &str, id: &str, body: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://affinity.test/v1/webhooks/shopify")
        .header("content-type", "application/json")
        .header(
            "x-shopify-hmac-sha256",
            webhook_hmac(SECRET, body.as_bytes()),
        )
        .header("x-shopify-topic", topic)
        .header("x-shopify-webhook-id", id)
        .body(Body::Text(body.to_string()))
        .expect("request")
}

fn fixture(name: &str) -> String {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/shopify");
    std::fs::read_to_string(root.join(name))
        .expect("fixture")
        .replace("{shop}", "proofs")
}

fn shop_object() -> String {
    json!({"id": 954889, "name": "Proofs", "domain": "proofs.example", "myshopify_domain": SHOP,
        "country_code": "DE"})
    .to_string()
}

fn json_of(resp: Response<Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

async fn send(w: &World, topic: &str, id: &str, body: &str) -> (u16, Value) {
    json_of(tenant_delete::handle(&w.deps, webhook(topic, id, body), T0 + 60_000).await)
}

/// Nothing was destroyed: the tenant active with its secrets, its events there, no deletion job,
/// and the delivery's id free for Shopify's retry.
fn assert_untouched(w: &World, id: &str) {
    let t = w.deps.store.tenants.lock().expect("lock")[SITE].clone();
    assert_eq!(t.status, TenantStatus::Active);
    assert!(t.access_token_ciphertext.is_some() && t.pepper_ciphertext.is_some());
    assert!(t.messaging_consent);
    assert_eq!(w.deps.store.events.lock().expect("lock").len(), 2);
    assert!(w.deps.store.deletions.lock().expect("lock").is_empty());
    assert!(
        w.deps.peppers.forgotten().is_empty(),
        "no deletion, no forgetting"
    );
    assert!(!w
        .deps
        .store
        .webhook_receipts
        .lock()
        .expect("lock")
        .contains_key(id));
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_customers_redact_body_replayed_as_shop_redact_deletes_nothing() {
    let w = world().await;
    let (s, b) = send(&w, "shop/redact", "wh-1", &fixture("customers_redact.json")).await;
    assert_eq!((s, code(&b)), (400, "topic_mismatch"), "{b}");
    assert_eq!(b["error"]["field"], "x-shopify-topic");
    assert_untouched(&w, "wh-1");
}

#[tokio::test]
async fn a_shop_redact_body_replayed_as_app_uninstalled_deletes_nothing() {
    let w = world().await;
    admin_api_answers(&w, 401).await;
    let (s, b) = send(&w, "app/uninstalled", "wh-2", &fixture("shop_redact.json")).await;
    assert_eq!((s, code(&b)), (400, "topic_mismatch"), "{b}");
    assert_untouched(&w, "wh-2");
}

#[tokio::test]
async fn a_shop_object_replayed_as_shop_redact_or_a_data_request_as_redact_is_refused() {
    let w = world().await;
    for (topic, body) in [
        ("shop/redact", shop_object()),
        ("customers/redact", fixture("customers_data_request.json")),
        ("customers/data_request", fixture("customers_redact.json")),
    ] {
        let (s, b) = send(&w, topic, "wh-3", &body).await;
        assert_eq!((s, code(&b)), (400, "topic_mismatch"), "{topic}: {b}");
        assert_untouched(&w, "wh-3");
    }
}

#[tokio::test]
async fn an_app_uninstalled_whose_token_still_works_deletes_nothing() {
    let w = world().await;
    // e.g. a shop/update body (the same shop object, signed by Shopify) sent as app/uninstalled.
    admin_api_answers(&w, 200).await;
    let (s, b) = send(&w, "app/uninstalled", "wh-4", &shop_object()).await;
    assert_eq!((s, code(&b)), (409, "token_not_revoked"), "{b}");
    assert_untouched(&w, "wh-4");
}

#[tokio::test]
async fn an_app_uninstalled_that_shopify_does_not_confirm_deletes_nothing_and_can_be_retried() {
    let w = world().await;
    admin_api_answers(&w, 503).await;
    let (s, b) = send(&w, "app/uninstalled", "wh-5", &shop_object()).await;
    assert_eq!((s, code(&b)), (502, "platform_error"), "{b}");
    assert_untouched(&w, "wh-5");
    // Shopify's retry, once the token is revoked, is processed.
    w.shopify.reset().await;
    admin_api_answers(&w, 401).await;
    let (s, b) = send(&w, "app/uninstalled", "wh-5", &shop_object()).await;
    assert_eq!(
        (s, b["trigger"].as_str()),
        (200, Some("shopify:app/uninstalled")),
        "{b}"
    );
}

#[tokio::test]
async fn an_app_uninstalled_whose_token_shopify_refuses_starts_the_deletion() {
    let w = world().await;
    admin_api_answers(&w, 401).await;
    let (s, b) = send(&w, "app/uninstalled", "wh-6", &shop_object()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["trigger"], "shopify:app/uninstalled");
    assert_eq!(b["state"], "running");
    let t = w.deps.store.tenants.lock().expect("lock")[SITE].clone();
    assert_eq!(t.status, TenantStatus::Deleting);
    assert!(t.access_token_ciphertext.is_none() && t.pepper_ciphertext.is_none());
    assert!(w
        .deps
        .store
        .deletions
        .lock()
        .expect("lock")
        .contains_key(&tenant().tenant_id));
    // The pepper this warm function held leaves its memory at once (issue 10 §3).
    assert_eq!(w.deps.peppers.forgotten(), [tenant().tenant_id]);
    // Exactly one question was asked, with the stored token.
    let asked = w.shopify.received_requests().await.expect("recorded");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0]
            .headers
            .get(ACCESS_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(TOKEN)
    );
}

#[tokio::test]
async fn shop_redact_with_its_own_body_still_deletes_without_asking_shopify() {
    let w = world().await;
    let (s, b) = send(&w, "shop/redact", "wh-7", &fixture("shop_redact.json")).await;
    assert_eq!(
        (s, b["trigger"].as_str()),
        (200, Some("shopify:shop/redact")),
        "{b}"
    );
    assert_eq!(
        w.deps.store.tenants.lock().expect("lock")[SITE].status,
        TenantStatus::Deleting
    );
    assert!(w
        .shopify
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}

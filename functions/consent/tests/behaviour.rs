//! The consent function's behaviour against the memory doubles of its ports and a clock the tests move
//! (no sleeps, no DynamoDB, no KMS): installs, re-installs, grants, key rotation, messaging consent,
//! uninstall, and what the merchant sees when a part fails. The platforms are wiremock servers on
//! loopback. The same routes against DynamoDB Local and moto are `tests/tests/consent.rs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use affinity::clock::{Clock, ManualClock};
use affinity::install::Install;
use affinity::kms::MemorySealer;
use affinity::oauth::shopify::encode_component;
use affinity::store::deletion::Trigger;
use affinity::store::memory_tenants::MemoryTenants;
use affinity::store::tenants::TenantDirectory;
use affinity::tenant::{tenant_id_for, KeyCheck, Platform, Tenant, TenantStatus};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHOPIFY_ID: &str = "shopify-client-id";
const SHOPIFY_SECRET: &str = "shopify-client-secret";
const BC_ID: &str = "bc-client-id";
const BC_SECRET: &str = "bc-client-secret";
const SHOP: &str = "behaviour.myshopify.com";
/// 2026-12-01T00:00:00Z.
const START_MS: i64 = 1_796_083_200_000;
const MINUTE_MS: i64 = 60_000;

#[path = "../../../tests/support/consent_pages.rs"]
mod consent_pages;
use consent_pages::*;

type Deps = consent::Deps<MemoryTenants, MemorySealer>;

struct World {
    deps: Deps,
    clock: ManualClock,
    shopify: MockServer,
}

async fn world() -> World {
    let clock = ManualClock::at(START_MS);
    let shopify = MockServer::start().await;
    let app = TestApp {
        shopify: (SHOPIFY_ID, SHOPIFY_SECRET),
        bigcommerce: (BC_ID, BC_SECRET),
        public_base_url: "https://affinity.test",
    };
    let deps = app.deps(
        (MemoryTenants::default(), MemorySealer::default()),
        &shopify.uri(),
        Duration::from_secs(2),
        clock.shared(),
    );
    World {
        deps,
        clock,
        shopify,
    }
}

fn json_of(resp: &Response<Body>) -> Value {
    serde_json::from_str(&text(resp)).unwrap_or(Value::Null)
}

/// Who answered what: status and the error code of a page or a JSON body.
fn code(resp: &Response<Body>) -> (u16, String) {
    let t = text(resp);
    let c = meta(&t, "error")
        .or_else(|| json_of(resp)["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (resp.status().as_u16(), c)
}

impl World {
    fn now_s(&self) -> String {
        (self.clock.now_ms() / 1000).to_string()
    }

    fn signed(&self, params: &[(&str, &str)]) -> String {
        let mut pairs = params.to_vec();
        let ts = self.now_s();
        pairs.push(("timestamp", &ts));
        shopify_signed(&pairs, SHOPIFY_SECRET)
    }

    async fn get(&self, uri: &str) -> Response<Body> {
        consent::handle(&self.deps, request_with("GET", uri, &[], "")).await
    }

    /// The install route for `SHOP`; returns the state of the authorize redirect.
    async fn install(&self) -> String {
        let resp = self
            .get(&format!(
                "/v1/oauth/shopify/install?{}",
                self.signed(&[("shop", SHOP)])
            ))
            .await;
        assert_eq!(resp.status().as_u16(), 302, "{}", text(&resp));
        state_of_redirect(&resp)
    }

    async fn callback(&self, state: &str) -> Response<Body> {
        let q = self.signed(&[("code", "the-code"), ("shop", SHOP), ("state", state)]);
        self.get(&format!("/v1/oauth/shopify/callback?{q}")).await
    }

    async fn shopify_answers(&self, status: u16, body: Value) {
        self.shopify.reset().await;
        Mock::given(method("POST"))
            .and(path("/admin/oauth/access_token"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.shopify)
            .await;
    }

    /// Shopify's token endpoint will grant `token` with every scope the app asks for; then the install
    /// route for `SHOP`. Returns the state of the authorize redirect.
    async fn install_granting(&self, token: &str) -> String {
        self.shopify_answers(200, json!({"access_token": token, "scope": SHOPIFY_SCOPES}))
            .await;
        self.install().await
    }

    /// A full Shopify install of `SHOP`; returns the success page.
    async fn full_install(&self) -> String {
        let state = self.install_granting("shpat_x").await;
        let resp = self.callback(&state).await;
        assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
        text(&resp)
    }

    /// Sets the status of the tenant record of `site` (as a deletion would).
    fn set_status(&self, site: &str, status: TenantStatus) {
        let mut tenants = self.deps.store.tenants.lock().expect("lock");
        tenants.get_mut(site).expect("record").status = status;
    }

    fn tenant(&self) -> Option<Tenant> {
        let id = tenant_id_for(Platform::Shopify, SHOP);
        self.deps
            .store
            .all_tenants()
            .into_iter()
            .find(|t| t.tenant_id == id)
    }
}

#[tokio::test]
async fn a_first_install_creates_a_tenant_with_a_sealed_token_a_pepper_and_a_hashed_api_key() {
    let w = world().await;
    let page = w.full_install().await;
    let t = w.tenant().expect("tenant");
    assert_eq!(meta(&page, "site-id").as_deref(), Some(t.site_id.as_str()));
    assert_eq!(t.platform, Platform::Shopify);
    assert_eq!(
        t.scopes,
        vec![
            "read_products",
            "read_orders",
            "read_customers",
            "write_pixels",
            "read_customer_events"
        ]
    );
    assert_eq!(
        t.consent_granted_at.as_deref(),
        Some("2026-12-01T00:00:00Z")
    );
    assert!(t.pepper_ciphertext.is_some() && t.access_token_ciphertext.is_some());
    let sealed = String::from_utf8(t.access_token_ciphertext.clone().expect("ct")).expect("utf8");
    assert!(!sealed.contains("shpat_x"), "only the ciphertext is stored");
    let key = meta(&page, "api-key").expect("key shown once");
    assert_eq!(t.check_api_key(Some(&key)), KeyCheck::Valid);
    assert!(!t.messaging_consent);
}

#[tokio::test]
async fn an_oauth_state_is_refused_as_expired_eleven_minutes_later_and_nothing_is_written() {
    let w = world().await;
    let state = w.install_granting("t").await;
    w.clock.advance(11 * MINUTE_MS);
    assert_eq!(
        code(&w.callback(&state).await),
        (400, "expired_state".into())
    );
    assert!(w.tenant().is_none());
    assert_eq!(
        code(&w.callback(&state).await),
        (400, "unknown_state".into()),
        "and it is used up"
    );
}

#[tokio::test]
async fn an_oauth_state_nine_minutes_old_still_connects_the_store() {
    let w = world().await;
    let state = w.install_granting("t").await;
    w.clock.advance(9 * MINUTE_MS);
    assert_eq!(w.callback(&state).await.status().as_u16(), 200);
    assert!(w.tenant().is_some());
}

#[tokio::test]
async fn a_reinstall_keeps_site_key_and_pepper_and_refreshes_consent_and_token() {
    let w = world().await;
    let first = w.full_install().await;
    let before = w.tenant().expect("tenant");
    w.clock.advance(MINUTE_MS);
    let second = w.full_install().await;
    let after = w.tenant().expect("tenant");
    assert!(second.contains("connected again"));
    assert_eq!(meta(&second, "api-key"), None, "the key is shown once");
    assert_eq!(after.site_id, before.site_id);
    assert_eq!(after.pepper_ciphertext, before.pepper_ciphertext);
    assert_eq!(after.api_key_sha256, before.api_key_sha256);
    assert_ne!(
        after.access_token_ciphertext,
        before.access_token_ciphertext
    );
    assert_eq!(
        after.consent_granted_at.as_deref(),
        Some("2026-12-01T00:01:00Z")
    );
    let key = meta(&first, "api-key").expect("key");
    assert_eq!(after.check_api_key(Some(&key)), KeyCheck::Valid);
    assert_eq!(w.deps.store.all_tenants().len(), 1);
}

async fn post_grant(w: &World, site: &str, grant: &str) -> Response<Body> {
    let req = request_with(
        "POST",
        &format!("/v1/sites/{site}/api-key"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("grant={}", encode_component(grant)),
    );
    consent::handle(&w.deps, req).await
}

#[tokio::test]
async fn a_rotation_grant_works_once_and_not_after_ten_minutes() {
    let w = world().await;
    w.full_install().await;
    let page = w.full_install().await;
    let (site, grant) = (
        meta(&page, "site-id").expect("site"),
        meta(&page, "rotation-grant").expect("grant"),
    );
    let resp = post_grant(&w, &site, &grant).await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let new_key = meta(&text(&resp), "api-key").expect("new key");
    let t = w.tenant().expect("tenant");
    assert_eq!(t.check_api_key(Some(&new_key)), KeyCheck::Valid);
    assert_eq!(
        code(&post_grant(&w, &site, &grant).await),
        (400, "unknown_state".into())
    );

    let page = w.full_install().await;
    let late = meta(&page, "rotation-grant").expect("grant");
    w.clock.advance(10 * MINUTE_MS);
    let resp = post_grant(&w, &site, &late).await;
    assert_eq!(code(&resp), (400, "expired_state".into()));
    assert!(
        text(&resp).starts_with("<!doctype html>"),
        "a form gets a page"
    );
    assert_eq!(w.tenant().expect("tenant").api_key_sha256, t.api_key_sha256);
}

#[tokio::test]
async fn a_rotation_grant_of_another_site_is_refused_as_foreign() {
    let w = world().await;
    w.full_install().await;
    let page = w.full_install().await;
    let grant = meta(&page, "rotation-grant").expect("grant");
    let mut other = Tenant::new(
        Platform::Demo,
        "o.example",
        "s_other",
        "2026-12-01T00:00:00Z",
    );
    other.pepper_ciphertext = Some(b"sealed".to_vec());
    w.deps
        .store
        .tenants
        .lock()
        .expect("lock")
        .insert(other.site_id.clone(), other);
    assert_eq!(
        code(&post_grant(&w, "s_other", &grant).await),
        (400, "foreign_state".into())
    );
}

#[tokio::test]
async fn when_shopify_fails_the_merchant_sees_a_502_page_and_nothing_is_written() {
    let w = world().await;
    w.shopify_answers(500, json!({"errors": "boom"})).await;
    let state = w.install().await;
    let resp = w.callback(&state).await;
    assert_eq!(code(&resp), (502, "platform_error".into()));
    assert!(text(&resp).contains("Shopify did not complete the connection"));
    assert!(w.tenant().is_none());
}

#[tokio::test]
async fn fewer_scopes_than_asked_for_are_refused_and_nothing_is_written() {
    let w = world().await;
    w.shopify_answers(200, json!({"access_token": "t", "scope": "read_products"}))
        .await;
    let state = w.install().await;
    assert_eq!(
        code(&w.callback(&state).await),
        (502, "scopes_missing".into())
    );
    assert!(w.tenant().is_none());
}

#[tokio::test]
async fn when_storage_is_unavailable_the_install_answers_503_and_nothing_is_written() {
    let w = world().await;
    w.deps.store.fail_writes.store(true, Ordering::SeqCst);
    let q = w.signed(&[("shop", SHOP)]);
    let resp = w.get(&format!("/v1/oauth/shopify/install?{q}")).await;
    assert_eq!(code(&resp), (503, "unavailable".into()));
    assert!(resp.headers().get("location").is_none());
    assert!(w.deps.store.states.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn when_kms_is_unavailable_the_callback_answers_503_and_nothing_is_written() {
    let w = world().await;
    let state = w.install_granting("t").await;
    w.deps.kms.fail.store(true, Ordering::SeqCst);
    assert_eq!(code(&w.callback(&state).await), (503, "unavailable".into()));
    assert!(w.tenant().is_none());
}

#[tokio::test]
async fn a_store_being_deleted_must_wait_and_a_deleted_one_installs_as_a_new_site() {
    let w = world().await;
    w.full_install().await;
    let first = w.tenant().expect("tenant");
    w.set_status(&first.site_id, TenantStatus::Deleting);
    let state = w.install_granting("t").await;
    assert_eq!(
        code(&w.callback(&state).await),
        (409, "deletion_in_progress".into())
    );

    w.set_status(&first.site_id, TenantStatus::Deleted);
    let page = w.full_install().await;
    let site = meta(&page, "site-id").expect("site");
    assert_ne!(site, first.site_id, "a new site id");
    assert!(meta(&page, "api-key").is_some(), "and a new key");
    let now = w
        .deps
        .store
        .tenant_by_tenant_id(&first.tenant_id)
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(now.site_id, site);
    assert_ne!(now.pepper_ciphertext, first.pepper_ciphertext);
}

#[tokio::test]
async fn messaging_consent_is_stamped_with_the_clocks_time_and_needs_the_api_key() {
    let w = world().await;
    let page = w.full_install().await;
    let (site, key) = (
        meta(&page, "site-id").expect("site"),
        meta(&page, "api-key").expect("key"),
    );
    w.clock.advance(5 * MINUTE_MS);
    let resp = consent::handle(
        &w.deps,
        messaging_consent_request(&site, &key, r#"{"granted": true}"#),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    assert_eq!(
        json_of(&resp)["messaging_consent_at"],
        "2026-12-01T00:05:00Z"
    );
    let t = w.tenant().expect("tenant");
    assert!(t.messaging_consent);
    let wrong = consent::handle(
        &w.deps,
        messaging_consent_request(&site, "afk_wrong", r#"{"granted": false}"#),
    )
    .await;
    assert_eq!(code(&wrong), (401, "unauthorized".into()));
    let bad = consent::handle(
        &w.deps,
        messaging_consent_request(&site, &key, r#"{"granted": "yes"}"#),
    )
    .await;
    assert_eq!(code(&bad), (400, "bad_request".into()));
    assert_eq!(json_of(&bad)["error"]["field"], "granted");
    assert!(w.tenant().expect("tenant").messaging_consent, "unchanged");
}

#[tokio::test]
async fn granting_messaging_consent_to_a_store_without_a_pepper_is_a_permanent_500() {
    let w = world().await;
    let mut t = Tenant::new(
        Platform::Demo,
        "d.example",
        "s_nopepper",
        "2026-12-01T00:00:00Z",
    );
    let (key, hash) = affinity::tenant::new_api_key(&t.site_id).expect("random");
    t.api_key_sha256 = Some(hash);
    w.deps
        .store
        .tenants
        .lock()
        .expect("lock")
        .insert(t.site_id.clone(), t);
    let resp = consent::handle(
        &w.deps,
        messaging_consent_request("s_nopepper", &key, r#"{"granted": true}"#),
    )
    .await;
    assert_eq!(code(&resp), (500, "misconfigured".into()));
    assert!(!json_of(&resp)["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("retry"));
    assert!(
        !w.deps
            .store
            .tenant("s_nopepper")
            .expect("t")
            .messaging_consent
    );
}

fn signed_payload(store: &str, now_s: i64) -> String {
    // Each payload its own jti, by the store owner (issue 10 §2).
    static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = JTI.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let claims = json!({"aud": BC_ID, "iss": "bc", "sub": store, "iat": now_s, "nbf": now_s - 5, "exp": now_s + 3600,
        "jti": format!("jti-{jti}"), "user": {"id": 1}, "owner": {"id": 1}});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(BC_SECRET.as_bytes()).expect("key"),
    )
    .expect("jwt")
}

#[tokio::test]
async fn a_bigcommerce_uninstall_withdraws_consent_drops_the_token_and_starts_the_deletion() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "bc-token", "scope": "store_v2_orders", "context": "stores/abc123"
        })))
        .mount(&w.shopify)
        .await;
    let resp = w
        .get("/v1/oauth/bigcommerce/callback?code=c&scope=store_v2_orders&context=stores%2Fabc123")
        .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let site = meta(&text(&resp), "site-id").expect("site");
    let key = meta(&text(&resp), "api-key").expect("key");
    let granted = consent::handle(
        &w.deps,
        messaging_consent_request(&site, &key, r#"{"granted": true}"#),
    )
    .await;
    assert_eq!(granted.status().as_u16(), 200);

    w.clock.advance(30 * MINUTE_MS);
    // BigCommerce refuses the stored token now (issue 10 §2).
    let token = String::from_utf8(
        w.deps
            .store
            .tenant(&site)
            .and_then(|t| t.access_token_ciphertext)
            .expect("token"),
    )
    .expect("text");
    Mock::given(method("GET"))
        .and(path("/stores/abc123/v2/store"))
        .and(wiremock::matchers::header("x-auth-token", token.as_str()))
        .respond_with(ResponseTemplate::new(401))
        .mount(&w.shopify)
        .await;
    let jwt = signed_payload("stores/abc123", START_MS / 1000 + 1800);
    let resp = w
        .get(&format!(
            "/v1/oauth/bigcommerce/uninstall?signed_payload_jwt={jwt}"
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    assert_eq!(
        json_of(&resp)["messaging_consent_at"],
        "2026-12-01T00:30:00Z"
    );
    let t = w.deps.store.tenant(&site).expect("tenant");
    assert!(!t.messaging_consent && t.access_token_ciphertext.is_none());
    assert_eq!(t.status, TenantStatus::Deleting);
    assert_eq!(
        *w.deps.store.deletions.lock().expect("lock"),
        vec![(
            t.tenant_id.clone(),
            Trigger::BigCommerceUninstall,
            START_MS + 30 * MINUTE_MS
        )]
    );
    let jwt = signed_payload("stores/abc123", START_MS / 1000 + 1800);
    let load = w
        .get(&format!(
            "/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"
        ))
        .await;
    assert_eq!(code(&load), (410, "site_deleted".into()));
}

#[tokio::test]
async fn a_payload_signed_an_hour_and_two_minutes_ago_has_expired() {
    let w = world().await;
    let jwt = signed_payload("stores/abc123", START_MS / 1000);
    w.clock.advance(62 * MINUTE_MS);
    let resp = w
        .get(&format!(
            "/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"
        ))
        .await;
    assert_eq!(code(&resp), (401, "bad_signed_payload".into()));
}

#[tokio::test]
async fn a_demo_store_is_created_complete_and_a_second_run_issues_a_new_key() {
    let store = MemoryTenants::default();
    let sealer = MemorySealer::default();
    let clock = ManualClock::at(START_MS);
    let install = Install {
        store: &store,
        sealer: &sealer,
        clock: &clock,
    };
    let first = install.create_demo("demo").await.expect("created");
    let t = store.tenant("demo").expect("tenant");
    assert_eq!(t.platform, Platform::Demo);
    assert!(t.pepper_ciphertext.is_some(), "a pepper, like an install");
    let key = first.api_key.expect("key");
    assert_eq!(t.check_api_key(Some(&key)), KeyCheck::Valid);
    assert_eq!(
        store
            .tenant_by_tenant_id(&t.tenant_id)
            .await
            .expect("read")
            .map(|t| t.site_id),
        Some("demo".into()),
        "findable by tenant id (so it can be deleted)"
    );
    let second = install.create_demo("demo").await.expect("again");
    let t2 = store.tenant("demo").expect("tenant");
    assert_eq!(t2.pepper_ciphertext, t.pepper_ciphertext, "same pepper");
    assert_eq!(t2.check_api_key(Some(&key)), KeyCheck::Invalid);
    assert_eq!(t2.check_api_key(second.api_key.as_deref()), KeyCheck::Valid);
}

//! BigCommerce's callbacks prove what they destroy, and installs learn the store's country. Against the
//! memory doubles, a manual clock and a fake BigCommerce/Shopify (wiremock on loopback):
//! - a `signed_payload_jwt` is used once (its `jti`): a replayed load or uninstall is refused;
//! - an uninstall must be fresh (`iat` at most 300 s old), by the store owner, and BigCommerce's API
//!   must refuse the store's token (a 401); otherwise nothing changes (tenant active, token and
//!   consent kept, no deletion started);
//! - the proven uninstall still deletes;
//! - the store's `country_code` (BigCommerce `v2/store`, Shopify `shop.json`) becomes the tenant's
//!   `default_region`.

use std::time::Duration;

use affinity::clock::ManualClock;
use affinity::kms::MemorySealer;
use affinity::oauth::bigcommerce::{AUTH_TOKEN_HEADER, UNINSTALL_MAX_AGE_S};
use affinity::oauth::shopify::{signed_query, ACCESS_TOKEN_HEADER, ADMIN_API_VERSION};
use affinity::oauth::{AppCredentials, Secret};
use affinity::store::deletion::Trigger;
use affinity::store::memory_tenants::MemoryTenants;
use affinity::tenant::{Tenant, TenantStatus};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHOPIFY_ID: &str = "proofs-shopify-id";
const SHOPIFY_SECRET: &str = "proofs-shopify-secret";
const BC_ID: &str = "proofs-bc-id";
const BC_SECRET: &str = "proofs-bc-secret";
const HASH: &str = "abc123";
const CONTEXT: &str = "stores/abc123";
const START_MS: i64 = 1_796_083_200_000;
const OWNER: u64 = 7_654_321;

type Deps = consent::Deps<MemoryTenants, MemorySealer>;

struct World {
    deps: Deps,
    clock: ManualClock,
    platform: MockServer,
}

async fn world() -> World {
    let clock = ManualClock::at(START_MS);
    let platform = MockServer::start().await;
    let timeout = Duration::from_secs(2);
    let deps = consent::Deps {
        store: MemoryTenants::default(),
        kms: MemorySealer::default(),
        platform: consent::platform::PlatformClient::new(timeout).expect("client"),
        config: consent::Config {
            shopify: AppCredentials {
                client_id: SHOPIFY_ID.into(),
                client_secret: Secret::new(SHOPIFY_SECRET),
            },
            bigcommerce: AppCredentials {
                client_id: BC_ID.into(),
                client_secret: Secret::new(BC_SECRET),
            },
            shopify_base_url: platform.uri(),
            bigcommerce_login_url: platform.uri(),
            public_base_url: Some("https://affinity.test".into()),
            platform_timeout: timeout,
        },
        clock: clock.shared(),
    };
    World {
        deps,
        clock,
        platform,
    }
}

fn text(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn meta(page: &str, name: &str) -> Option<String> {
    let tag = format!("<meta name=\"affinity-{name}\" content=\"");
    let start = page.find(&tag)? + tag.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

/// Status and error code of a page or a JSON body.
fn code(resp: &Response<Body>) -> (u16, String) {
    let t = text(resp);
    let json: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
    let c = meta(&t, "error")
        .or_else(|| json["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (resp.status().as_u16(), c)
}

fn get(uri: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("https://affinity.test{uri}"))
        .body(Body::Empty)
        .expect("request")
}

/// A payload as BigCommerce signs it (the documented claims), issued at `iat` by `user`.
fn payload(iat: i64, jti: &str, user: u64) -> String {
    let claims = json!({"aud": BC_ID, "iss": "bc", "iat": iat, "nbf": iat, "exp": iat + 86_400,
        "jti": jti, "sub": CONTEXT,
        "user": {"id": user, "email": "user@example.com", "locale": "en-US"},
        "owner": {"id": OWNER, "email": "owner@example.com"}, "url": "/", "channel_id": null});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(BC_SECRET.as_bytes()).expect("key"),
    )
    .expect("jwt")
}

impl World {
    fn now_s(&self) -> i64 {
        use affinity::clock::Clock;
        self.clock.now_ms() / 1000
    }

    async fn call(&self, uri: &str) -> Response<Body> {
        consent::handle(&self.deps, get(uri)).await
    }

    async fn load(&self, jwt: &str) -> Response<Body> {
        self.call(&format!(
            "/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"
        ))
        .await
    }

    async fn uninstall(&self, jwt: &str) -> Response<Body> {
        self.call(&format!(
            "/v1/oauth/bigcommerce/uninstall?signed_payload_jwt={jwt}"
        ))
        .await
    }

    /// Installs the BigCommerce store (its settings say `GB`); returns its site id.
    async fn install_bigcommerce(&self) -> String {
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "bc-token", "scope": "store_v2_orders", "context": CONTEXT
            })))
            .mount(&self.platform)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/stores/{HASH}/v2/store")))
            .and(header(AUTH_TOKEN_HEADER, "bc-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": HASH, "name": "Proofs", "country": "United Kingdom", "country_code": "GB"
            })))
            .mount(&self.platform)
            .await;
        let resp = self
            .call("/v1/oauth/bigcommerce/callback?code=c&scope=store_v2_orders&context=stores%2Fabc123")
            .await;
        assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
        meta(&text(&resp), "site-id").expect("site")
    }

    fn tenant(&self, site: &str) -> Tenant {
        self.deps.store.tenant(site).expect("tenant")
    }

    /// BigCommerce's API answers `status` to the stored token (the sealer double's "ciphertext").
    async fn store_api_answers_stored_token(&self, site: &str, status: u16) {
        let sealed = self.tenant(site).access_token_ciphertext.expect("token");
        let token = String::from_utf8(sealed).expect("text");
        Mock::given(method("GET"))
            .and(path(format!("/stores/{HASH}/v2/store")))
            .and(header(AUTH_TOKEN_HEADER, token.as_str()))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"status": status, "title": "x"})),
            )
            .mount(&self.platform)
            .await;
    }

    /// Nothing was destroyed: active, token and messaging consent kept, no deletion started.
    fn assert_untouched(&self, site: &str) {
        let t = self.tenant(site);
        assert_eq!(t.status, TenantStatus::Active);
        assert!(t.access_token_ciphertext.is_some() && t.pepper_ciphertext.is_some());
        assert!(t.messaging_consent);
        assert!(self.deps.store.deletions.lock().expect("lock").is_empty());
    }

    async fn grant_messaging_consent(&self, site: &str) {
        let t = self.tenant(site);
        let at = affinity::rfc3339(START_MS);
        use affinity::store::tenants::TenantWriter;
        self.deps
            .store
            .set_messaging_consent(&t.site_id, true, &at)
            .await
            .expect("consent");
    }
}

#[tokio::test]
async fn an_install_stores_the_stores_country_as_its_default_region() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    assert_eq!(w.tenant(&site).default_region.as_deref(), Some("GB"));
}

#[tokio::test]
async fn a_replayed_load_payload_is_refused() {
    let w = world().await;
    w.install_bigcommerce().await;
    let jwt = payload(w.now_s(), "c5f0bcf5-a504-4ae6-8dcc-0e40eaa5a070", OWNER);
    let first = w.load(&jwt).await;
    assert_eq!(first.status().as_u16(), 200, "{}", text(&first));
    w.clock.advance(60_000);
    assert_eq!(code(&w.load(&jwt).await), (401, "replayed_payload".into()));
    // Another payload (a new jti) opens the app again.
    let again = payload(w.now_s(), "0b4f2a59-6b0f-4b89-9c57-3ac6b9d0f3a1", OWNER);
    assert_eq!(w.load(&again).await.status().as_u16(), 200);
}

#[tokio::test]
async fn a_stale_uninstall_deletes_nothing() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    w.grant_messaging_consent(&site).await;
    w.store_api_answers_stored_token(&site, 401).await;
    let jwt = payload(w.now_s(), "5d1c8e0e-1111-4c3a-9d52-7b8f1f7a2c01", OWNER);
    w.clock.advance((UNINSTALL_MAX_AGE_S + 1) * 1000);
    assert_eq!(
        code(&w.uninstall(&jwt).await),
        (400, "stale_request".into())
    );
    w.assert_untouched(&site);
}

#[tokio::test]
async fn an_uninstall_by_a_user_who_is_not_the_owner_deletes_nothing() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    w.grant_messaging_consent(&site).await;
    w.store_api_answers_stored_token(&site, 401).await;
    let jwt = payload(w.now_s(), "5d1c8e0e-2222-4c3a-9d52-7b8f1f7a2c01", 9_876_543);
    assert_eq!(
        code(&w.uninstall(&jwt).await),
        (403, "not_store_owner".into())
    );
    w.assert_untouched(&site);
}

#[tokio::test]
async fn an_uninstall_whose_token_still_works_deletes_nothing() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    w.grant_messaging_consent(&site).await;
    w.store_api_answers_stored_token(&site, 200).await;
    let jwt = payload(w.now_s(), "5d1c8e0e-3333-4c3a-9d52-7b8f1f7a2c01", OWNER);
    assert_eq!(
        code(&w.uninstall(&jwt).await),
        (409, "token_not_revoked".into())
    );
    w.assert_untouched(&site);
}

#[tokio::test]
async fn an_uninstall_that_bigcommerce_does_not_confirm_deletes_nothing() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    w.grant_messaging_consent(&site).await;
    w.store_api_answers_stored_token(&site, 500).await;
    let jwt = payload(w.now_s(), "5d1c8e0e-4444-4c3a-9d52-7b8f1f7a2c01", OWNER);
    assert_eq!(
        code(&w.uninstall(&jwt).await),
        (502, "platform_error".into())
    );
    w.assert_untouched(&site);
}

#[tokio::test]
async fn a_proven_uninstall_deletes_and_its_replay_is_refused() {
    let w = world().await;
    let site = w.install_bigcommerce().await;
    w.grant_messaging_consent(&site).await;
    w.store_api_answers_stored_token(&site, 401).await;
    w.clock.advance(5_000);
    let jwt = payload(w.now_s() - 3, "5d1c8e0e-5555-4c3a-9d52-7b8f1f7a2c01", OWNER);
    let resp = w.uninstall(&jwt).await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let t = w.tenant(&site);
    assert_eq!(t.status, TenantStatus::Deleting);
    assert!(!t.messaging_consent && t.access_token_ciphertext.is_none());
    assert_eq!(
        *w.deps.store.deletions.lock().expect("lock"),
        vec![(
            t.tenant_id.clone(),
            Trigger::BigCommerceUninstall,
            START_MS + 5_000
        )]
    );
    assert_eq!(
        code(&w.uninstall(&jwt).await),
        (401, "replayed_payload".into())
    );
}

#[tokio::test]
async fn a_shopify_install_stores_the_shops_country_as_its_default_region() {
    let w = world().await;
    let shop = "proofs.myshopify.com";
    let signed = |params: &[(&str, &str)]| {
        let now = w.now_s().to_string();
        let mut all = params.to_vec();
        all.push(("timestamp", &now));
        signed_query(SHOPIFY_SECRET, &all).expect("hmac")
    };
    let resp = w
        .call(&format!(
            "/v1/oauth/shopify/install?{}",
            signed(&[("shop", shop)])
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 302, "{}", text(&resp));
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let state = affinity::oauth::parse_query(location.split_once('?').expect("query").1)
        .into_iter()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1;
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "shpat_proofs",
            "scope": consent::SHOPIFY_SCOPES.join(","),
        })))
        .mount(&w.platform)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/admin/api/{ADMIN_API_VERSION}/shop.json")))
        .and(header(ACCESS_TOKEN_HEADER, "shpat_proofs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"shop": {
            "id": 954889, "myshopify_domain": shop, "country_code": "DE", "country": "DE"
        }})))
        .mount(&w.platform)
        .await;
    let resp = w
        .call(&format!(
            "/v1/oauth/shopify/callback?{}",
            signed(&[("code", "c0de"), ("shop", shop), ("state", &state)])
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let site = meta(&text(&resp), "site-id").expect("site");
    assert_eq!(w.tenant(&site).default_region.as_deref(), Some("DE"));
}

//! Consent end to end: Shopify and BigCommerce OAuth through the consent handler, against fake
//! platforms on loopback (wiremock), DynamoDB Local and the KMS emulator (moto).

use std::time::Duration;

use affinity::clock::{ManualClock, SharedClock};
use affinity::kms::{Kms, Peppers, ACCESS_TOKEN_PURPOSE, PEPPER_PURPOSE};
use affinity::oauth::shopify::{self, encode_component, query_hmac};
use affinity::oauth::{bigcommerce, parse_query, AppCredentials, Secret};
use affinity::store::dynamo::DynamoStore;
use affinity::store::TenantLookup;
use affinity::tenant::{tenant_id_for, KeyCheck, Platform, Tenant};
use affinity_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHOPIFY_ID: &str = "shopify-client-id";
const SHOPIFY_SECRET: &str = "shopify-client-secret";
const BC_ID: &str = "U8RphZeDjQc4kLVSzNjePo0CMjq7yOg";
const BC_SECRET: &str = "bigcommerce-client-secret";
const PUBLIC: &str = "https://affinity.test";

type Deps = consent::Deps<DynamoStore, Kms>;

// ---- support ----------------------------------------------------------------------------------------

fn fixture(path: &str) -> Value {
    serde_json::from_str(&repo_file(&format!("tests/fixtures/{path}"))).expect("fixture json")
}

async fn kms() -> Kms {
    let key = std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID: run through `make test`");
    Kms::new(
        aws_sdk_kms::Client::new(&affinity::config::aws().await),
        key,
    )
}

const APP: TestApp = TestApp {
    shopify: (SHOPIFY_ID, SHOPIFY_SECRET),
    bigcommerce: (BC_ID, BC_SECRET),
    public_base_url: PUBLIC,
};

async fn deps_at(platform: &MockServer, timeout: Duration, clock: SharedClock) -> Deps {
    APP.deps(
        (store().await, kms().await),
        &platform.uri(),
        timeout,
        clock,
    )
}

async fn deps(platform: &MockServer) -> Deps {
    deps_at(platform, Duration::from_secs(5), affinity::clock::system()).await
}

fn unique_shop() -> String {
    format!("{}.myshopify.com", unique_site("shop"))
}

fn now_s() -> String {
    (affinity::now_ms() / 1000).to_string()
}

async fn get(deps: &Deps, path_and_query: &str) -> Response<Body> {
    consent::handle(deps, request("GET", path_and_query, None, "")).await
}

/// Runs the install route for `shop` and returns the `state` of the authorize redirect.
async fn install(deps: &Deps, shop: &str) -> String {
    let q = shopify_signed(&[("shop", shop), ("timestamp", &now_s())], SHOPIFY_SECRET);
    let resp = get(deps, &format!("/v1/oauth/shopify/install?{q}")).await;
    assert_eq!(resp.status().as_u16(), 302, "{}", text(&resp));
    state_of_redirect(&resp)
}

fn callback_query(shop: &str, code: &str, state: &str, ts: &str) -> String {
    shopify_signed(
        &[
            ("code", code),
            ("host", "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvdGVzdA"),
            ("shop", shop),
            ("state", state),
            ("timestamp", ts),
        ],
        SHOPIFY_SECRET,
    )
}

async fn mount_shopify_token(server: &MockServer, code: &str, token: &str, scope: &str) {
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .and(body_json(
            json!({"client_id": SHOPIFY_ID, "client_secret": SHOPIFY_SECRET, "code": code}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": token, "scope": scope})),
        )
        .expect(1)
        .mount(server)
        .await;
}

const ALL_SCOPES: &str =
    "read_products,write_orders,read_customers,write_pixels,read_customer_events";

/// A full Shopify install of `shop`; returns the success page.
async fn shopify_install(deps: &Deps, server: &MockServer, shop: &str, token: &str) -> String {
    let state = install(deps, shop).await;
    let code = format!("code-{}", unique_site("c"));
    mount_shopify_token(server, &code, token, ALL_SCOPES).await;
    let resp = get(
        deps,
        &format!(
            "/v1/oauth/shopify/callback?{}",
            callback_query(shop, &code, &state, &now_s())
        ),
    )
    .await;
    let page = text(&resp);
    assert_eq!(resp.status().as_u16(), 200, "{page}");
    page
}

/// Every item of the tenants table that belongs to `tenant_id` (its record, its pointer).
async fn tenant_items(tenant_id: &str) -> Vec<Item> {
    scan_all(&tables().tenants)
        .await
        .into_iter()
        .filter(|i| matches!(i.get("tenant_id"), Some(AttributeValue::S(t)) if t == tenant_id))
        .collect()
}

fn contains_bytes(item: &Item, needle: &[u8]) -> bool {
    item.values().any(|v| match v {
        AttributeValue::S(s) => s.as_bytes().windows(needle.len()).any(|w| w == needle),
        AttributeValue::B(b) => b.as_ref().windows(needle.len()).any(|w| w == needle),
        _ => false,
    })
}

async fn tenant_of_shop(shop: &str) -> Option<Tenant> {
    store()
        .await
        .tenant_by_tenant_id(&tenant_id_for(Platform::Shopify, shop))
        .await
        .expect("read tenant")
}

// ---- Shopify: signatures ----------------------------------------------------------------------------

#[test]
fn shopify_hmac_vectors_from_the_fixtures_verify_and_the_must_fail_ones_do_not() {
    let v = fixture("shopify/hmac-vectors.json");
    let cases = v["oauth_callback_query_hmac"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for c in cases {
        let id = c["id"].as_str().expect("id");
        let secret = c["secret"].as_str().expect("secret");
        let params: Vec<(String, String)> = match (c.get("raw_query"), c.get("params")) {
            (Some(Value::String(q)), _) => parse_query(q),
            (_, Some(Value::Object(m))) => m
                .iter()
                .flat_map(|(k, v)| match v {
                    Value::Array(vs) => vs
                        .iter()
                        .map(|x| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                        .collect::<Vec<_>>(),
                    other => vec![(k.clone(), other.as_str().unwrap_or_default().to_string())],
                })
                .collect(),
            _ => panic!("{id}: no query"),
        };
        if let Some(m) = c["signed_message"].as_str() {
            assert_eq!(shopify::signed_message(&params).as_deref(), Ok(m), "{id}");
        }
        if let Some(h) = c["expected_hmac_hex"].as_str() {
            assert_eq!(query_hmac(secret, &params).as_deref(), Ok(h), "{id}");
        }
        let with_hmac = if params.iter().any(|(k, _)| k == "hmac") {
            params.clone()
        } else {
            let mut p = params.clone();
            p.push((
                "hmac".into(),
                c["expected_hmac_hex"].as_str().unwrap_or_default().into(),
            ));
            p
        };
        let verdict = shopify::verify_query_hmac(secret, &with_hmac);
        if c["valid"] == json!(true) {
            assert_eq!(verdict, Ok(()), "{id} must verify");
            assert_eq!(
                shopify::verify_query_hmac("not-the-secret", &with_hmac),
                Err(shopify::ShopifyError::BadSignature),
                "{id} must fail under another secret"
            );
        } else {
            assert!(verdict.is_err(), "{id} must fail");
        }
    }
    for w in v["webhook_body_hmac_base64"].as_array().expect("webhooks") {
        let secret = w["secret"].as_str().expect("secret");
        let body = w["raw_body"].as_str().expect("body").as_bytes();
        let header = w["headers"]["X-Shopify-Hmac-Sha256"].as_str();
        assert_eq!(
            shopify::verify_shopify_webhook(secret, body, header),
            Ok(())
        );
        assert_eq!(
            shopify::webhook_hmac(secret, body),
            header.unwrap_or_default()
        );
        assert_eq!(
            shopify::verify_shopify_webhook(secret, b"{\"foo\": \"baz\"}", header),
            Err(shopify::SignatureError::Mismatch)
        );
        assert_eq!(
            shopify::verify_shopify_webhook("other", body, header),
            Err(shopify::SignatureError::Mismatch)
        );
    }
}

#[test]
fn changing_any_parameter_of_the_documented_callback_breaks_its_hmac() {
    let v = fixture("shopify/hmac-vectors.json");
    let c = &v["oauth_callback_query_hmac"][0];
    let params = parse_query(c["raw_query"].as_str().expect("query"));
    assert_eq!(shopify::verify_query_hmac("hush", &params), Ok(()));
    for i in 0..params.len() {
        if params[i].0 == "hmac" {
            continue;
        }
        let mut p = params.clone();
        p[i].1.push('x');
        assert_eq!(
            shopify::verify_query_hmac("hush", &p),
            Err(shopify::ShopifyError::BadSignature),
            "changed {}",
            params[i].0
        );
        let mut dropped = params.clone();
        dropped.remove(i);
        assert!(shopify::verify_query_hmac("hush", &dropped).is_err());
    }
    let mut upper = params.clone();
    for (k, v) in &mut upper {
        if k == "hmac" {
            *v = "0".repeat(64);
        }
    }
    assert!(shopify::verify_query_hmac("hush", &upper).is_err());
}

// ---- Shopify: install ----------------------------------------------------------------------------

#[tokio::test]
async fn install_with_a_valid_signature_redirects_to_the_shops_authorize_page_with_a_fresh_state() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let q = shopify_signed(&[("shop", &shop), ("timestamp", &now_s())], SHOPIFY_SECRET);
    let resp = get(&d, &format!("/v1/oauth/shopify/install?{q}")).await;
    assert_eq!(resp.status().as_u16(), 302);
    let loc = location(&resp);
    let (base, query) = loc.split_once('?').expect("query");
    assert_eq!(base, format!("{}/admin/oauth/authorize", server.uri()));
    let p = parse_query(query);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("client_id"), Some(SHOPIFY_ID));
    assert_eq!(
        get("scope"),
        Some("read_products,read_orders,read_customers,write_pixels,read_customer_events")
    );
    assert_eq!(
        get("redirect_uri"),
        Some("https://affinity.test/v1/oauth/shopify/callback")
    );
    let state = get("state").expect("state");
    assert_eq!(state.len(), 43, "256 random bits");
    // The state is stored, bound to the shop, with a 10-minute TTL.
    let item = client()
        .await
        .get_item()
        .table_name(tables().tenants)
        .key("pk", AttributeValue::S(format!("oauth-state#{state}")))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("state item");
    assert_eq!(item.get("subject"), Some(&AttributeValue::S(shop)));
    let expires: i64 = match item.get("expires_at") {
        Some(AttributeValue::N(n)) => n.parse().expect("number"),
        other => panic!("expires_at: {other:?}"),
    };
    let now = affinity::now_ms() / 1000;
    assert!(
        (now + 590..=now + 600).contains(&expires),
        "{expires} vs {now}"
    );
    assert_ne!(
        install(&d, &unique_shop()).await,
        state,
        "every install gets its own state"
    );
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_refused_with_400() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let now = affinity::now_ms() / 1000;
    for ts in [now - 91, now + 91, now - 86_400] {
        let q = shopify_signed(
            &[("shop", &shop), ("timestamp", &ts.to_string())],
            SHOPIFY_SECRET,
        );
        let resp = get(&d, &format!("/v1/oauth/shopify/install?{q}")).await;
        assert_eq!(resp.status().as_u16(), 400, "{ts}");
        let page = text(&resp);
        assert_eq!(meta(&page, "error").as_deref(), Some("stale_request"));
        assert!(page.contains("90 seconds"));
    }
    let q = shopify_signed(
        &[("shop", &shop), ("timestamp", &(now - 85).to_string())],
        SHOPIFY_SECRET,
    );
    assert_eq!(
        get(&d, &format!("/v1/oauth/shopify/install?{q}"))
            .await
            .status()
            .as_u16(),
        302
    );
    let q = shopify_signed(&[("shop", &shop)], SHOPIFY_SECRET);
    let resp = get(&d, &format!("/v1/oauth/shopify/install?{q}")).await;
    assert_eq!(
        meta(&text(&resp), "error").as_deref(),
        Some("missing_parameter")
    );
}

#[tokio::test]
async fn a_signed_request_for_a_shop_outside_myshopify_com_is_refused_with_400() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    for shop in [
        "evil.com",
        "shop.myshopify.com.evil.com",
        "evil.com#.myshopify.com",
        "-shop.myshopify.com",
        "a.b.myshopify.com",
        "127.0.0.1",
        "shop.myshopify.com/admin",
        "",
    ] {
        let q = shopify_signed(&[("shop", shop), ("timestamp", &now_s())], SHOPIFY_SECRET);
        let resp = get(&d, &format!("/v1/oauth/shopify/install?{q}")).await;
        assert_eq!(resp.status().as_u16(), 400, "{shop}");
        assert_eq!(
            meta(&text(&resp), "error").as_deref(),
            Some("bad_shop"),
            "{shop}"
        );
        assert!(location(&resp).is_empty());
    }
}

#[tokio::test]
async fn a_wrong_hmac_is_refused_with_401_without_telling_the_expected_one() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let ts = now_s();
    let good = shopify_signed(&[("shop", &shop), ("timestamp", &ts)], SHOPIFY_SECRET);
    let expected = good
        .rsplit_once("hmac=")
        .map(|(_, h)| h.to_string())
        .expect("hmac");
    for q in [
        shopify_signed(
            &[("shop", &shop), ("timestamp", &ts)],
            "another-apps-secret",
        ),
        good.replace(&shop, &unique_shop()),
        format!("shop={shop}&timestamp={ts}&hmac=zz"),
        format!("shop={shop}&timestamp={ts}"),
        format!("{good}&hmac={expected}"),
    ] {
        let resp = get(&d, &format!("/v1/oauth/shopify/install?{q}")).await;
        let status = resp.status().as_u16();
        assert!(status == 401 || status == 400, "{q}: {status}");
        let page = text(&resp);
        assert!(
            !page.contains(&expected),
            "the expected hmac is never shown"
        );
        assert!(!page.contains(SHOPIFY_SECRET));
    }
}

// ---- Shopify: the callback ------------------------------------------------------------------------

#[tokio::test]
async fn the_full_shopify_install_creates_a_tenant_with_a_sealed_token_a_sealed_pepper_and_a_hashed_api_key(
) {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let token = format!("shpat_{}", unique_site("token").replace('-', ""));
    let page = shopify_install(&d, &server, &shop, &token).await;

    // The page: the store, what is tracked, the site id, the API key once.
    assert!(
        page.contains(&shop) && page.contains("purchases") && page.contains("shown only this once")
    );
    let site_id = meta(&page, "site-id").expect("site id");
    let tenant_id = meta(&page, "tenant-id").expect("tenant id");
    let api_key = meta(&page, "api-key").expect("api key");
    assert_eq!(tenant_id, tenant_id_for(Platform::Shopify, &shop));
    assert!(!page.contains(&token), "the access token is never shown");

    // The record and its pointer, and nothing in the clear.
    let t = store()
        .await
        .tenant_by_site(&site_id)
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(t.tenant_id, tenant_id);
    assert_eq!(t.platform.as_str(), "shopify");
    assert_eq!(t.shop_domain, shop);
    assert_eq!(
        t.scopes,
        vec![
            "read_products",
            "write_orders",
            "read_customers",
            "write_pixels",
            "read_customer_events"
        ]
    );
    assert!(t.consent_granted_at.is_some());
    assert!(
        !t.messaging_consent,
        "messaging consent is separate and off"
    );
    assert_eq!(t.check_api_key(Some(&api_key)), KeyCheck::Valid);
    let items = tenant_items(&tenant_id).await;
    assert_eq!(items.len(), 2, "the record and the tenant# pointer");
    let pointer = items
        .iter()
        .find(|i| i.get("pk") == Some(&AttributeValue::S(format!("tenant#{tenant_id}"))))
        .expect("pointer");
    assert_eq!(
        pointer.get("site_id"),
        Some(&AttributeValue::S(site_id.clone()))
    );
    for item in &items {
        assert!(
            !contains_bytes(item, token.as_bytes()),
            "no plaintext token stored"
        );
        assert!(
            !contains_bytes(item, api_key.as_bytes()),
            "no plaintext API key stored"
        );
    }
    let record = items
        .iter()
        .find(|i| i.get("pk") == Some(&AttributeValue::S(format!("site#{site_id}"))))
        .expect("record");
    assert!(matches!(
        record.get("access_token_ciphertext"),
        Some(AttributeValue::B(_))
    ));
    assert!(matches!(
        record.get("pepper_ciphertext"),
        Some(AttributeValue::B(_))
    ));

    // The token opens with its own tenant's context only; the pepper is 32 bytes.
    let k = kms().await;
    let sealed = t.access_token_ciphertext.clone().expect("token ciphertext");
    assert_eq!(
        k.open_access_token(&tenant_id, &sealed)
            .await
            .expect("open")
            .expose(),
        token
    );
    let pepper = t.pepper_ciphertext.clone().expect("pepper ciphertext");
    assert!(
        k.open_pepper(&tenant_id, &pepper).await.is_ok(),
        "a 32-byte pepper"
    );
    assert!(!contains_bytes(record, b"pii-hash-key"));
}

#[tokio::test]
async fn a_ciphertext_opens_only_under_its_own_tenants_encryption_context() {
    let k = kms().await;
    let (a, b) = (
        tenant_id_for(Platform::Shopify, &unique_shop()),
        tenant_id_for(Platform::Shopify, &unique_shop()),
    );
    let sealed = k
        .seal_access_token(&a, &Secret::new("shpat_secret"))
        .await
        .expect("seal");
    assert!(!sealed.windows(12).any(|w| w == b"shpat_secret"));
    assert_eq!(
        k.open_access_token(&a, &sealed)
            .await
            .expect("own")
            .expose(),
        "shpat_secret"
    );
    assert!(
        matches!(
            k.open_access_token(&b, &sealed).await,
            Err(affinity::kms::KmsError::Refused(_))
        ),
        "another tenant's context fails"
    );
    let pepper = k.new_pepper(&a).await.expect("data key");
    assert!(k.open_pepper(&a, &pepper).await.is_ok());
    assert!(
        k.open_pepper(&b, &pepper).await.is_err(),
        "another tenant's pepper context fails"
    );
    assert!(
        k.open_access_token(&a, &pepper).await.is_err(),
        "a pepper is not a token (purpose)"
    );
    assert!(
        k.open_pepper(&a, &sealed).await.is_err(),
        "a token is not a pepper (purpose)"
    );
    assert_ne!(ACCESS_TOKEN_PURPOSE, PEPPER_PURPOSE);
}

#[tokio::test]
async fn the_pepper_cache_decrypts_once_and_serves_the_same_key_from_memory() {
    let k = kms().await;
    let tenant_id = tenant_id_for(Platform::Shopify, &unique_shop());
    let pepper = k.new_pepper(&tenant_id).await.expect("data key");
    let mut t = Tenant {
        tenant_id: tenant_id.clone(),
        site_id: unique_site("cache"),
        platform: Platform::Shopify,
        shop_domain: "x.myshopify.com".into(),
        status: affinity::tenant::TenantStatus::Active,
        scopes: vec![],
        consent_granted_at: None,
        messaging_consent: true,
        messaging_consent_at: None,
        access_token_ciphertext: None,
        pepper_ciphertext: Some(pepper),
        identity_secret_ciphertext: None,
        api_key_sha256: None,
        default_region: None,
        created_at: "2026-11-29T00:00:00Z".into(),
    };
    let cache = Peppers::new(k.clone(), Duration::from_secs(300));
    let first = cache.get(&t).await.expect("pepper");
    let second = cache.get(&t).await.expect("pepper");
    assert!(
        std::sync::Arc::ptr_eq(&first, &second),
        "served from memory"
    );
    assert_eq!(cache.len(), 1);
    // A new pepper (the tenant was deleted and installed again) is never served from the old entry.
    t.pepper_ciphertext = Some(k.new_pepper(&tenant_id).await.expect("data key"));
    let third = cache.get(&t).await.expect("pepper");
    assert!(!std::sync::Arc::ptr_eq(&first, &third));
    // Expired entries are decrypted again.
    let short = Peppers::new(k, Duration::from_millis(1));
    let a = short.get(&t).await.expect("pepper");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = short.get(&t).await.expect("pepper");
    assert!(!std::sync::Arc::ptr_eq(&a, &b));
    cache.forget(&tenant_id);
    assert!(cache.is_empty());
}

#[tokio::test]
async fn a_replayed_state_is_refused_and_the_code_is_not_exchanged_twice() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let state = install(&d, &shop).await;
    mount_shopify_token(&server, "code-1", "shpat_one", ALL_SCOPES).await;
    let q = callback_query(&shop, "code-1", &state, &now_s());
    let first = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(first.status().as_u16(), 200, "{}", text(&first));
    let again = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(again.status().as_u16(), 400);
    assert_eq!(
        meta(&text(&again), "error").as_deref(),
        Some("unknown_state")
    );
    // expect(1) on the mock: verified when the server drops.
}

#[tokio::test]
async fn a_state_issued_for_another_shop_is_refused() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let (mine, other) = (unique_shop(), unique_shop());
    let state = install(&d, &other).await;
    let q = callback_query(&mine, "code-x", &state, &now_s());
    let resp = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        meta(&text(&resp), "error").as_deref(),
        Some("foreign_state")
    );
    assert!(tenant_of_shop(&mine).await.is_none());
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "no exchange"
    );
}

#[tokio::test]
async fn an_unknown_or_expired_state_is_refused() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let q = callback_query(&shop, "code-x", "never-issued", &now_s());
    let resp = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(
        meta(&text(&resp), "error").as_deref(),
        Some("unknown_state")
    );

    let state = install(&d, &shop).await;
    // Eleven minutes later (the callback itself freshly signed by Shopify then).
    let later = deps_at(
        &server,
        Duration::from_secs(5),
        ManualClock::at(affinity::now_ms() + 11 * 60_000).shared(),
    )
    .await;
    let ts = ((affinity::now_ms() + 11 * 60_000) / 1000).to_string();
    let q = callback_query(&shop, "code-x", &state, &ts);
    let resp = get(&later, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        meta(&text(&resp), "error").as_deref(),
        Some("expired_state")
    );
    assert!(tenant_of_shop(&shop).await.is_none());
}

#[tokio::test]
async fn when_shopify_answers_500_the_merchant_sees_a_502_page_and_nothing_is_written() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let state = install(&d, &shop).await;
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("{\"errors\":\"boom\"}"))
        .mount(&server)
        .await;
    let q = callback_query(&shop, "code-x", &state, &now_s());
    let resp = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 502);
    let page = text(&resp);
    assert!(page.contains("Shopify did not complete the connection"));
    assert!(page.starts_with("<!doctype html>"));
    assert!(tenant_of_shop(&shop).await.is_none());
    assert!(tenant_items(&tenant_id_for(Platform::Shopify, &shop))
        .await
        .is_empty());
}

#[tokio::test]
async fn when_shopify_does_not_answer_in_time_the_merchant_sees_a_502_page_and_nothing_is_written()
{
    let server = MockServer::start().await;
    let d = deps_at(
        &server,
        Duration::from_millis(300),
        affinity::clock::system(),
    )
    .await;
    let shop = unique_shop();
    let state = install(&d, &shop).await;
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "late", "scope": ALL_SCOPES}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let q = callback_query(&shop, "code-x", &state, &now_s());
    let started = std::time::Instant::now();
    let resp = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at the deadline"
    );
    assert!(tenant_items(&tenant_id_for(Platform::Shopify, &shop))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_answer_with_fewer_scopes_than_requested_is_refused_and_nothing_is_written() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let state = install(&d, &shop).await;
    mount_shopify_token(&server, "code-s", "shpat_s", "read_products").await;
    let q = callback_query(&shop, "code-s", &state, &now_s());
    let resp = get(&d, &format!("/v1/oauth/shopify/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 502);
    assert_eq!(
        meta(&text(&resp), "error").as_deref(),
        Some("scopes_missing")
    );
    assert!(tenant_of_shop(&shop).await.is_none());
}

#[tokio::test]
async fn reinstalling_keeps_the_tenant_site_key_and_pepper_and_replaces_the_token() {
    let server = MockServer::start().await;
    let clock = ManualClock::at(affinity::now_ms());
    let d = deps_at(&server, Duration::from_secs(5), clock.shared()).await;
    let shop = unique_shop();
    let first = shopify_install(&d, &server, &shop, "shpat_first").await;
    let api_key = meta(&first, "api-key").expect("key");
    let before = tenant_of_shop(&shop).await.expect("tenant");
    // Consent times are RFC 3339 to the second: the reinstall comes a second later.
    clock.advance(1100);
    let second = shopify_install(&d, &server, &shop, "shpat_second").await;
    assert_eq!(meta(&second, "api-key"), None, "the key is shown only once");
    assert!(second.contains("connected again"));
    let after = tenant_of_shop(&shop).await.expect("tenant");
    assert_eq!(after.tenant_id, before.tenant_id);
    assert_eq!(after.site_id, before.site_id);
    assert_eq!(
        after.pepper_ciphertext, before.pepper_ciphertext,
        "same pepper: stored hashes stay valid"
    );
    assert_eq!(after.api_key_sha256, before.api_key_sha256);
    assert_eq!(after.check_api_key(Some(&api_key)), KeyCheck::Valid);
    assert_ne!(
        after.consent_granted_at, before.consent_granted_at,
        "consent refreshed"
    );
    assert_ne!(
        after.access_token_ciphertext,
        before.access_token_ciphertext
    );
    let k = kms().await;
    let token = k
        .open_access_token(
            &after.tenant_id,
            after.access_token_ciphertext.as_deref().expect("ct"),
        )
        .await
        .expect("open");
    assert_eq!(token.expose(), "shpat_second");
    assert_eq!(
        tenant_items(&after.tenant_id).await.len(),
        2,
        "still one record and one pointer"
    );
}

#[tokio::test]
async fn a_reinstall_offers_a_single_use_grant_for_a_new_api_key() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let first = shopify_install(&d, &server, &shop, "shpat_a").await;
    let old_key = meta(&first, "api-key").expect("key");
    let second = shopify_install(&d, &server, &shop, "shpat_b").await;
    let grant = meta(&second, "rotation-grant").expect("grant");
    let url = meta(&second, "rotation-url").expect("url");
    let site = meta(&second, "site-id").expect("site");
    assert_eq!(url, format!("{PUBLIC}/v1/sites/{site}/api-key"));
    let post = |g: &str| {
        request(
            "POST",
            &format!("/v1/sites/{site}/api-key"),
            Some("application/x-www-form-urlencoded"),
            &format!("grant={}", encode_component(g)),
        )
    };
    let resp = consent::handle(&d, post(&grant)).await;
    assert_eq!(resp.status().as_u16(), 200, "{}", text(&resp));
    let new_key = meta(&text(&resp), "api-key").expect("new key");
    let t = tenant_of_shop(&shop).await.expect("tenant");
    assert_eq!(t.check_api_key(Some(&new_key)), KeyCheck::Valid);
    assert_eq!(t.check_api_key(Some(&old_key)), KeyCheck::Invalid);
    let again = consent::handle(&d, post(&grant)).await;
    assert_eq!(again.status().as_u16(), 400, "single use");
    assert_eq!(
        meta(&text(&again), "error").as_deref(),
        Some("unknown_state")
    );
}

#[tokio::test]
async fn the_api_key_rotates_with_the_current_key_and_the_old_one_stops_working() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let page = shopify_install(&d, &server, &shop, "shpat_r").await;
    let (site, old) = (
        meta(&page, "site-id").expect("site"),
        meta(&page, "api-key").expect("key"),
    );
    let rotate = |key: &str| {
        request_with(
            "POST",
            &format!("/v1/sites/{site}/api-key"),
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
    };
    let (s, b) = json_of(consent::handle(&d, rotate(&old)).await);
    assert_eq!(s, 200, "{b}");
    let new = b["api_key"].as_str().expect("new key").to_string();
    assert_ne!(new, old);
    let (s, _) = json_of(consent::handle(&d, rotate(&old)).await);
    assert_eq!(s, 401, "the old key no longer works");
    let t = tenant_of_shop(&shop).await.expect("tenant");
    assert_eq!(t.check_api_key(Some(&old)), KeyCheck::Invalid);
    assert_eq!(t.check_api_key(Some(&new)), KeyCheck::Valid);
    let items = tenant_items(&t.tenant_id).await;
    assert!(
        items.iter().all(|i| !contains_bytes(i, new.as_bytes())),
        "only its hash is stored"
    );
    let (s, _) = json_of(consent::handle(&d, rotate("afk_nonsense")).await);
    assert_eq!(s, 401);
}

#[tokio::test]
async fn messaging_consent_is_granted_and_withdrawn_with_the_api_key() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let shop = unique_shop();
    let page = shopify_install(&d, &server, &shop, "shpat_m").await;
    let (site, key) = (
        meta(&page, "site-id").expect("site"),
        meta(&page, "api-key").expect("key"),
    );
    let put = |body: &str, key: &str| messaging_consent_request(&site, key, body);
    let (s, b) = json_of(consent::handle(&d, put(r#"{"granted": true}"#, &key)).await);
    assert_eq!((s, &b["messaging_consent"]), (200, &json!(true)), "{b}");
    let t = tenant_of_shop(&shop).await.expect("tenant");
    assert!(t.messaging_consent && t.messaging_consent_at.is_some());
    let (s, _) = json_of(consent::handle(&d, put(r#"{"granted": true}"#, "afk_wrong")).await);
    assert_eq!(s, 401);
    let (s, _) = json_of(consent::handle(&d, put(r#"{"granted": "yes"}"#, &key)).await);
    assert_eq!(s, 400);
    let (s, _) = json_of(consent::handle(&d, put(r#"{"granted": false}"#, &key)).await);
    assert_eq!(s, 200);
    assert!(
        !tenant_of_shop(&shop)
            .await
            .expect("tenant")
            .messaging_consent
    );
}

// ---- BigCommerce ----------------------------------------------------------------------------------

fn unique_store_hash() -> String {
    unique_site("bc").replace('-', "").to_lowercase()
}

/// The documented auth callback, for another store; the fake login server answers as documented.
async fn bigcommerce_install(d: &Deps, server: &MockServer, hash: &str) -> Response<Body> {
    let f = fixture("bigcommerce/bigcommerce_auth_callback_docs_example.json");
    let q = &f["decoded_query"];
    let context = format!("stores/{hash}");
    let mut expected = f["token_request"]["body"].clone();
    expected["client_id"] = json!(BC_ID);
    expected["client_secret"] = json!(BC_SECRET);
    expected["context"] = json!(context);
    expected["redirect_uri"] = json!(format!("{PUBLIC}/v1/oauth/bigcommerce/callback"));
    let mut answer = f["token_response"].clone();
    answer["context"] = json!(context);
    answer["access_token"] = json!(format!("bc-token-{hash}"));
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(body_json(expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(server)
        .await;
    let query = format!(
        "account_uuid={}&code={}&context={}&scope={}",
        encode_component(q["account_uuid"].as_str().expect("uuid")),
        encode_component(q["code"].as_str().expect("code")),
        encode_component(&context),
        q["scope"].as_str().expect("scope").replace(' ', "+"),
    );
    get(d, &format!("/v1/oauth/bigcommerce/callback?{query}")).await
}

/// The documented load payload's claims for `hash`, changed by `edit`, signed HS256 with `secret`.
fn payload(hash: &str, secret: &str, edit: impl FnOnce(&mut Value)) -> String {
    bigcommerce_load_jwt(hash, secret, edit)
}

/// The documented payload's issue time: the clock of the load tests.
fn at_fixture_clock() -> SharedClock {
    ManualClock::at(1_659_031_626_000).shared()
}

#[tokio::test]
async fn the_bigcommerce_callback_exchanges_the_code_as_documented_and_connects_the_store() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let hash = unique_store_hash();
    let resp = bigcommerce_install(&d, &server, &hash).await;
    let page = text(&resp);
    assert_eq!(resp.status().as_u16(), 200, "{page}");
    assert!(page.contains(&format!("stores/{hash}")));
    let site = meta(&page, "site-id").expect("site");
    let key = meta(&page, "api-key").expect("key");
    let t = store()
        .await
        .tenant_by_site(&site)
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(
        t.tenant_id,
        tenant_id_for(Platform::BigCommerce, &format!("stores/{hash}"))
    );
    assert_eq!(t.platform.as_str(), "bigcommerce");
    assert_eq!(
        t.scopes,
        vec!["store_v2_orders", "store_channel_listings_read_only"]
    );
    assert_eq!(t.check_api_key(Some(&key)), KeyCheck::Valid);
    let token = kms()
        .await
        .open_access_token(
            &t.tenant_id,
            t.access_token_ciphertext.as_deref().expect("ct"),
        )
        .await
        .expect("open");
    assert_eq!(token.expose(), format!("bc-token-{hash}"));
    // One token exchange (the install also asks the store's country: issue 10 §4).
    let requests: Vec<_> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/oauth2/token")
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}

#[tokio::test]
async fn when_the_bigcommerce_login_server_fails_the_merchant_sees_a_502_page_and_nothing_is_written(
) {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let hash = unique_store_hash();
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let q = format!("code=c&scope=store_v2_orders&context=stores%2F{hash}&account_uuid=u");
    let resp = get(&d, &format!("/v1/oauth/bigcommerce/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(text(&resp).contains("BigCommerce did not complete the connection"));
    let tid = tenant_id_for(Platform::BigCommerce, &format!("stores/{hash}"));
    assert!(tenant_items(&tid).await.is_empty());
    // An answer for another store is not accepted either.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "t", "scope": "store_v2_orders", "context": "stores/someoneelse"}),
        ))
        .mount(&server)
        .await;
    let resp = get(&d, &format!("/v1/oauth/bigcommerce/callback?{q}")).await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(tenant_items(&tid).await.is_empty());
    let resp = get(
        &d,
        "/v1/oauth/bigcommerce/callback?code=c&scope=s&context=stores%2FBAD%2Fx",
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn the_load_callback_verifies_the_documented_payload_and_shows_the_connected_store() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let hash = unique_store_hash();
    let installed = text(&bigcommerce_install(&d, &server, &hash).await);
    let site = meta(&installed, "site-id").expect("site");
    let at_fixture = deps_at(&server, Duration::from_secs(5), at_fixture_clock()).await;
    let jwt = payload(&hash, BC_SECRET, |_| {});
    let resp = get(
        &at_fixture,
        &format!("/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"),
    )
    .await;
    let page = text(&resp);
    assert_eq!(resp.status().as_u16(), 200, "{page}");
    assert_eq!(meta(&page, "site-id"), Some(site));
    assert_eq!(meta(&page, "api-key"), None);
    assert!(
        !page.contains("authorized_user@example.com"),
        "the payload's emails are not shown"
    );
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("frame-ancestors https://*.bigcommerce.com"));
    // A store that never installed.
    let jwt = payload(&unique_store_hash(), BC_SECRET, |_| {});
    let resp = get(
        &at_fixture,
        &format!("/v1/oauth/bigcommerce/load?signed_payload_jwt={jwt}"),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn signed_payloads_with_a_wrong_aud_iss_sub_secret_algorithm_or_time_are_refused() {
    let server = MockServer::start().await;
    let d = deps_at(&server, Duration::from_secs(5), at_fixture_clock()).await;
    let hash = unique_store_hash();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = fixture("bigcommerce/bigcommerce_load_callback_jwt_claims_docs_example.json")
        ["claims"]
        .clone();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(BC_SECRET.as_bytes()).expect("key"),
    )
    .expect("jwt");
    let valid = payload(&hash, BC_SECRET, |_| {});
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let mut c = claims.clone();
        c["sub"] = json!("stores/someoneelse");
        format!("{}.{}.{}", parts[0], b64(&c), parts[2])
    };
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "wrong secret",
            payload(&hash, "another-secret", |_| {}),
            401,
        ),
        (
            "another app's aud",
            payload(&hash, BC_SECRET, |c| c["aud"] = json!("other-app")),
            401,
        ),
        (
            "not from bc",
            payload(&hash, BC_SECRET, |c| c["iss"] = json!("evil")),
            401,
        ),
        (
            "no sub",
            payload(&hash, BC_SECRET, |c| {
                c.as_object_mut().map(|m| m.remove("sub"));
            }),
            401,
        ),
        (
            "sub not a store",
            payload(&hash, BC_SECRET, |c| c["sub"] = json!("users/1")),
            400,
        ),
        (
            "expired",
            payload(&hash, BC_SECRET, |c| c["exp"] = json!(1_659_031_626 - 120)),
            401,
        ),
        (
            "not yet valid",
            payload(&hash, BC_SECRET, |c| c["nbf"] = json!(1_659_031_626 + 600)),
            401,
        ),
        (
            "no exp",
            payload(&hash, BC_SECRET, |c| {
                c.as_object_mut().map(|m| m.remove("exp"));
            }),
            401,
        ),
        ("alg none", alg_none, 401),
        ("HS512", hs512, 401),
        ("tampered claims", tampered, 401),
        ("garbage", "not.a.jwt".into(), 401),
    ];
    for (what, jwt, status) in cases {
        for route in ["load", "uninstall"] {
            let resp = get(
                &d,
                &format!("/v1/oauth/bigcommerce/{route}?signed_payload_jwt={jwt}"),
            )
            .await;
            assert_eq!(resp.status().as_u16(), status, "{what} on {route}");
        }
    }
    let resp = get(&d, "/v1/oauth/bigcommerce/load").await;
    assert_eq!(resp.status().as_u16(), 400, "no payload");
    // The same claims, signed right, pass verification (and find no store: 404).
    let resp = get(
        &d,
        &format!("/v1/oauth/bigcommerce/load?signed_payload_jwt={valid}"),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 404);
    // The library function on its own, for the record.
    let app = AppCredentials {
        client_id: BC_ID.into(),
        client_secret: Secret::new(BC_SECRET),
    };
    assert_eq!(
        bigcommerce::verify_signed_payload_jwt(&app, &valid, 1_659_031_626).map(|p| p.context()),
        Ok(format!("stores/{hash}"))
    );
}

#[tokio::test]
async fn uninstall_withdraws_messaging_consent_at_once_and_drops_the_token() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let hash = unique_store_hash();
    let page = text(&bigcommerce_install(&d, &server, &hash).await);
    let (site, key) = (
        meta(&page, "site-id").expect("site"),
        meta(&page, "api-key").expect("key"),
    );
    let grant = request_with(
        "PUT",
        &format!("/v1/sites/{site}/messaging-consent"),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
        ],
        r#"{"granted": true}"#,
    );
    assert_eq!(json_of(consent::handle(&d, grant).await).0, 200);
    let s = store().await;
    assert!(
        s.tenant_by_site(&site)
            .await
            .expect("read")
            .expect("tenant")
            .messaging_consent
    );

    let at_fixture = deps_at(&server, Duration::from_secs(5), at_fixture_clock()).await;
    // An uninstall by the owner, whose token BigCommerce now refuses (issue 10 §2).
    Mock::given(method("GET"))
        .and(path(format!("/stores/{hash}/v2/store")))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let jwt = payload(&hash, BC_SECRET, |c| c["user"] = c["owner"].clone());
    let (status, body) = json_of(
        get(
            &at_fixture,
            &format!("/v1/oauth/bigcommerce/uninstall?signed_payload_jwt={jwt}"),
        )
        .await,
    );
    assert_eq!(status, 200, "{body}");
    let t = s
        .tenant_by_site(&site)
        .await
        .expect("read")
        .expect("tenant");
    assert!(!t.messaging_consent, "withdrawn at once");
    assert!(t.messaging_consent_at.is_some());
    assert!(
        t.access_token_ciphertext.is_none(),
        "the revoked token is dropped"
    );
    // Uninstalling is discontinuing: the deletion starts at once (keys destroyed, 410 from now on).
    assert_eq!(t.status, affinity::tenant::TenantStatus::Deleting);
    assert!(t.pepper_ciphertext.is_none(), "the pepper is shredded");
    let job = s
        .deletion(&t.tenant_id)
        .await
        .expect("read")
        .expect("a deletion job");
    assert_eq!(
        serde_json::to_value(job.trigger).expect("json"),
        "bigcommerce:uninstall"
    );
}

// ---- routes and events ----------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_404_and_405() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    assert_eq!(json_of(get(&d, "/v1/oauth/woo/install").await).0, 404);
    assert_eq!(
        json_of(consent::handle(&d, request("POST", "/v1/oauth/shopify/install", None, "")).await)
            .0,
        405
    );
}

#[tokio::test]
async fn the_consent_event_files_parse_as_api_gateway_requests_and_reach_their_routes() {
    let server = MockServer::start().await;
    let d = deps(&server).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("events dir") {
        let p = entry.expect("entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.starts_with("consent-") {
            continue;
        }
        let text_ = std::fs::read_to_string(&p).expect("read");
        let req = lambda_http::request::from_str(&text_).unwrap_or_else(|e| panic!("{name}: {e}"));
        let resp = consent::handle(&d, req).await;
        let status = resp.status().as_u16();
        // The files carry documented but stale or foreign values: refusals by the route itself, never
        // the router's "no such route" or 405.
        let body = text(&resp);
        assert!(
            status != 405 && !body.contains("no such route"),
            "{name}: {status} {body}"
        );
        assert!((400..=502).contains(&status), "{name}: {status} {body}");
        seen += 1;
    }
    assert!(seen >= 5, "one event file per route, found {seen}");
}

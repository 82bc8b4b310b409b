//! Creates the local demo tenant through the real consent flow: a scripted Shopify install against a
//! fake Shopify on loopback.
//!
//! 1. Serves a fake Shopify (a wiremock server) on the loopback address and port of `SHOPIFY_BASE_URL`
//!    (e.g. `http://127.0.0.1:18555`), which the running consent function must have been started with
//!    too: the token endpoint (`POST /admin/oauth/access_token`) and the shop's settings
//!    (`GET /admin/api/{version}/shop.json`, with a token it issued: the shop's `country_code`,
//!    `DEMO_COUNTRY`, default `US`, becomes the tenant's default region for national phone numbers).
//! 2. Opens `GET {AFFINITY_API_URL}/v1/oauth/shopify/install` signed as Shopify signs it (HMAC-SHA256
//!    with `SHOPIFY_CLIENT_SECRET`, the function's), reads the `state` of the authorize redirect.
//! 3. Opens the callback with a code, that state and a fresh signature; the function exchanges the code
//!    at the fake, seals the token with KMS and writes the tenant.
//! 4. Reads the success page's `<meta name="affinity-...">` values. On a re-install (the key was shown
//!    before) it uses the page's single-use grant to issue a new API key.
//!
//! Prints `{"site_id", "tenant_id", "api_key", "identity_secret", "shop"}` on stdout; progress goes to stderr.
//! Environment: `AFFINITY_API_URL`, `SHOPIFY_BASE_URL`, `SHOPIFY_CLIENT_SECRET` (required);
//! `DEMO_SHOP` (default `affinity-demo.myshopify.com`), `DEMO_COUNTRY` (default `US`).

use std::time::Duration;

use affinity::oauth::shopify::{encode_component, signed_query};
use affinity::oauth::{parse_query, single};
use bytes::Bytes;
use consent::platform::{Answer, PlatformClient};
use hyper::Method;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is required").into())
}

/// A query string signed as Shopify signs redirects.
fn signed(params: &[(&str, &str)], secret: &str) -> Result<String, Error> {
    Ok(signed_query(secret, params).map_err(|e| e.to_string())?)
}

fn meta(page: &str, name: &str) -> Option<String> {
    let tag = format!("<meta name=\"affinity-{name}\" content=\"");
    let start = page.find(&tag)? + tag.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

fn page_of(a: &Answer, what: &str) -> Result<String, Error> {
    let text = String::from_utf8_lossy(&a.body).into_owned();
    if a.status != 200 {
        let code = meta(&text, "error").unwrap_or_default();
        return Err(format!("{what}: HTTP {} {code}", a.status).into());
    }
    Ok(text)
}

/// The fake Shopify's token endpoint: a fresh offline token for each exchange of a non-empty code.
struct FreshToken;

impl Respond for FreshToken {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if body["code"].as_str().is_none_or(str::is_empty) {
            return ResponseTemplate::new(400).set_body_json(json!({"errors": "no code"}));
        }
        let token = affinity::tenant::new_random_token().unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("shpat_demo_{token}"),
            "scope": consent::SHOPIFY_SCOPES.join(","),
        }))
    }
}

/// The fake Shopify's `shop.json`: the shop of `shop` in `country`, for a token the fake issued (401
/// for any other, as Shopify answers a revoked token).
struct ShopSettings {
    shop: String,
    country: String,
}

impl Respond for ShopSettings {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let token = req
            .headers
            .get(affinity::oauth::shopify::ACCESS_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !token.starts_with("shpat_demo_") {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"errors": "[API] Invalid API key or access token"}));
        }
        ResponseTemplate::new(200).set_body_json(json!({"shop": {
            "id": 954889, "name": "Affinity Demo", "myshopify_domain": self.shop,
            "country_code": self.country,
        }}))
    }
}

/// The fake Shopify on `listener`: answers `POST /admin/oauth/access_token` that carries the app's
/// `secret` (see [`FreshToken`]) and `shop.json` (see [`ShopSettings`]); anything else is wiremock's
/// 404.
async fn fake_shopify(
    listener: std::net::TcpListener,
    secret: &str,
    shop: ShopSettings,
) -> MockServer {
    let server = MockServer::builder().listener(listener).start().await;
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .and(body_partial_json(json!({"client_secret": secret})))
        .respond_with(FreshToken)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/admin/api/{}/shop.json",
            affinity::oauth::shopify::ADMIN_API_VERSION
        )))
        .respond_with(shop)
        .mount(&server)
        .await;
    server
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let api = env("AFFINITY_API_URL")?.trim_end_matches('/').to_string();
    let base = env("SHOPIFY_BASE_URL")?;
    let secret = env("SHOPIFY_CLIENT_SECRET")?;
    let shop = std::env::var("DEMO_SHOP").unwrap_or_else(|_| "affinity-demo.myshopify.com".into());
    let addr = base
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .filter(|a| a.starts_with("127.0.0.1:"))
        .ok_or("SHOPIFY_BASE_URL must be http://127.0.0.1:PORT (the fake Shopify's address)")?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let country = std::env::var("DEMO_COUNTRY").unwrap_or_else(|_| "US".into());
    let settings = ShopSettings {
        shop: shop.clone(),
        country,
    };
    let _fake = fake_shopify(listener, &secret, settings).await;
    eprintln!("demo-install: fake Shopify on http://{addr}; installing {shop} through {api}");

    let client = PlatformClient::new(Duration::from_secs(60))?;
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .send(Method::GET, &url, &[("accept", "text/html")], Bytes::new())
                .await
        }
    };
    let now = || (affinity::now_ms() / 1000).to_string();

    let q = signed(&[("shop", &shop), ("timestamp", &now())], &secret)?;
    let a = get(format!("{api}/v1/oauth/shopify/install?{q}")).await?;
    if a.status != 302 {
        let text = String::from_utf8_lossy(&a.body).into_owned();
        return Err(format!(
            "install: HTTP {} {} (is the consent function running with this SHOPIFY_CLIENT_SECRET?)",
            a.status,
            meta(&text, "error").unwrap_or_default()
        )
        .into());
    }
    let location = a
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !location.starts_with(&format!(
        "{}/admin/oauth/authorize?",
        base.trim_end_matches('/')
    )) {
        return Err("install: the authorize redirect does not point at SHOPIFY_BASE_URL; start the consent function with the same SHOPIFY_BASE_URL".into());
    }
    let redirect = parse_query(location.split_once('?').map_or("", |(_, q)| q));
    let state = single(&redirect, "state").ok_or("install: no state in the redirect")?;

    let code = affinity::tenant::new_random_token()?;
    let q = signed(
        &[
            ("code", &code),
            ("shop", &shop),
            ("state", state),
            ("timestamp", &now()),
        ],
        &secret,
    )?;
    let page = page_of(
        &get(format!("{api}/v1/oauth/shopify/callback?{q}")).await?,
        "callback",
    )?;
    let site_id = meta(&page, "site-id").ok_or("callback: no site id on the page")?;
    let tenant_id = meta(&page, "tenant-id").ok_or("callback: no tenant id on the page")?;
    let (api_key, identity_secret) = match meta(&page, "api-key") {
        Some(k) => (k, meta(&page, "identity-secret")),
        None => {
            // Installed before: the key was shown then. Use the page's single-use grant for a new one.
            let grant = meta(&page, "rotation-grant").ok_or("callback: no API key and no grant")?;
            eprintln!("demo-install: {shop} was installed before; issuing a new API key");
            let a = client
                .send(
                    Method::POST,
                    &format!("{api}/v1/sites/{site_id}/api-key"),
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("accept", "text/html"),
                    ],
                    Bytes::from(format!("grant={}", encode_component(&grant))),
                )
                .await?;
            let new = page_of(&a, "new API key")?;
            (
                meta(&new, "api-key").ok_or("no API key on the page")?,
                meta(&new, "identity-secret"),
            )
        }
    };
    println!(
        "{}",
        serde_json::json!({"site_id": site_id, "tenant_id": tenant_id, "api_key": api_key,
            "identity_secret": identity_secret, "shop": shop})
    );
    Ok(())
}

//! The consent function's side of the tests, shared by the DynamoDB Local suites (re-exported from
//! `affinity_tests`) and consent's own behaviour tests (`functions/consent/tests/behaviour.rs`, which
//! include this file with `#[path]`, since that crate cannot depend on `affinity-tests`): the app's
//! configuration, requests as API Gateway delivers them, Shopify's signed queries and readers of the
//! pages and redirects the function answers with.
//!
//! It uses only `affinity`, `consent` and `lambda_http`, which both crates have.
#![allow(dead_code)] // each including crate uses a different part

use std::time::Duration;

use affinity::clock::SharedClock;
use affinity::oauth::{parse_query, AppCredentials, Secret};
use lambda_http::{Body, Request, Response};

/// The scopes the app asks Shopify for, as Shopify's token endpoint echoes them (comma-separated).
pub const SHOPIFY_SCOPES: &str =
    "read_products,read_orders,read_customers,write_pixels,read_customer_events";

/// The app as the consent function's tests configure it: its credentials on each platform
/// (`(client_id, client_secret)`) and the API's public origin.
pub struct TestApp {
    /// Shopify's client id and secret.
    pub shopify: (&'static str, &'static str),
    /// BigCommerce's client id and secret.
    pub bigcommerce: (&'static str, &'static str),
    /// `PUBLIC_BASE_URL`.
    pub public_base_url: &'static str,
}

impl TestApp {
    /// The consent function's configuration: both platforms served by `platform_uri` (a wiremock
    /// server), calls to them given up after `platform_timeout`.
    pub fn config(&self, platform_uri: &str, platform_timeout: Duration) -> consent::Config {
        let app = |(id, secret): (&str, &str)| AppCredentials {
            client_id: id.into(),
            client_secret: Secret::new(secret),
        };
        consent::Config {
            shopify: app(self.shopify),
            bigcommerce: app(self.bigcommerce),
            shopify_base_url: platform_uri.to_string(),
            bigcommerce_login_url: platform_uri.to_string(),
            public_base_url: Some(self.public_base_url.into()),
            platform_timeout,
        }
    }

    /// The consent function's dependencies over `store` and `kms`, with [`Self::config`] and `clock`.
    pub fn deps<S, K>(
        &self,
        (store, kms): (S, K),
        platform_uri: &str,
        platform_timeout: Duration,
        clock: SharedClock,
    ) -> consent::Deps<S, K> {
        consent::Deps {
            store,
            kms,
            platform: consent::platform::PlatformClient::new(platform_timeout).expect("client"),
            config: self.config(platform_uri, platform_timeout),
            clock,
        }
    }
}

/// A request as API Gateway's HTTP API delivers it, with headers and a text body.
pub fn request_with(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::Text(body.to_string())).expect("request")
}

/// `POST /v1/sites/{site}/recommendations/lookup` as the merchant's server sends it: JSON `body`,
/// the API key `key`.
pub fn lookup_request(site: &str, key: &str, body: &serde_json::Value) -> Request {
    request_with(
        "POST",
        &format!("/v1/sites/{site}/recommendations/lookup"),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {key}")),
        ],
        &body.to_string(),
    )
}

/// `PUT /v1/sites/{site}/messaging-consent` with the API key `key` and the JSON `body`.
pub fn messaging_consent_request(site: &str, key: &str, body: &str) -> Request {
    request_with(
        "PUT",
        &format!("/v1/sites/{site}/messaging-consent"),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// A query string signed as Shopify signs it: the pairs in order, then `hmac` (hex HMAC-SHA256 of
/// the sorted pairs with the app's `secret`), each part percent-encoded.
pub fn shopify_signed(params: &[(&str, &str)], secret: &str) -> String {
    affinity::oauth::shopify::signed_query(secret, params).expect("hmac")
}

/// The body of a response as text (empty when it has none).
pub fn text(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// A `<meta name="affinity-{name}" content="...">` value of a page.
pub fn meta(page: &str, name: &str) -> Option<String> {
    let tag = format!("<meta name=\"affinity-{name}\" content=\"");
    let start = page.find(&tag)? + tag.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

/// The `Location` header of a response (empty when it has none).
pub fn location(resp: &Response<Body>) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `state` parameter of a redirect to the platform's authorize page.
///
/// # Panics
/// When the redirect carries no `state`.
pub fn state_of_redirect(resp: &Response<Body>) -> String {
    let loc = location(resp);
    parse_query(loc.split_once('?').map_or("", |(_, q)| q))
        .into_iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v)
        .expect("state")
}

//! Shopify's OAuth authorization-code grant and request signatures, as Shopify specifies them:
//! <https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant>
//! ("Verify the installation request", "Security checks") and, for webhooks,
//! <https://shopify.dev/docs/apps/build/webhooks/subscribe/https> ("Verify the webhook").
//!
//! - A redirect from Shopify (the app URL it opens, the OAuth callback) carries `hmac`: HMAC-SHA256 with
//!   the app's client secret over the other parameters (without `hmac` and `signature`), sorted and joined
//!   `key=value` with `&`, in lowercase hex. Delimiters inside keys and values are escaped (`%` as `%25`,
//!   `&` as `%26`, `=` in keys as `%3D`) and array parameters `k[]=a&k[]=b` are signed as `k=["a", "b"]`,
//!   as Shopify's own libraries do (`shopify_python_api`'s `Session.calculate_hmac`). Compared in constant
//!   time.
//! - `timestamp` more than [`TIMESTAMP_TOLERANCE_S`] seconds away from now is refused (Shopify's
//!   `shopify-api-js` `validateHmac` uses the same 90 s window), so a captured URL cannot be replayed later.
//! - `shop` must be `{name}.myshopify.com` (Shopify: "the shop parameter is a valid shop hostname, ends
//!   with myshopify.com, and doesn't contain characters other than letters, numbers, periods, and
//!   hyphens"); this crate is stricter and allows exactly `^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$`,
//!   so a token exchange can never be sent to a host the merchant did not come from.
//! - Webhook bodies are signed in `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body
//!   ([`verify_shopify_webhook`]).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::Secret;

/// Most seconds between a request's `timestamp` and now, either way.
pub const TIMESTAMP_TOLERANCE_S: i64 = 90;
/// Longest shop domain accepted (a DNS name).
pub const MAX_SHOP_DOMAIN_LEN: usize = 253;
/// The default platform base: the shop itself. `{shop}` is replaced by the verified shop domain.
pub const DEFAULT_BASE_URL: &str = "https://{shop}";

/// Why a Shopify redirect was refused. The messages name the rule, never the expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShopifyError {
    /// A required parameter is missing or repeated.
    #[error("the request has no single `{0}` parameter")]
    Missing(&'static str),
    /// `hmac` is not the signature of the other parameters under the app's secret (tampered, or signed by
    /// someone else), or a non-array parameter is repeated.
    #[error("the request's signature (hmac) does not match its parameters")]
    BadSignature,
    /// `timestamp` is not a whole number of seconds.
    #[error("timestamp must be seconds since the Unix epoch")]
    BadTimestamp,
    /// `timestamp` is more than 90 s away from now.
    #[error("the request is older than 90 seconds (or from the future); open the app again from the Shopify admin")]
    StaleTimestamp,
    /// `shop` is not `{name}.myshopify.com`.
    #[error("shop must be a {{name}}.myshopify.com domain")]
    BadShop,
}

/// A refused Shopify redirect: 400 naming the parameter, 401 for a signature that does not match.
impl From<ShopifyError> for crate::http::ApiError {
    fn from(e: ShopifyError) -> Self {
        use crate::http::ErrorCode;
        let (code, field) = match e {
            ShopifyError::Missing(f) => (ErrorCode::MissingParameter, f),
            ShopifyError::BadSignature => (ErrorCode::BadSignature, "hmac"),
            ShopifyError::BadTimestamp => (ErrorCode::BadTimestamp, "timestamp"),
            ShopifyError::StaleTimestamp => (ErrorCode::StaleRequest, "timestamp"),
            ShopifyError::BadShop => (ErrorCode::BadShop, "shop"),
        };
        Self::new(code, Some(field), e.to_string())
    }
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Shopify-Hmac-Sha256` header.
    #[error("the X-Shopify-Hmac-Sha256 header is missing")]
    Missing,
    /// The header is not base64 of 32 bytes.
    #[error("the X-Shopify-Hmac-Sha256 header is not a base64 HMAC-SHA256")]
    Malformed,
    /// The body was not signed with the app's secret (or was changed).
    #[error("the webhook's signature does not match its body")]
    Mismatch,
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Whether `shop` is `{name}.myshopify.com`: `^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$`, at most
/// [`MAX_SHOP_DOMAIN_LEN`] characters.
pub fn is_valid_shop_domain(shop: &str) -> bool {
    let Some(name) = shop.strip_suffix(".myshopify.com") else {
        return false;
    };
    shop.len() <= MAX_SHOP_DOMAIN_LEN
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The shop domain, checked ([`is_valid_shop_domain`]) and lowercased.
///
/// # Errors
/// [`ShopifyError::BadShop`].
pub fn normalize_shop(shop: &str) -> Result<String, ShopifyError> {
    if is_valid_shop_domain(shop) {
        Ok(shop.to_ascii_lowercase())
    } else {
        Err(ShopifyError::BadShop)
    }
}

/// A string as Python's `json.dumps` writes it (ASCII only), which is how Shopify signs array values.
fn py_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The message Shopify signs for a redirect's parameters: without `hmac` and `signature`; array
/// parameters (`k[]`) folded into `k=["v1", "v2"]` in received order; `%` escaped as `%25` in keys and
/// values, `=` as `%3D` in keys, then `&` as `%26` in each pair; the pairs sorted and joined with `&`.
///
/// # Errors
/// [`ShopifyError::BadSignature`] when a non-array parameter is repeated (which value was signed would
/// be a guess).
pub fn signed_message(params: &[(String, String)]) -> Result<String, ShopifyError> {
    let mut singles: Vec<(&str, String)> = Vec::new();
    let mut arrays: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in params {
        if k == "hmac" || k == "signature" {
            continue;
        }
        if k.ends_with("[]") {
            let base = k.trim_end_matches(['[', ']']);
            match arrays.iter_mut().find(|(b, _)| *b == base) {
                Some((_, vs)) => vs.push(v),
                None => arrays.push((base, vec![v])),
            }
        } else if singles.iter().any(|(s, _)| *s == k) {
            return Err(ShopifyError::BadSignature);
        } else {
            singles.push((k, v.clone()));
        }
    }
    for (base, vs) in arrays {
        let mut list = String::from("[");
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            py_json_string(v, &mut list);
        }
        list.push(']');
        singles.push((base, list));
    }
    let mut pairs: Vec<String> = singles
        .into_iter()
        .map(|(k, v)| {
            let k = k.replace('%', "%25").replace('=', "%3D");
            let v = v.replace('%', "%25");
            format!("{k}={v}").replace('&', "%26")
        })
        .collect();
    pairs.sort_unstable();
    Ok(pairs.join("&"))
}

/// The `hmac` Shopify would send with `params` (lowercase hex). For fakes and tests; verification uses
/// [`verify_query_hmac`].
///
/// # Errors
/// As [`signed_message`].
pub fn query_hmac(secret: &str, params: &[(String, String)]) -> Result<String, ShopifyError> {
    let mut m = mac(secret);
    m.update(signed_message(params)?.as_bytes());
    Ok(hex::encode(m.finalize().into_bytes()))
}

/// Checks the `hmac` of a redirect's parameters, in constant time.
///
/// # Errors
/// [`ShopifyError::Missing`] without a single `hmac`; [`ShopifyError::BadSignature`] when it does not
/// match (or is not hex).
pub fn verify_query_hmac(secret: &str, params: &[(String, String)]) -> Result<(), ShopifyError> {
    let presented = super::single(params, "hmac").ok_or(ShopifyError::Missing("hmac"))?;
    let presented = hex::decode(presented).map_err(|_| ShopifyError::BadSignature)?;
    let mut m = mac(secret);
    m.update(signed_message(params)?.as_bytes());
    m.verify_slice(&presented)
        .map_err(|_| ShopifyError::BadSignature)
}

/// Checks that `timestamp` (epoch seconds) is within [`TIMESTAMP_TOLERANCE_S`] of `now_s`.
///
/// # Errors
/// [`ShopifyError::BadTimestamp`], [`ShopifyError::StaleTimestamp`].
pub fn check_timestamp(timestamp: &str, now_s: i64) -> Result<(), ShopifyError> {
    let ts: i64 = timestamp.parse().map_err(|_| ShopifyError::BadTimestamp)?;
    if now_s.abs_diff(ts) > TIMESTAMP_TOLERANCE_S.unsigned_abs() {
        return Err(ShopifyError::StaleTimestamp);
    }
    Ok(())
}

/// Every check of a redirect from Shopify (install or callback), in order: the signature, the
/// timestamp window, the shop domain. Returns the shop domain, lowercased.
///
/// # Errors
/// The first [`ShopifyError`] found.
pub fn verify_redirect(
    secret: &str,
    params: &[(String, String)],
    now_s: i64,
) -> Result<String, ShopifyError> {
    verify_query_hmac(secret, params)?;
    let ts = super::single(params, "timestamp").ok_or(ShopifyError::Missing("timestamp"))?;
    check_timestamp(ts, now_s)?;
    let shop = super::single(params, "shop").ok_or(ShopifyError::Missing("shop"))?;
    normalize_shop(shop)
}

/// Verifies a webhook: `header` (the `X-Shopify-Hmac-Sha256` value) must be the base64 HMAC-SHA256 of
/// the raw body, exactly as received (before any JSON parsing), under the app's client secret. Compared
/// in constant time. Shopify: "Verify the webhook" in
/// <https://shopify.dev/docs/apps/build/webhooks/subscribe/https>.
///
/// # Errors
/// [`SignatureError::Missing`], [`SignatureError::Malformed`], [`SignatureError::Mismatch`].
pub fn verify_shopify_webhook(
    secret: &str,
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let presented = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| SignatureError::Malformed)?;
    if presented.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut m = mac(secret);
    m.update(raw_body);
    m.verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Shopify-Hmac-Sha256` value Shopify would send with `raw_body`. For fakes and tests.
pub fn webhook_hmac(secret: &str, raw_body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(raw_body);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// A query string signed as Shopify signs its redirects: `params` in their order, then `hmac` (see
/// [`query_hmac`]), each key and value percent-encoded with [`encode_component`]. What the demo
/// installer and the tests send in Shopify's place.
///
/// # Errors
/// The errors of [`query_hmac`].
pub fn signed_query(secret: &str, params: &[(&str, &str)]) -> Result<String, ShopifyError> {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let h = query_hmac(secret, &pairs)?;
    pairs.push(("hmac".into(), h));
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

/// Percent-encodes a query component (everything but unreserved characters).
pub fn encode_component(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The platform base for `shop`: `base_template` (default [`DEFAULT_BASE_URL`], `https://{shop}`) with
/// `{shop}` replaced, without a trailing slash. A base without `{shop}` (a fake platform on loopback) is
/// used as it is.
pub fn shop_base(base_template: &str, shop: &str) -> String {
    base_template
        .replace("{shop}", shop)
        .trim_end_matches('/')
        .to_string()
}

/// Where the merchant grants access: `{base}/admin/oauth/authorize` with `client_id`, `scope`
/// (comma-separated), `redirect_uri` and `state` (offline access: no `grant_options[]`).
pub fn authorize_url(
    base: &str,
    client_id: &str,
    scopes: &[&str],
    redirect_uri: &str,
    state: &str,
) -> String {
    format!(
        "{base}/admin/oauth/authorize?client_id={}&scope={}&redirect_uri={}&state={}",
        encode_component(client_id),
        encode_component(&scopes.join(",")),
        encode_component(redirect_uri),
        encode_component(state),
    )
}

/// Where the authorization code is exchanged for an access token: `{base}/admin/oauth/access_token`.
pub fn access_token_url(base: &str) -> String {
    format!("{base}/admin/oauth/access_token")
}

/// The Admin API version Affinity reads (<https://shopify.dev/docs/api/usage/versioning>).
pub const ADMIN_API_VERSION: &str = "2025-01";
/// The header that carries a shop's access token on the Admin API.
pub const ACCESS_TOKEN_HEADER: &str = "x-shopify-access-token";

/// The shop's settings on the Admin API: `{base}/admin/api/{ADMIN_API_VERSION}/shop.json`
/// (<https://shopify.dev/docs/api/admin-rest/latest/resources/shop>). Read with the shop's token at
/// install (its `country_code`) and to prove an `app/uninstalled` webhook (a 401 once the token is
/// revoked).
pub fn shop_json_url(base: &str) -> String {
    format!("{base}/admin/api/{ADMIN_API_VERSION}/shop.json")
}

/// The answer of `shop.json`: `{"shop": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShopAnswer {
    /// The shop.
    pub shop: ShopInfo,
}

/// The part of a shop's settings Affinity reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ShopInfo {
    /// The two-letter country code of the shop's address (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub country_code: Option<String>,
}

/// The JSON body of the token exchange: `client_id`, `client_secret`, `code`.
pub fn token_request_body(
    client_id: &str,
    client_secret: &Secret,
    code: &str,
) -> serde_json::Value {
    serde_json::json!({
        "client_id": client_id,
        "client_secret": client_secret.expose(),
        "code": code,
    })
}

/// Shopify's answer to the token exchange (offline access token).
#[derive(Deserialize)]
pub struct AccessToken {
    /// The access token (never logged: see the `Debug` impl).
    pub access_token: String,
    /// The scopes granted, comma-separated.
    #[serde(default)]
    pub scope: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// The scopes of a comma-separated `scope` answer.
pub fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The requested scopes that `granted` does not cover. A `write_x` grant covers `read_x` (Shopify omits
/// the implied read scope from its answer).
pub fn missing_scopes(requested: &[&str], granted: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| {
            let implied = r.strip_prefix("read_").map(|rest| format!("write_{rest}"));
            !granted
                .iter()
                .any(|g| g == *r || implied.as_deref() == Some(g.as_str()))
        })
        .map(|r| r.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_query_verifies_and_keeps_escaped_values() {
        let q = signed_query(
            "s3cret",
            &[("shop", "a-b.myshopify.com"), ("state", "x&y=z")],
        )
        .expect("signed");
        assert!(
            q.starts_with("shop=a-b.myshopify.com&state=x%26y%3Dz&hmac="),
            "{q}"
        );
        let params = crate::oauth::parse_query(&q);
        assert_eq!(params[1], ("state".to_string(), "x&y=z".to_string()));
        assert_eq!(verify_query_hmac("s3cret", &params), Ok(()));
        assert!(verify_query_hmac("other", &params).is_err());
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shop_domains_follow_the_rule() {
        for ok in [
            "some-shop.myshopify.com",
            "A1.myshopify.com",
            "0.myshopify.com",
        ] {
            assert!(is_valid_shop_domain(ok), "{ok}");
        }
        for bad in [
            "",
            ".myshopify.com",
            "-shop.myshopify.com",
            "shop.myshopify.com.evil.com",
            "evil.com/shop.myshopify.com",
            "shop.evil.com",
            "sub.shop.myshopify.com",
            "shop_x.myshopify.com",
            "shop.myshopify.com:443",
            "shop.myshopify.com/",
            "https://shop.myshopify.com",
            "shop.MYSHOPIFY.com",
            "shöp.myshopify.com",
        ] {
            assert!(!is_valid_shop_domain(bad), "{bad}");
        }
        assert!(!is_valid_shop_domain(&format!(
            "{}.myshopify.com",
            "a".repeat(240)
        )));
        assert_eq!(
            normalize_shop("Some-Shop.myshopify.com"),
            Ok("some-shop.myshopify.com".into())
        );
    }

    #[test]
    fn timestamps_outside_90_seconds_are_refused() {
        assert_eq!(check_timestamp("1000", 1090), Ok(()));
        assert_eq!(check_timestamp("1000", 910), Ok(()));
        assert_eq!(
            check_timestamp("1000", 1091),
            Err(ShopifyError::StaleTimestamp)
        );
        assert_eq!(
            check_timestamp("1000", 909),
            Err(ShopifyError::StaleTimestamp)
        );
        assert_eq!(
            check_timestamp("10e3", 1000),
            Err(ShopifyError::BadTimestamp)
        );
    }

    #[test]
    fn array_values_are_signed_as_python_json_lists() {
        let m = signed_message(&p(&[("ids[]", "é\"x"), ("ids[]", "😀")])).expect("message");
        assert_eq!(m, r#"ids=["\u00e9\"x", "\ud83d\ude00"]"#);
    }

    #[test]
    fn repeated_plain_parameters_are_refused() {
        let q = p(&[("shop", "a.myshopify.com"), ("shop", "b.myshopify.com")]);
        assert_eq!(signed_message(&q), Err(ShopifyError::BadSignature));
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let mut q = p(&[
            ("shop", "a.myshopify.com"),
            ("timestamp", "1000"),
            ("code", "c"),
        ]);
        let h = query_hmac("s", &q).expect("hmac");
        q.push(("hmac".into(), h));
        assert_eq!(verify_redirect("s", &q, 1000), Ok("a.myshopify.com".into()));
        assert_eq!(
            verify_redirect("other", &q, 1000),
            Err(ShopifyError::BadSignature)
        );
        q[2].1 = "d".into();
        assert_eq!(
            verify_redirect("s", &q, 1000),
            Err(ShopifyError::BadSignature)
        );
    }

    #[test]
    fn webhook_signatures_are_base64_of_the_raw_body() {
        let h = webhook_hmac("k", b"{}");
        assert_eq!(verify_shopify_webhook("k", b"{}", Some(&h)), Ok(()));
        assert_eq!(
            verify_shopify_webhook("k", b"{ }", Some(&h)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_shopify_webhook("k", b"{}", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_shopify_webhook("k", b"{}", Some("not base64!")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_shopify_webhook("k", b"{}", Some("AAAA")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn write_scopes_cover_read_scopes() {
        let granted = split_scopes("write_orders, read_products");
        assert_eq!(
            missing_scopes(
                &["read_orders", "read_products", "read_customers"],
                &granted
            ),
            vec!["read_customers".to_string()]
        );
    }

    #[test]
    fn authorize_urls_encode_every_parameter() {
        let u = authorize_url(
            "https://a.myshopify.com",
            "id",
            &["read_orders", "read_products"],
            "https://x.example/v1/oauth/shopify/callback",
            "s t",
        );
        assert_eq!(u, "https://a.myshopify.com/admin/oauth/authorize?client_id=id&scope=read_orders%2Cread_products&redirect_uri=https%3A%2F%2Fx.example%2Fv1%2Foauth%2Fshopify%2Fcallback&state=s%20t");
        assert_eq!(
            shop_base(DEFAULT_BASE_URL, "a.myshopify.com"),
            "https://a.myshopify.com"
        );
        assert_eq!(
            shop_base("http://127.0.0.1:9/", "a.myshopify.com"),
            "http://127.0.0.1:9"
        );
    }
}

//! Reading requests and shaping the answers the routes share: query pairs, forms, the API's public
//! origin, redirects and the success page.

use affinity::http::ApiError;
use affinity::install::Connection;
use affinity::oauth;
use affinity::tenant::Platform;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::pages::{self, Framing};
use crate::Config;

/// The decoded query pairs, in order.
pub(crate) fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(oauth::parse_query)
        .unwrap_or_default()
}

/// Whether the body is a form (`application/x-www-form-urlencoded`).
pub(crate) fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The API's public origin: `PUBLIC_BASE_URL`, else the request's scheme and host.
///
/// # Errors
/// 400 `host` when the request has no usable `Host`.
pub(crate) fn public_base(config: &Config, req: &Request) -> Result<String, ApiError> {
    if let Some(b) = &config.public_base_url {
        return Ok(b.clone());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .ok_or_else(|| ApiError::bad_request("host", "the request has no usable Host header"))?;
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "http" || *p == "https")
        .unwrap_or("https");
    Ok(format!("{proto}://{host}"))
}

/// A 302 to `location`, never cached, with no referrer.
///
/// # Errors
/// 500 when `location` is not a valid header value.
pub(crate) fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::FOUND;
    let loc = HeaderValue::from_str(location).map_err(|_| ApiError::internal())?;
    resp.headers_mut().insert(header::LOCATION, loc);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

/// The success page of an install of `shop` on `platform`.
///
/// # Errors
/// 400 `host` (see [`public_base`]).
pub(crate) fn success(
    config: &Config,
    req: &Request,
    platform: Platform,
    shop: &str,
    c: &Connection,
    framing: Framing,
) -> Result<Response<Body>, ApiError> {
    let action = format!(
        "{}/v1/sites/{}/api-key",
        public_base(config, req)?,
        c.site_id
    );
    Ok(pages::success_page(
        &pages::Connected {
            platform_name: platform.display_name(),
            shop,
            tenant_id: &c.tenant_id,
            site_id: &c.site_id,
            api_key: c.api_key.as_deref(),
            identity_secret: c.identity_secret.as_ref().map(|s| s.expose()),
            rotation: c.rotation_grant.as_deref().map(|g| (g, action.as_str())),
            reinstalled: c.reinstalled,
        },
        framing,
    ))
}

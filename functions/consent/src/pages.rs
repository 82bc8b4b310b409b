//! The merchant-facing HTML pages: the success page after an install, the app page BigCommerce opens,
//! the page with a new API key, and errors (any [`ApiError`] rendered as a page). Small, escaped, no
//! scripts, never cached, never framed except where the platform frames the app.
//!
//! Machine-readable values ride along in `<meta name="affinity-...">` tags, so scripts (the local demo
//! installer) read them without scraping prose.

use affinity::http::ApiError;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

/// What Affinity tracks and why, as the success page says it.
const WHAT_WE_TRACK: &str = "<p>Affinity now receives your storefront's shopping behaviour: searches, \
product views, item clicks, cart changes and purchases. It learns each shopper's preferred categories \
and brands, to recommend products they are likely to want. Guests are known only by a random id; \
logged-in shoppers by their customer id.</p>\
<p>Email addresses and phone numbers are used only if you turn on Personalized Messaging, and then \
only as one-way keyed hashes. If you uninstall the app, the store's shopper data is deleted.</p>";

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who may frame a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Nobody (pages reached by a top-level redirect).
    None,
    /// BigCommerce's control panel (the app's load page and its install page).
    BigCommerce,
}

fn page(
    status: StatusCode,
    title: &str,
    meta: &[(&str, &str)],
    body_html: &str,
    framing: Framing,
) -> Response<Body> {
    let metas: String = meta
        .iter()
        .map(|(k, v)| {
            format!(
                "<meta name=\"affinity-{}\" content=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{metas}<title>{t} · Affinity</title>\n\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
code{{background:#f3f3f3;padding:.1rem .3rem;word-break:break-all}}.key{{border:2px solid #c60;padding:.5rem 1rem}}</style>\n\
</head>\n<body>\n<h1>{t}</h1>\n{body_html}\n</body>\n</html>\n",
        t = escape(title),
    );
    let mut resp = Response::new(Body::Text(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let csp = match framing {
        Framing::None => "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
        Framing::BigCommerce => "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors https://*.bigcommerce.com",
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    resp
}

/// An error as a page: its status, its message, and what to do.
pub fn error_page(e: &ApiError, framing: Framing) -> Response<Body> {
    let title = match e.status.as_u16() {
        502 => "The platform did not answer as expected",
        503 => "Affinity is briefly unavailable",
        409 => "Please wait",
        404 => "Not found",
        410 => "Store disconnected",
        s if s >= 500 => "Something went wrong",
        _ => "This link cannot be used",
    };
    let advice = match e.status.as_u16() {
        502 | 503 => "Nothing was changed. Please try again in a minute from your store's admin.",
        409 => "Nothing was changed.",
        _ => "Nothing was changed. Start again from your store's admin.",
    };
    page(
        e.status,
        title,
        &[("error", e.code.as_str())],
        &format!("<p>{}</p>\n<p>{}</p>", escape(&e.message), escape(advice)),
        framing,
    )
}

/// What the success page shows.
#[derive(Debug, Clone)]
pub struct Connected<'a> {
    /// `Shopify` or `BigCommerce`.
    pub platform_name: &'a str,
    /// The store's domain or `stores/{hash}`.
    pub shop: &'a str,
    /// The tenant id.
    pub tenant_id: &'a str,
    /// The public site id.
    pub site_id: &'a str,
    /// The new API key, on a first install only.
    pub api_key: Option<&'a str>,
    /// The new identity secret (signs identity tokens), with the API key.
    pub identity_secret: Option<&'a str>,
    /// On a re-install: a single-use grant to issue a new API key, and where to post it.
    pub rotation: Option<(&'a str, &'a str)>,
    /// Whether this install refreshed an existing connection.
    pub reinstalled: bool,
}

/// The page after a successful install: which store, what is tracked and why, the site id and (once)
/// the API key.
pub fn success_page(c: &Connected<'_>, framing: Framing) -> Response<Body> {
    let mut meta = vec![("site-id", c.site_id), ("tenant-id", c.tenant_id)];
    let mut body = format!(
        "<p>Your {} store <strong>{}</strong> is {} to Affinity.</p>\n{WHAT_WE_TRACK}\n\
<h2>Site id</h2>\n<p>Storefront JavaScript sends this public id: <code>{}</code></p>\n",
        escape(c.platform_name),
        escape(c.shop),
        if c.reinstalled {
            "connected again"
        } else {
            "connected"
        },
        escape(c.site_id),
    );
    if let Some(key) = c.api_key {
        meta.push(("api-key", key));
        body.push_str(&format!(
            "<h2>API key</h2>\n<div class=\"key\"><p>Your server-to-server API key (for your back end and \
messaging tools): <code>{}</code></p><p><strong>It is shown only this once.</strong> Store it \
in a password manager; Affinity keeps only a hash of it.</p></div>\n",
            escape(key)
        ));
        if let Some(secret) = c.identity_secret {
            meta.push(("identity-secret", secret));
            body.push_str(&identity_secret_html(secret));
        }
    } else {
        body.push_str(
            "<h2>API key</h2>\n<p>Your existing API key keeps working; it was shown only when the store \
was first connected.</p>\n",
        );
    }
    if let Some((grant, action)) = c.rotation {
        meta.push(("rotation-grant", grant));
        meta.push(("rotation-url", action));
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"grant\" value=\"{}\">\
<button type=\"submit\">Issue a new API key (the old one stops working)</button></form>\n\
<p>This button works once, within 10 minutes.</p>\n",
            escape(action),
            escape(grant)
        ));
    }
    page(StatusCode::OK, "Store connected", &meta, &body, framing)
}

/// The identity secret's block of a page: shown once, what it is for.
fn identity_secret_html(secret: &str) -> String {
    format!(
        "<h2>Identity secret</h2>\n<div class=\"key\"><p>Your server (or your theme) signs logged-in \
customers' identity tokens with this secret (see \"Identity tokens\" in Affinity's README): <code>{}</code></p>\
<p><strong>It is shown only this once</strong> and never belongs in a browser.</p></div>\n",
        escape(secret)
    )
}

/// The page with a newly issued API key and identity secret.
pub fn new_key_page(site_id: &str, api_key: &str, identity_secret: &str) -> Response<Body> {
    page(
        StatusCode::OK,
        "New API key",
        &[
            ("site-id", site_id),
            ("api-key", api_key),
            ("identity-secret", identity_secret),
        ],
        &format!(
            "<div class=\"key\"><p>The new API key of site <code>{}</code>: <code>{}</code></p>\
<p><strong>It is shown only this once.</strong> The previous key no longer works.</p></div>{}",
            escape(site_id),
            escape(api_key),
            identity_secret_html(identity_secret)
        ),
        Framing::None,
    )
}

/// The app's page in BigCommerce's control panel (the load callback).
pub fn app_page(shop: &str, site_id: &str, messaging: bool) -> Response<Body> {
    page(
        StatusCode::OK,
        "Affinity",
        &[("site-id", site_id)],
        &format!(
            "<p>Store <strong>{}</strong> is connected.</p>\n<p>Site id: <code>{}</code></p>\n\
<p>Personalized Messaging (email and phone, hashed): <strong>{}</strong></p>\n{WHAT_WE_TRACK}",
            escape(shop),
            escape(site_id),
            if messaging { "on" } else { "off" }
        ),
        Framing::BigCommerce,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let e = ApiError::bad_request("shop", "<script>");
        let r = error_page(&e, Framing::None);
        let Body::Text(t) = r.body() else {
            panic!("text")
        };
        assert!(t.contains("&lt;script&gt;") && !t.contains("<script>"));
        assert_eq!(r.status().as_u16(), 400);
    }
}

//! Creates the local demo tenant through the real consent flow: a scripted Shopify install against a
//! fake Shopify on loopback.
//!
//! 1. Serves a fake Shopify token endpoint (`POST /admin/oauth/access_token`) on the loopback address
//!    and port of `SHOPIFY_BASE_URL` (e.g. `http://127.0.0.1:18555`), which the running consent
//!    function must have been started with too.
//! 2. Opens `GET {AFFINITY_API_URL}/v1/oauth/shopify/install` signed as Shopify signs it (HMAC-SHA256
//!    with `SHOPIFY_CLIENT_SECRET`, the function's), reads the `state` of the authorize redirect.
//! 3. Opens the callback with a code, that state and a fresh signature; the function exchanges the code
//!    at the fake, seals the token with KMS and writes the tenant.
//! 4. Reads the success page's `<meta name="affinity-...">` values. On a re-install (the key was shown
//!    before) it uses the page's single-use grant to issue a new API key.
//!
//! Prints `{"site_id", "tenant_id", "api_key", "shop"}` on stdout; progress goes to stderr.
//! Environment: `AFFINITY_API_URL`, `SHOPIFY_BASE_URL`, `SHOPIFY_CLIENT_SECRET` (required);
//! `DEMO_SHOP` (default `affinity-demo.myshopify.com`).

use std::time::Duration;

use affinity::oauth::shopify::{encode_component, query_hmac};
use affinity::oauth::{parse_query, single};
use bytes::Bytes;
use consent::platform::{Answer, PlatformClient};
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is required").into())
}

/// A query string signed as Shopify signs redirects.
fn signed(params: &[(&str, &str)], secret: &str) -> Result<String, Error> {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let h = query_hmac(secret, &pairs).map_err(|e| e.to_string())?;
    pairs.push(("hmac".into(), h));
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&"))
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

/// The fake Shopify: answers every `POST /admin/oauth/access_token` that carries the app's secret with
/// a fresh offline token; anything else is 404.
async fn fake_shopify(listener: TcpListener, secret: String) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let secret = secret.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let Ok(n) = sock.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
                if buf.len() > 64 * 1024 {
                    return;
                }
            };
            while buf.len() < head_end + length {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let request_line = String::from_utf8_lossy(&buf[..head_end])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let body: serde_json::Value =
                serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
            let ok = request_line.starts_with("POST /admin/oauth/access_token ")
                && body["client_secret"] == serde_json::json!(secret)
                && body["code"].as_str().is_some_and(|c| !c.is_empty());
            let (status, answer) = if ok {
                let token = affinity::tenant::new_random_token().unwrap_or_default();
                (
                    "200 OK",
                    serde_json::json!({"access_token": format!("shpat_demo_{token}"),
                        "scope": consent::SHOPIFY_SCOPES.join(",")})
                    .to_string(),
                )
            } else {
                ("404 Not Found", "{\"errors\":\"Not Found\"}".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
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
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tokio::spawn(fake_shopify(listener, secret.clone()));
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
    let api_key = match meta(&page, "api-key") {
        Some(k) => k,
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
            meta(&page_of(&a, "new API key")?, "api-key").ok_or("no API key on the page")?
        }
    };
    println!(
        "{}",
        serde_json::json!({"site_id": site_id, "tenant_id": tenant_id, "api_key": api_key, "shop": shop})
    );
    Ok(())
}

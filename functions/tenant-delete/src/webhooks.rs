//! Shopify's privacy webhooks and the uninstall: `POST /v1/webhooks/shopify`.

use affinity::deletion::shopper::{self, ErasureReport, Named};
use affinity::deletion::{self, Begin, ErasureError, Trigger};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::oauth::shopify::{normalize_shop, verify_shopify_webhook};
use affinity::pii::PiiKeySource;
use affinity::tenant::{tenant_id_for, Platform, TenantStatus};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::{Deps, Store};

/// Largest webhook body read, in bytes (Shopify's privacy payloads are well under 1 KiB).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// The Shopify topics this function acts on (the mandatory privacy webhooks and the uninstall),
/// <https://shopify.dev/docs/apps/build/privacy-law-compliance>.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopifyTopic {
    /// `customers/data_request`: a customer asked the store for their data.
    CustomersDataRequest,
    /// `customers/redact`: erase a customer (sent 10 days after the request).
    CustomersRedact,
    /// `shop/redact`: erase the store's data (sent 48 hours after uninstall).
    ShopRedact,
    /// `app/uninstalled`: the merchant removed the app.
    AppUninstalled,
}

impl ShopifyTopic {
    /// The topic of an `X-Shopify-Topic` value; `None` for topics this function ignores.
    pub fn parse(topic: &str) -> Option<Self> {
        match topic.trim() {
            "customers/data_request" => Some(Self::CustomersDataRequest),
            "customers/redact" => Some(Self::CustomersRedact),
            "shop/redact" => Some(Self::ShopRedact),
            "app/uninstalled" => Some(Self::AppUninstalled),
            _ => None,
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn webhook_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The customer id of a privacy payload (`customer.id`, a number in Shopify's payloads).
fn customer_id(payload: &Value) -> Option<String> {
    match payload.get("customer").and_then(|c| c.get("id")) {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if is_valid_id(s) => Some(s.clone()),
        _ => None,
    }
}

/// A non-blank string field of the payload's `customer`.
fn customer_field<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload
        .get("customer")
        .and_then(|c| c.get(name))
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// `POST /v1/webhooks/shopify`, as Shopify specifies
/// (<https://shopify.dev/docs/apps/build/webhooks/subscribe/https>):
/// - `X-Shopify-Hmac-Sha256` must be the base64 HMAC-SHA256 of the raw body (API Gateway's base64
///   bodies are decoded first) under the app's client secret, compared in constant time; else 401.
/// - The topic is `X-Shopify-Topic`; the shop is the body's `shop_domain` (`myshopify_domain` in the
///   `app/uninstalled` shop payload), never the unsigned `X-Shopify-Shop-Domain` header.
/// - A delivery is processed once per `X-Shopify-Webhook-Id`; a repeat answers 200 with
///   `"duplicate": true`. When processing fails the id is released and the answer is 503, so
///   Shopify's retry is processed.
/// - Other topics are acknowledged (200) and ignored.
pub(crate) async fn shopify_webhook<S: Store, K: PiiKeySource>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body = http::body_bytes(req);
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::too_large(
            "body",
            format!("webhook bodies are at most {MAX_WEBHOOK_BYTES} bytes"),
        ));
    }
    verify_shopify_webhook(
        deps.shopify_secret.expose(),
        body,
        header(req, "x-shopify-hmac-sha256"),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let raw_topic = header(req, "x-shopify-topic").unwrap_or("");
    let Some(topic) = ShopifyTopic::parse(raw_topic) else {
        return Ok(http::json_response(
            StatusCode::OK,
            &json!({"ignored": true, "reason": "this topic is not handled"}),
        ));
    };
    let webhook_id = header(req, "x-shopify-webhook-id")
        .map(str::trim)
        .filter(|id| webhook_id_ok(id))
        .ok_or_else(|| {
            ApiError::bad_request("x-shopify-webhook-id", "missing or malformed webhook id")
        })?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("body", "the body is not JSON"))?;
    let shop = payload
        .get("shop_domain")
        .or_else(|| {
            (topic == ShopifyTopic::AppUninstalled)
                .then(|| payload.get("myshopify_domain"))
                .flatten()
        })
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("shop_domain", "the payload names no shop"))?;
    let shop = normalize_shop(shop)
        .map_err(|_| ApiError::bad_request("shop_domain", "must be {name}.myshopify.com"))?;
    let now = deps.clock.now_ms();
    let claimed = deps
        .store
        .claim_webhook(webhook_id, raw_topic.trim(), now)
        .await
        .map_err(ErasureError::from)?;
    if !claimed {
        tracing::info!(topic = raw_topic, "repeated webhook delivery ignored");
        return Ok(http::json_response(
            StatusCode::OK,
            &json!({"duplicate": true}),
        ));
    }
    let tenant_id = tenant_id_for(Platform::Shopify, &shop);
    match process_webhook(deps, topic, &tenant_id, &payload, now).await {
        Ok(answer) => Ok(answer),
        Err(e) => {
            if let Err(release) = deps.store.release_webhook(webhook_id).await {
                tracing::error!(error = %release, "webhook id not released; Shopify's retry will be ignored");
            }
            Err(e)
        }
    }
}

/// The answer for a deletion that was started or found.
fn begun(tenant_id: &str, trigger: Trigger, begin: &Begin) -> Response<Body> {
    if let Begin::Started(_) = begin {
        tracing::info!(tenant_id = %tenant_id, trigger = ?trigger, "tenant deletion started");
    }
    match begin.job() {
        Some(job) => ok(&job.progress()),
        None => ok(&json!({"nothing_held": true})),
    }
}

fn ok<T: serde::Serialize>(body: &T) -> Response<Body> {
    http::json_response(StatusCode::OK, body)
}

async fn process_webhook<S: Store, K: PiiKeySource>(
    deps: &Deps<S, K>,
    topic: ShopifyTopic,
    tenant_id: &str,
    payload: &Value,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let trigger = match topic {
        ShopifyTopic::ShopRedact => Trigger::ShopifyShopRedact,
        ShopifyTopic::AppUninstalled => Trigger::ShopifyAppUninstalled,
        ShopifyTopic::CustomersRedact | ShopifyTopic::CustomersDataRequest => {
            return privacy_request(deps, topic, tenant_id, payload, now).await
        }
    };
    // Shopify waits 5 s: start the deletion (mark, shred, queue) and leave the work to the schedule.
    let begin = deletion::begin(&deps.store, tenant_id, trigger, now)
        .await
        .map_err(ErasureError::from)?;
    Ok(begun(tenant_id, trigger, &begin))
}

/// The answer to `customers/data_request`: the export of each profile the request is about.
#[derive(Debug, serde::Serialize)]
struct DataRequestAnswer {
    /// Shopify's `data_request.id`, as JSON text.
    data_request_id: String,
    /// The exports (the customer id's, and those of profiles their email or phone point at).
    documents: Vec<shopper::ShopperExport>,
}

/// `customers/redact` (erase) and `customers/data_request` (export) of one customer.
async fn privacy_request<S: Store, K: PiiKeySource>(
    deps: &Deps<S, K>,
    topic: ShopifyTopic,
    tenant_id: &str,
    payload: &Value,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let customer = customer_id(payload)
        .ok_or_else(|| ApiError::bad_request("customer.id", "the payload names no customer"))?;
    let Some(tenant) = deletion::tenant_of(&deps.store, tenant_id)
        .await
        .map_err(ErasureError::from)?
    else {
        return Ok(ok(&json!({"nothing_held": true})));
    };
    if tenant.status != TenantStatus::Active {
        // Everything of the store is being deleted anyway.
        return Ok(ok(&json!({"tenant_deleting": true})));
    }
    let named = Named {
        customer_id: &customer,
        email: customer_field(payload, "email"),
        phone: customer_field(payload, "phone"),
    };
    let subjects = shopper::subjects(&deps.store, &deps.pii_keys, &tenant, named).await?;
    let site = &tenant.site_id;
    if topic == ShopifyTopic::CustomersRedact {
        let mut report = ErasureReport::default();
        for key in &subjects {
            let one = shopper::erase(&deps.store, site, key)
                .await
                .map_err(ErasureError::from)?;
            report.add(&one);
        }
        tracing::info!(
            tenant_id = %tenant_id,
            profiles = report.profiles,
            events = report.events,
            guest_ids = report.guest_ids,
            "customer erased (customers/redact)"
        );
        return Ok(ok(&report));
    }
    let mut documents = Vec::new();
    for key in &subjects {
        let export = shopper::export(&deps.store, site, key, now)
            .await
            .map_err(ErasureError::from)?;
        if export.found || documents.is_empty() {
            documents.push(export);
        }
    }
    let request_id = payload
        .get("data_request")
        .and_then(|d| d.get("id"))
        .map(Value::to_string)
        .unwrap_or_default();
    tracing::info!(
        tenant_id = %tenant_id,
        data_request_id = %request_id,
        documents = documents.len(),
        profiles = documents.iter().map(|d| d.profiles.len()).sum::<usize>(),
        events = documents.iter().map(|d| d.events.len()).sum::<usize>(),
        "customer data export produced (customers/data_request); the merchant fetches it from the export route"
    );
    Ok(ok(&DataRequestAnswer {
        data_request_id: request_id,
        documents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_privacy_topics_and_the_uninstall_are_acted_on() {
        assert_eq!(
            ShopifyTopic::parse("customers/redact"),
            Some(ShopifyTopic::CustomersRedact)
        );
        assert_eq!(
            ShopifyTopic::parse("app/uninstalled"),
            Some(ShopifyTopic::AppUninstalled)
        );
        assert_eq!(ShopifyTopic::parse("products/create"), None);
    }

    #[test]
    fn customer_ids_come_from_the_payload_as_strings() {
        assert_eq!(
            customer_id(&json!({"customer": {"id": 191167}})).as_deref(),
            Some("191167")
        );
        assert_eq!(customer_id(&json!({"customer": {}})), None);
        assert_eq!(customer_id(&json!({"customer": {"id": "a b"}})), None);
    }

    #[test]
    fn blank_personal_fields_are_not_named() {
        let p = json!({"customer": {"email": " ", "phone": "+1 555 0100"}});
        assert_eq!(customer_field(&p, "email"), None);
        assert_eq!(customer_field(&p, "phone"), Some("+1 555 0100"));
    }
}

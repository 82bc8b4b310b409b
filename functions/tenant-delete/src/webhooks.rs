//! Shopify's privacy webhooks and the uninstall: `POST /v1/webhooks/shopify`.
//!
//! The HMAC signs the body, not the `X-Shopify-Topic` header, so a body signed for one topic could be
//! sent again under another (a `customers/redact` body as `shop/redact` would delete the whole store).
//! Hence each body must have the documented shape of its topic ([`check_shape`], 400 `topic_mismatch`),
//! and an `app/uninstalled` of an active store (which could be any shop object Shopify ever signed,
//! such as a `shop/update` body) starts the deletion only once Shopify's Admin API refuses the store's
//! access token (a 401 to `shop.json` with the stored, KMS-decrypted token; a token that still works
//! is 409 `token_not_revoked`, no answer 502). A refused delivery changes nothing and its id is
//! released, so Shopify's retry is judged again.

use affinity::deletion::shopper::{self, ErasureReport, Named};
use affinity::deletion::{self, Begin, ErasureError, Trigger};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError, ErrorCode};
use affinity::oauth::shopify::{self, normalize_shop, verify_shopify_webhook};
use affinity::oauth::AccessTokenOpener;
use affinity::pii::PepperSource;
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

/// Whether `payload` has the shape Shopify documents for `topic`
/// (<https://shopify.dev/docs/apps/build/privacy-law-compliance>; `app/uninstalled` carries the shop
/// resource, <https://shopify.dev/docs/api/admin-rest/latest/resources/shop>):
/// - the privacy topics: `shop_id` (a number) and `shop_domain`, never a shop resource's
///   `myshopify_domain`; `customers/redact` a `customer` with an `id` and `orders_to_redact`;
///   `customers/data_request` a `customer` with an `id`, `orders_requested` and a `data_request` with
///   an `id`; `shop/redact` none of the customer fields;
/// - `app/uninstalled`: the shop's numeric `id` and `myshopify_domain`, none of the privacy fields.
///
/// # Errors
/// What is wrong, for the answer (it names no value of the body).
pub fn check_shape(topic: ShopifyTopic, payload: &Value) -> Result<(), &'static str> {
    let has = |k: &str| payload.get(k).is_some_and(|v| !v.is_null());
    let number = |v: Option<&Value>| v.is_some_and(Value::is_u64);
    let array = |k: &str| payload.get(k).is_some_and(Value::is_array);
    let customer = || number(payload.get("customer").and_then(|c| c.get("id")));
    if !payload.is_object() {
        return Err("the body is not a JSON object");
    }
    if topic == ShopifyTopic::AppUninstalled {
        let shop_resource = number(payload.get("id"))
            && payload
                .get("myshopify_domain")
                .is_some_and(Value::is_string);
        if !shop_resource {
            return Err("an app/uninstalled body is the shop resource: it needs the shop's numeric id and myshopify_domain");
        }
        if has("shop_id") || has("shop_domain") || has("customer") {
            return Err("an app/uninstalled body carries no privacy request fields (shop_id, shop_domain, customer)");
        }
        return Ok(());
    }
    if !number(payload.get("shop_id"))
        || !payload.get("shop_domain").is_some_and(Value::is_string)
        || has("myshopify_domain")
    {
        return Err("a privacy webhook body needs a numeric shop_id and a shop_domain, and is not a shop resource");
    }
    let fits = match topic {
        ShopifyTopic::CustomersRedact => {
            customer()
                && array("orders_to_redact")
                && !has("orders_requested")
                && !has("data_request")
        }
        ShopifyTopic::CustomersDataRequest => {
            customer()
                && array("orders_requested")
                && number(payload.get("data_request").and_then(|d| d.get("id")))
                && !has("orders_to_redact")
        }
        _ => {
            !has("customer")
                && !has("orders_to_redact")
                && !has("orders_requested")
                && !has("data_request")
        }
    };
    if fits {
        Ok(())
    } else {
        Err(match topic {
            ShopifyTopic::CustomersRedact => "a customers/redact body needs customer.id and orders_to_redact, and no data_request",
            ShopifyTopic::CustomersDataRequest => "a customers/data_request body needs customer.id, orders_requested and data_request.id",
            _ => "a shop/redact body names the shop only (no customer, orders or data_request)",
        })
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
/// - The body must have its topic's shape ([`check_shape`]); an `app/uninstalled` of an active store
///   must be confirmed by Shopify (the module's text).
pub(crate) async fn shopify_webhook<S: Store, K: PepperSource + AccessTokenOpener>(
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
    check_shape(topic, &payload).map_err(|reason| {
        tracing::warn!(
            topic = raw_topic,
            reason,
            "webhook body does not fit its topic; refused"
        );
        ApiError::new(ErrorCode::TopicMismatch, Some("x-shopify-topic"), reason)
    })?;
    let shop_field = match topic {
        ShopifyTopic::AppUninstalled => "myshopify_domain",
        _ => "shop_domain",
    };
    let shop = payload
        .get(shop_field)
        .and_then(Value::as_str)
        .and_then(|s| normalize_shop(s).ok())
        .ok_or_else(|| ApiError::bad_request(shop_field, "must be {name}.myshopify.com"))?;
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
    let delivery = Delivery {
        topic,
        tenant_id: &tenant_id,
        shop: &shop,
        payload: &payload,
        now,
    };
    match process_webhook(deps, &delivery).await {
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

/// One verified delivery of a topic this function acts on.
struct Delivery<'a> {
    topic: ShopifyTopic,
    tenant_id: &'a str,
    shop: &'a str,
    payload: &'a Value,
    /// When it arrived, epoch ms.
    now: i64,
}

/// `app/uninstalled` of an active store: Shopify must refuse the store's token now.
async fn confirm_uninstalled<S: Store, K: PepperSource + AccessTokenOpener>(
    deps: &Deps<S, K>,
    d: &Delivery<'_>,
) -> Result<(), ApiError> {
    let tenant = deletion::tenant_of(&deps.store, d.tenant_id)
        .await
        .map_err(ErasureError::from)?;
    let Some(tenant) = tenant.filter(|t| t.status == TenantStatus::Active) else {
        // Nothing held, or already being deleted (its token is gone): nothing more to lose.
        return Ok(());
    };
    let base = shopify::shop_base(&deps.shopify_base_url, d.shop);
    deps.platform
        .confirm_revoked(
            &deps.peppers,
            &tenant,
            &shopify::shop_json_url(&base),
            shopify::ACCESS_TOKEN_HEADER,
        )
        .await
        .map_err(ApiError::from)
}

async fn process_webhook<S: Store, K: PepperSource + AccessTokenOpener>(
    deps: &Deps<S, K>,
    d: &Delivery<'_>,
) -> Result<Response<Body>, ApiError> {
    let (tenant_id, now) = (d.tenant_id, d.now);
    let trigger = match d.topic {
        ShopifyTopic::ShopRedact => Trigger::ShopifyShopRedact,
        ShopifyTopic::AppUninstalled => {
            confirm_uninstalled(deps, d).await?;
            Trigger::ShopifyAppUninstalled
        }
        ShopifyTopic::CustomersRedact | ShopifyTopic::CustomersDataRequest => {
            return privacy_request(deps, d).await
        }
    };
    // Shopify waits 5 s: start the deletion (mark, shred, queue) and leave the work to the schedule.
    let begin = deps
        .begin_deletion(tenant_id, trigger, now)
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
async fn privacy_request<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    d: &Delivery<'_>,
) -> Result<Response<Body>, ApiError> {
    let (topic, tenant_id, payload, now) = (d.topic, d.tenant_id, d.payload, d.now);
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
    let subjects = shopper::subjects(&deps.store, &deps.peppers, &tenant, named).await?;
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

    fn fixture(name: &str) -> Value {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/shopify");
        let text = std::fs::read_to_string(root.join(name)).expect("fixture");
        serde_json::from_str(&text.replace("{shop}", "a")).expect("json")
    }

    #[test]
    fn each_documented_body_fits_its_own_topic_only() {
        use ShopifyTopic as T;
        let shop = json!({"id": 954889, "name": "A", "domain": "a.example", "myshopify_domain": "a.myshopify.com"});
        let bodies = [
            (
                T::CustomersDataRequest,
                fixture("customers_data_request.json"),
            ),
            (T::CustomersRedact, fixture("customers_redact.json")),
            (T::ShopRedact, fixture("shop_redact.json")),
            (T::AppUninstalled, shop),
        ];
        for (body_topic, body) in &bodies {
            for (topic, _) in &bodies {
                assert_eq!(
                    check_shape(*topic, body).is_ok(),
                    topic == body_topic,
                    "{body_topic:?} body under {topic:?}"
                );
            }
        }
        assert!(check_shape(T::ShopRedact, &json!([1])).is_err());
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

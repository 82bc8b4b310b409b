//! The tenant-delete function: tenant deletion that can be proven, shopper erasure and export, and
//! Shopify's privacy webhooks. One binary serves API Gateway and the EventBridge schedule.
//!
//! Routes:
//! - `DELETE /v1/tenants/{tenant_id}` (operator; IAM-authorized on API Gateway): marks the tenant
//!   deleting and destroys its secrets at once, works for up to the request budget, answers 202 with the
//!   progress document (200 with the tombstone when already completed; 404 for an unknown tenant).
//! - `GET /v1/tenants/{tenant_id}/deletion` (operator): progress, then the tombstone.
//! - `POST /v1/webhooks/shopify`: `customers/data_request`, `customers/redact`, `shop/redact` and
//!   `app/uninstalled`, verified by HMAC over the raw body and processed once per `X-Shopify-Webhook-Id`.
//! - `DELETE /v1/sites/{site_id}/shoppers/{shopper_id}` (tenant API key): erases the shopper.
//! - `GET /v1/sites/{site_id}/shoppers/{shopper_id}/export` (tenant API key): everything held about
//!   the shopper. `shopper_id` is a guest id, or a customer id with `?id_type=customer`.
//!
//! The schedule (every minute) continues every unfinished deletion until the invocation's deadline.
//! The algorithm and its guarantees are in [`affinity::store::deletion`].

use std::convert::Infallible;

use affinity::config::{self, ConfigError};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::oauth::shopify::{normalize_shop, verify_shopify_webhook};
use affinity::oauth::Secret;
use affinity::pii::{self, PiiKeySource};
use affinity::store::deletion::{
    Begin, DeletionJob, DeletionSettings, ErasureReport, RunOutcome, Trigger,
};
use affinity::store::dynamo::DynamoStore;
use affinity::store::{customer_key, guest_key, StoreError, TenantLookup};
use affinity::tenant::{tenant_id_for, KeyCheck, Platform, Tenant, TenantStatus};
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{LambdaEvent, Service};
use serde::Serialize;
use serde_json::{json, Value};

/// Largest webhook body read, in bytes (Shopify's privacy payloads are well under 1 KiB).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// What the handlers need, built once per cold start.
pub struct Deps<K> {
    /// Storage.
    pub store: DynamoStore,
    /// Tenants' PII keys: Shopify's `customers/redact` and `customers/data_request` name the customer's
    /// email and phone, whose keyed hashes find profiles that no customer id reaches.
    pub pii_keys: K,
    /// Timing of deletion runs.
    pub settings: DeletionSettings,
    /// How long an HTTP `DELETE` works on the deletion before answering 202, in ms (the schedule
    /// continues). API Gateway waits at most 30 s.
    pub request_budget_ms: i64,
    /// The Shopify app's client secret: verifies webhooks.
    pub shopify_secret: Secret,
    /// The clock, epoch ms.
    pub clock: fn() -> i64,
}

fn seconds_ms(name: &'static str, default_s: f64) -> Result<i64, ConfigError> {
    Ok((config::positive_or(name, default_s)? * 1000.0) as i64)
}

/// Deletion timing from the environment: `DELETION_GRACE_SECONDS` (default 15; must exceed the ingest
/// timeout), `DELETION_RECHECK_SECONDS` (5), `DELETION_MARGIN_SECONDS` (5) and
/// `DELETION_REQUEST_BUDGET_SECONDS` (3). Returns the settings and the request budget in ms.
///
/// # Errors
/// [`ConfigError::Invalid`] for a value that is not a positive number.
pub fn settings_from_env() -> Result<(DeletionSettings, i64), ConfigError> {
    let settings = DeletionSettings {
        grace_ms: seconds_ms("DELETION_GRACE_SECONDS", 15.0)?,
        recheck_ms: seconds_ms("DELETION_RECHECK_SECONDS", 5.0)?,
        margin_ms: seconds_ms("DELETION_MARGIN_SECONDS", 5.0)?,
        ..DeletionSettings::default()
    };
    Ok((
        settings,
        seconds_ms("DELETION_REQUEST_BUDGET_SECONDS", 3.0)?,
    ))
}

fn storage(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "storage failed");
    ApiError::unavailable("storage is unavailable; retry later (the request is idempotent)")
}

// ---------------------------------------------------------------------------------------------------
// Lambda entry: HTTP events and the schedule
// ---------------------------------------------------------------------------------------------------

/// What an invocation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An API Gateway (REST or HTTP API) or ALB request.
    Http,
    /// The EventBridge schedule.
    Schedule,
    /// Anything else (refused).
    Unknown,
}

/// Tells an HTTP event (it has `requestContext` or `httpMethod`) from the EventBridge schedule
/// (`source: aws.events` / `detail-type: Scheduled Event`).
pub fn classify(payload: &Value) -> EventKind {
    if payload.get("requestContext").is_some() || payload.get("httpMethod").is_some() {
        EventKind::Http
    } else if payload.get("source").and_then(Value::as_str) == Some("aws.events")
        || payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        EventKind::Schedule
    } else {
        EventKind::Unknown
    }
}

/// Handles one invocation: an HTTP event is answered in API Gateway's response shape; a scheduled
/// event continues the unfinished deletions until the invocation's deadline and returns a
/// [`TickReport`].
///
/// # Errors
/// An unrecognised event, an HTTP event that does not parse, or storage failing on the schedule (the
/// next tick retries).
pub async fn invoke<K: PiiKeySource>(
    deps: &Deps<K>,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
    match classify(&event.payload) {
        EventKind::Http => {
            // lambda_http's own event types and adapter (public, though hidden from its docs), so the
            // request and the response have exactly the shapes `lambda_http::run` gives them.
            let request: LambdaRequest = serde_json::from_value(event.payload)?;
            let mut adapter = lambda_http::Adapter::from(lambda_runtime::service_fn(
                move |req: Request| async move {
                    Ok::<_, Infallible>(handle(deps, req, deadline_ms).await)
                },
            ));
            let response = adapter
                .call(LambdaEvent::new(request, event.context))
                .await?;
            Ok(serde_json::to_value(response)?)
        }
        EventKind::Schedule => {
            let report = tick(deps, deadline_ms)
                .await
                .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            Ok(serde_json::to_value(report)?)
        }
        EventKind::Unknown => {
            Err("unrecognised event: expected an HTTP request or the schedule".into())
        }
    }
}

/// What a scheduled run did, per tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Unfinished deletions found.
    pub pending: usize,
    /// Completed by this run.
    pub completed: Vec<String>,
    /// Saved for the next run (deadline, grace period or re-check).
    pub paused: Vec<String>,
    /// Held by another run.
    pub busy: Vec<String>,
    /// Failed this time (logged; retried by the next run).
    pub failed: Vec<String>,
}

/// Deletions worked on at once by one scheduled run (each waits for its grace period and re-check, so
/// running them side by side lets one run finish several).
pub const JOBS_AT_ONCE: usize = 8;

/// Continues every unfinished deletion, [`JOBS_AT_ONCE`] at a time, until `deadline_ms` (epoch ms)
/// minus the margin.
///
/// # Errors
/// [`StoreError`] when the queue cannot be read.
pub async fn tick<K: PiiKeySource>(
    deps: &Deps<K>,
    deadline_ms: i64,
) -> Result<TickReport, StoreError> {
    let ids = deps.store.pending_deletions().await?;
    let mut report = TickReport {
        pending: ids.len(),
        ..TickReport::default()
    };
    for batch in ids.chunks(JOBS_AT_ONCE) {
        let mut runs = tokio::task::JoinSet::new();
        for id in batch {
            let (store, settings, clock, id) =
                (deps.store.clone(), deps.settings, deps.clock, id.clone());
            runs.spawn(async move {
                let outcome = store.run_deletion(&id, &settings, clock, deadline_ms).await;
                (id, outcome)
            });
        }
        while let Some(done) = runs.join_next().await {
            let Ok((id, outcome)) = done else {
                tracing::error!("deletion run task failed");
                continue;
            };
            match outcome {
                Ok(RunOutcome::Completed(job)) => {
                    log_completed(&job);
                    report.completed.push(id);
                }
                Ok(RunOutcome::Paused(_) | RunOutcome::NotFound) => report.paused.push(id),
                Ok(RunOutcome::Busy(_)) => report.busy.push(id),
                Err(e) => {
                    tracing::error!(tenant_id = %id, error = %e, "deletion run failed");
                    report.failed.push(id);
                }
            }
        }
    }
    tracing::info!(
        pending = report.pending,
        completed = report.completed.len(),
        paused = report.paused.len(),
        busy = report.busy.len(),
        failed = report.failed.len(),
        "deletion tick"
    );
    Ok(report)
}

fn log_completed(job: &DeletionJob) {
    tracing::info!(
        tenant_id = %job.tenant_id,
        events = job.deleted.events,
        profiles = job.deleted.profiles,
        popularity = job.deleted.popularity,
        tenants = job.deleted.tenants,
        passes = job.passes,
        "tenant deletion completed"
    );
}

// ---------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------

/// Handles one HTTP request; every outcome is a response. `deadline_ms` is the invocation's deadline
/// (epoch ms).
pub async fn handle<K: PiiKeySource>(
    deps: &Deps<K>,
    req: Request,
    deadline_ms: i64,
) -> Response<Body> {
    match route(deps, &req, deadline_ms).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route<K: PiiKeySource>(
    deps: &Deps<K>,
    req: &Request,
    deadline_ms: i64,
) -> Result<Response<Body>, ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method();
    match segs.as_slice() {
        ["tenants", tenant_id] => {
            allow(method, &Method::DELETE)?;
            require_operator(req)?;
            delete_tenant(deps, tenant_id, deadline_ms).await
        }
        ["tenants", tenant_id, "deletion"] => {
            allow(method, &Method::GET)?;
            require_operator(req)?;
            deletion_status(deps, tenant_id).await
        }
        ["webhooks", "shopify"] => {
            allow(method, &Method::POST)?;
            shopify_webhook(deps, req).await
        }
        ["sites", site_id, "shoppers", shopper_id] => {
            allow(method, &Method::DELETE)?;
            shopper(deps, req, site_id, shopper_id, ShopperAction::Erase).await
        }
        ["sites", site_id, "shoppers", shopper_id, "export"] => {
            allow(method, &Method::GET)?;
            shopper(deps, req, site_id, shopper_id, ShopperAction::Export).await
        }
        _ => Err(ApiError::not_found(None, "no such route")),
    }
}

fn allow(method: &Method, allowed: &Method) -> Result<(), ApiError> {
    if method == allowed {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allowed.as_str()))
    }
}

/// Operator routes are authorized by API Gateway (`AWS_IAM`); this refuses a request that did not pass
/// through that authorizer (a misconfigured route), as defence in depth.
fn require_operator(req: &Request) -> Result<(), ApiError> {
    use lambda_http::request::RequestContext;
    let iam = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => {
            c.authorizer.as_ref().is_some_and(|a| a.iam.is_some())
        }
        Some(RequestContext::ApiGatewayV1(c)) => c.identity.user_arn.is_some(),
        _ => false,
    };
    if iam {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "operator routes need AWS IAM (SigV4) authorization through API Gateway",
        ))
    }
}

fn valid_tenant_id(tenant_id: &str) -> Result<(), ApiError> {
    if is_valid_id(tenant_id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "tenant_id",
            "must be 1-128 characters of A-Z a-z 0-9 _ = / + . - :",
        ))
    }
}

fn progress_response(job: &DeletionJob) -> Response<Body> {
    let status = match job.state {
        affinity::store::deletion::DeletionState::Completed => StatusCode::OK,
        affinity::store::deletion::DeletionState::Running => StatusCode::ACCEPTED,
    };
    http::json_response(status, &job.progress())
}

async fn delete_tenant<K: PiiKeySource>(
    deps: &Deps<K>,
    tenant_id: &str,
    deadline_ms: i64,
) -> Result<Response<Body>, ApiError> {
    valid_tenant_id(tenant_id)?;
    let now = (deps.clock)();
    let job = match deps
        .store
        .begin_deletion(tenant_id, Trigger::Operator, now)
        .await
        .map_err(storage)?
    {
        Begin::NotFound => {
            return Err(ApiError::not_found(
                Some("tenant_id"),
                "no tenant has this id, and none was deleted",
            ))
        }
        Begin::Started(job) => {
            tracing::info!(tenant_id = %tenant_id, trigger = "operator", "tenant deletion started");
            job
        }
        Begin::Existing(job) => job,
    };
    if job.state == affinity::store::deletion::DeletionState::Completed {
        return Ok(progress_response(&job));
    }
    // Work for the request budget; the schedule continues.
    let deadline = deadline_ms.min(now + deps.request_budget_ms + deps.settings.margin_ms);
    let job = match deps
        .store
        .run_deletion(tenant_id, &deps.settings, deps.clock, deadline)
        .await
    {
        Ok(RunOutcome::Completed(j)) => {
            log_completed(&j);
            j
        }
        Ok(RunOutcome::Paused(j) | RunOutcome::Busy(j)) => j,
        Ok(RunOutcome::NotFound) => job,
        Err(e) => {
            // The mark and the job are saved: the schedule continues. Report the progress as it is.
            tracing::warn!(tenant_id = %tenant_id, error = %e, "deletion run stopped; the schedule continues");
            deps.store
                .deletion(tenant_id)
                .await
                .map_err(storage)?
                .unwrap_or(job)
        }
    };
    Ok(progress_response(&job))
}

async fn deletion_status<K: PiiKeySource>(
    deps: &Deps<K>,
    tenant_id: &str,
) -> Result<Response<Body>, ApiError> {
    valid_tenant_id(tenant_id)?;
    match deps.store.deletion(tenant_id).await.map_err(storage)? {
        Some(job) => Ok(http::json_response(StatusCode::OK, &job.progress())),
        None => Err(ApiError::not_found(
            Some("tenant_id"),
            "no deletion was requested for this tenant id",
        )),
    }
}

// ---------------------------------------------------------------------------------------------------
// Shopper erasure and export (tenant API key)
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShopperAction {
    Erase,
    Export,
}

/// Checks the tenant (404 unknown, 410 deleting or deleted) and its API key (401, 403).
async fn admit<K: PiiKeySource>(
    deps: &Deps<K>,
    req: &Request,
    site_id: &str,
) -> Result<Tenant, ApiError> {
    if !is_valid_id(site_id) {
        return Err(ApiError::unknown_site());
    }
    let tenant = deps
        .store
        .tenant_by_site(site_id)
        .await
        .map_err(storage)?
        .ok_or_else(ApiError::unknown_site)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::site_deleted());
    }
    match tenant.check_api_key(http::bearer_token(req)) {
        KeyCheck::Valid => Ok(tenant),
        KeyCheck::OtherTenant => Err(ApiError::forbidden("this API key belongs to another store")),
        KeyCheck::Invalid => Err(ApiError::unauthorized(
            "this route needs the store's API key as Authorization: Bearer <key>",
        )),
    }
}

/// The profile key of the shopper named in the route: a guest id, or a customer id with
/// `?id_type=customer`.
fn shopper_key(req: &Request, shopper_id: &str) -> Result<String, ApiError> {
    if !is_valid_id(shopper_id) {
        return Err(ApiError::bad_request(
            "shopper_id",
            "must be 1-128 characters of A-Z a-z 0-9 _ = / + . - :",
        ));
    }
    match http::query_param(req, "id_type").as_deref() {
        None | Some("guest") => Ok(guest_key(shopper_id)),
        Some("customer") => Ok(customer_key(shopper_id)),
        Some(_) => Err(ApiError::bad_request(
            "id_type",
            "must be guest (the default) or customer",
        )),
    }
}

async fn shopper<K: PiiKeySource>(
    deps: &Deps<K>,
    req: &Request,
    site_id: &str,
    shopper_id: &str,
    action: ShopperAction,
) -> Result<Response<Body>, ApiError> {
    let key = shopper_key(req, shopper_id)?;
    let tenant = admit(deps, req, site_id).await?;
    match action {
        ShopperAction::Erase => {
            let report = deps
                .store
                .erase_shopper(&tenant.site_id, &key)
                .await
                .map_err(storage)?;
            tracing::info!(
                site_id = %tenant.site_id,
                profiles = report.profiles,
                events = report.events,
                guest_ids = report.guest_ids,
                "shopper erased (API)"
            );
            Ok(http::json_response(StatusCode::OK, &report))
        }
        ShopperAction::Export => {
            let export = deps
                .store
                .export_shopper(&tenant.site_id, &key, (deps.clock)())
                .await
                .map_err(storage)?;
            tracing::info!(
                site_id = %tenant.site_id,
                profiles = export.profiles.len(),
                events = export.events.len(),
                "shopper export produced (API)"
            );
            Ok(http::json_response(StatusCode::OK, &export))
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Shopify webhooks
// ---------------------------------------------------------------------------------------------------

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
async fn shopify_webhook<K: PiiKeySource>(
    deps: &Deps<K>,
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
    let now = (deps.clock)();
    if !deps
        .store
        .claim_webhook(webhook_id, raw_topic.trim(), now)
        .await
        .map_err(storage)?
    {
        tracing::info!(topic = raw_topic, "repeated webhook delivery ignored");
        return Ok(http::json_response(
            StatusCode::OK,
            &json!({"duplicate": true}),
        ));
    }
    let tenant_id = tenant_id_for(Platform::Shopify, &shop);
    match process_webhook(deps, topic, &tenant_id, &payload, now).await {
        Ok(body) => Ok(http::json_response(StatusCode::OK, &body)),
        Err(e) => {
            if let Err(release) = deps.store.release_webhook(webhook_id).await {
                tracing::error!(error = %release, "webhook id not released; Shopify's retry will be ignored");
            }
            Err(e)
        }
    }
}

async fn process_webhook<K: PiiKeySource>(
    deps: &Deps<K>,
    topic: ShopifyTopic,
    tenant_id: &str,
    payload: &Value,
    now: i64,
) -> Result<Value, ApiError> {
    match topic {
        ShopifyTopic::ShopRedact | ShopifyTopic::AppUninstalled => {
            let trigger = if topic == ShopifyTopic::ShopRedact {
                Trigger::ShopifyShopRedact
            } else {
                Trigger::ShopifyAppUninstalled
            };
            // Shopify waits 5 s: start the deletion (mark, shred, queue) and leave the work to the schedule.
            match deps
                .store
                .begin_deletion(tenant_id, trigger, now)
                .await
                .map_err(storage)?
            {
                Begin::NotFound => Ok(json!({"nothing_held": true})),
                Begin::Started(job) => {
                    tracing::info!(tenant_id = %tenant_id, trigger = ?trigger, "tenant deletion started");
                    Ok(serde_json::to_value(job.progress()).unwrap_or_default())
                }
                Begin::Existing(job) => {
                    Ok(serde_json::to_value(job.progress()).unwrap_or_default())
                }
            }
        }
        ShopifyTopic::CustomersRedact | ShopifyTopic::CustomersDataRequest => {
            let customer = customer_id(payload).ok_or_else(|| {
                ApiError::bad_request("customer.id", "the payload names no customer")
            })?;
            let Some(tenant) = deps
                .store
                .tenant_by_tenant_id(tenant_id)
                .await
                .map_err(storage)?
                .filter(|t| t.tenant_id == tenant_id)
            else {
                return Ok(json!({"nothing_held": true}));
            };
            if tenant.status != TenantStatus::Active {
                // Everything of the store is being deleted anyway.
                return Ok(json!({"tenant_deleting": true}));
            }
            let subjects = subjects(deps, &tenant, &customer, payload).await?;
            if topic == ShopifyTopic::CustomersRedact {
                let mut report = ErasureReport::default();
                for key in &subjects {
                    let one = deps
                        .store
                        .erase_shopper(&tenant.site_id, key)
                        .await
                        .map_err(storage)?;
                    report.add(&one);
                }
                tracing::info!(
                    tenant_id = %tenant_id,
                    profiles = report.profiles,
                    events = report.events,
                    guest_ids = report.guest_ids,
                    "customer erased (customers/redact)"
                );
                Ok(serde_json::to_value(report).unwrap_or_default())
            } else {
                let mut documents = Vec::new();
                for key in &subjects {
                    let export = deps
                        .store
                        .export_shopper(&tenant.site_id, key, now)
                        .await
                        .map_err(storage)?;
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
                Ok(json!({"data_request_id": request_id, "documents": documents}))
            }
        }
    }
}

/// The profiles a privacy request is about: the customer id's, then those that the customer's email
/// and phone (as keyed hashes under the tenant's PII key) point at. A tenant without a PII key never
/// linked an email or phone.
///
/// # Errors
/// 503 when the PII key or storage is unavailable (Shopify retries).
async fn subjects<K: PiiKeySource>(
    deps: &Deps<K>,
    tenant: &Tenant,
    customer: &str,
    payload: &Value,
) -> Result<Vec<String>, ApiError> {
    let mut out = vec![customer_key(customer)];
    if tenant.pii_key_ciphertext.is_none() {
        return Ok(out);
    }
    let key = deps.pii_keys.pii_key(tenant).await.map_err(|e| {
        tracing::error!(error = %e, "PII key unavailable");
        ApiError::unavailable("the store's PII key is unavailable; retry later")
    })?;
    let field = |name: &str| {
        payload
            .get("customer")
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
    };
    let mut identities = Vec::new();
    if let Some(Ok(k)) = field("email").map(|v| pii::email_key(&key, v)) {
        identities.push(format!("e:{}", k.0));
    }
    if let Some(Ok(k)) =
        field("phone").map(|v| pii::phone_key(&key, v, tenant.default_region.as_deref()))
    {
        identities.push(format!("p:{}", k.0));
    }
    for target in deps
        .store
        .profiles_of_identities(&tenant.site_id, &identities)
        .await
        .map_err(storage)?
    {
        if !out.contains(&target) {
            out.push(target);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_events_and_the_schedule_are_told_apart() {
        assert_eq!(
            classify(&json!({"version": "2.0", "requestContext": {}})),
            EventKind::Http
        );
        assert_eq!(
            classify(&json!({"httpMethod": "GET", "path": "/"})),
            EventKind::Http
        );
        assert_eq!(
            classify(
                &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            ),
            EventKind::Schedule
        );
        assert_eq!(classify(&json!({"Records": []})), EventKind::Unknown);
    }

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
}

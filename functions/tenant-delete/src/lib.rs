//! The tenant-delete function: tenant deletion that can be proven, shopper erasure and export, and
//! Shopify's privacy webhooks. One binary serves API Gateway and the EventBridge schedule.
//!
//! Routes:
//! - `DELETE /v1/tenants/{tenant_id}` (operator; IAM-authorized on API Gateway): marks the tenant
//!   deleting and destroys its secrets at once, works for up to the request budget, answers 202 with the
//!   progress document (200 with the tombstone when already completed; 404 for an unknown tenant).
//! - `GET /v1/tenants/{tenant_id}/deletion` (operator): progress, then the tombstone.
//! - `POST /v1/webhooks/shopify`: `customers/data_request`, `customers/redact`, `shop/redact` and
//!   `app/uninstalled`, verified by HMAC over the raw body, each body of its topic's shape, an uninstall
//!   confirmed by Shopify (the token refused), and processed once per `X-Shopify-Webhook-Id`.
//! - `DELETE /v1/sites/{site_id}/shoppers/{shopper_id}` (tenant API key): erases the shopper.
//! - `GET /v1/sites/{site_id}/shoppers/{shopper_id}/export` (tenant API key): everything held about
//!   the shopper. `shopper_id` is a guest id, or a customer id with `?id_type=customer`.
//!
//! The schedule (every minute) continues every unfinished deletion until the invocation's deadline.
//! The algorithm and its guarantees are in [`affinity::deletion`].

mod operator;
mod schedule;
mod shoppers;
mod webhooks;

use std::convert::Infallible;

use affinity::clock::SharedClock;
use affinity::config::{self, ConfigError};
use affinity::http::{self, ApiError};
use affinity::oauth::client::PlatformClient;
use affinity::oauth::{AccessTokenOpener, Secret};
use affinity::pii::PepperSource;
use affinity::store::deletion::{
    DeletionJobs, DeletionSettings, RunOutcome, ShopperRecords, TenantItems,
};
use affinity::store::tenants::WebhookReceipts;
use affinity::store::StoreError;
use lambda_http::http::Method;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use lambda_runtime::{LambdaEvent, Service};
use serde_json::Value;

use crate::shoppers::ShopperRight;

pub use schedule::{invocation_deadline, tick, TickReport, JOBS_AT_ONCE, SCHEDULE_BUDGET_MS};
pub use webhooks::{ShopifyTopic, MAX_WEBHOOK_BYTES};

/// The storage this function uses: deletion jobs, tenant items, shopper records and webhook receipts
/// (its IAM role grants exactly what these call).
pub trait Store: DeletionJobs + TenantItems + ShopperRecords + WebhookReceipts {}

impl<S: DeletionJobs + TenantItems + ShopperRecords + WebhookReceipts> Store for S {}

/// What the handlers need, built once per cold start.
pub struct Deps<S, K> {
    /// Storage.
    pub store: S,
    /// Tenants' peppers: Shopify's `customers/redact` and `customers/data_request` name the customer's
    /// email and phone, whose keyed hashes find profiles that no customer id reaches.
    pub peppers: K,
    /// Timing of deletion runs.
    pub settings: DeletionSettings,
    /// How long an HTTP `DELETE` works on the deletion before answering 202, in ms (the schedule
    /// continues). API Gateway waits at most 30 s.
    pub request_budget_ms: i64,
    /// The Shopify app's client secret: verifies webhooks.
    pub shopify_secret: Secret,
    /// Calls to Shopify's Admin API (the proof of an `app/uninstalled`).
    pub platform: PlatformClient,
    /// `SHOPIFY_BASE_URL`: where a shop's Admin API is; `{shop}` is replaced by the shop domain
    /// (default `https://{shop}`; a fake on loopback in tests and the local stack).
    pub shopify_base_url: String,
    /// The clock.
    pub clock: SharedClock,
}

impl<S: Store, K> Deps<S, K> {
    /// One run of `tenant_id`'s deletion with these settings and clock, until `deadline_ms` (epoch ms):
    /// [`affinity::deletion::run`].
    ///
    /// # Errors
    /// As [`affinity::deletion::run`].
    pub(crate) async fn run_deletion(
        &self,
        tenant_id: &str,
        deadline_ms: i64,
    ) -> Result<RunOutcome, StoreError> {
        let clock = self.clock.as_ref();
        affinity::deletion::run(&self.store, tenant_id, &self.settings, clock, deadline_ms).await
    }
}

impl<S: Store, K: PepperSource> Deps<S, K> {
    /// Starts (or finds) `tenant_id`'s deletion ([`affinity::deletion::begin`]) and, for a tenant that
    /// exists, forgets its pepper in this warm function at once (issue 10 §3: a deleted tenant's
    /// pepper leaves memory when a function sees it `deleting`, not after the cache's 5 minutes).
    ///
    /// # Errors
    /// As [`affinity::deletion::begin`].
    pub(crate) async fn begin_deletion(
        &self,
        tenant_id: &str,
        trigger: affinity::deletion::Trigger,
        now_ms: i64,
    ) -> Result<affinity::deletion::Begin, StoreError> {
        let begin = affinity::deletion::begin(&self.store, tenant_id, trigger, now_ms).await?;
        if !matches!(begin, affinity::deletion::Begin::NotFound) {
            self.peppers.forget(tenant_id);
        }
        Ok(begin)
    }
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

/// Shopify's Admin API from the environment: `SHOPIFY_BASE_URL` (default `https://{shop}`; must be an
/// http(s) URL) and `PLATFORM_TIMEOUT_MS` (default 5000), the deadline of each call (the names the
/// consent function reads).
///
/// # Errors
/// [`ConfigError::Invalid`] for a URL that is not http(s) or a timeout that is not a positive number.
pub fn platform_from_env() -> Result<(String, std::time::Duration), ConfigError> {
    let base = std::env::var("SHOPIFY_BASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| affinity::oauth::shopify::DEFAULT_BASE_URL.to_string());
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "SHOPIFY_BASE_URL",
            reason: "must be an http(s) URL",
        });
    }
    let timeout_ms = config::positive_or("PLATFORM_TIMEOUT_MS", 5000.0)?;
    Ok((
        base.trim_end_matches('/').to_string(),
        std::time::Duration::from_secs_f64(timeout_ms / 1000.0),
    ))
}

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
/// event continues the unfinished deletions until the invocation's deadline (see
/// [`invocation_deadline`]) and returns a [`TickReport`].
///
/// # Errors
/// An unrecognised event, an HTTP event that does not parse, or storage failing on the schedule (the
/// next tick retries).
pub async fn invoke<S: Store, K: PepperSource + AccessTokenOpener>(
    deps: &Deps<S, K>,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deadline_ms = invocation_deadline(event.context.deadline, deps.clock.now_ms());
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

/// Handles one HTTP request; every outcome is a response. `deadline_ms` is the invocation's deadline
/// (epoch ms).
pub async fn handle<S: Store, K: PepperSource + AccessTokenOpener>(
    deps: &Deps<S, K>,
    req: Request,
    deadline_ms: i64,
) -> Response<Body> {
    match route(deps, &req, deadline_ms).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route<S: Store, K: PepperSource + AccessTokenOpener>(
    deps: &Deps<S, K>,
    req: &Request,
    deadline_ms: i64,
) -> Result<Response<Body>, ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method();
    match segs.as_slice() {
        ["tenants", tenant_id] => {
            allow(method, &Method::DELETE)?;
            operator::require_operator(req)?;
            operator::delete_tenant(deps, tenant_id, deadline_ms).await
        }
        ["tenants", tenant_id, "deletion"] => {
            allow(method, &Method::GET)?;
            operator::require_operator(req)?;
            operator::deletion_status(deps, tenant_id).await
        }
        ["webhooks", "shopify"] => {
            allow(method, &Method::POST)?;
            webhooks::shopify_webhook(deps, req).await
        }
        ["sites", site_id, "shoppers", shopper_id] => {
            allow(method, &Method::DELETE)?;
            shoppers::answer(deps, req, (site_id, shopper_id), ShopperRight::Erasure).await
        }
        ["sites", site_id, "shoppers", shopper_id, "export"] => {
            allow(method, &Method::GET)?;
            shoppers::answer(deps, req, (site_id, shopper_id), ShopperRight::Export).await
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

#[cfg(test)]
mod tests;

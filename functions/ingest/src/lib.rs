//! The ingest function: `POST /v1/sites/{site_id}/events` (storefronts, live) and
//! `POST /v1/sites/{site_id}/events/import` (server to server, history; tenant API key).
//!
//! Each event stands or falls alone. Valid, new events are stored (BatchWriteItem, 25 a request) and then
//! folded into their shopper's profile with one conditional write per shopper per request. A retried batch
//! is recognised by its event ids and changes nothing. When storage fails for some events, the answer is
//! 503 and names them (`not_stored`), never 200.
//!
//! Who a shopper is, is proven or not used: on the live route a `customer_id`, `email` or `phone` links
//! the guest to a customer's profile only with a valid identity token for that customer in the event's
//! `identity_token` ([`affinity::identity`]). Without one the event is kept under the guest alone, an
//! email or phone stays a claim ([`affinity::store::ProfileRecord::Claim`]), and the answer counts it
//! (`identity_unverified`). The import route (API key, server to server) is trusted.

use affinity::admit::{admit_site_evicting, admit_tenant_evicting, Access};
use affinity::event::{self, IngestMode, Rejection, MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST};
use affinity::http::{self, ApiError};
use affinity::identity::IdentitySecretSource;
use affinity::ids::SiteId;
use affinity::pii::{self, PepperSource};
use affinity::profile::Decay;
use affinity::store::{EventSink, ProfileStore, TenantLookup};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;

/// Attempts at a shopper's profile write when a concurrent request changed it first.
pub const PROFILE_ATTEMPTS: usize = 4;

mod profiles;
mod proof;
use profiles::apply;
use proof::Proof;

/// What the handler needs, built once per cold start.
pub struct Deps<S, K> {
    /// Storage.
    pub store: S,
    /// Tenants' keys: KMS-decrypted peppers and identity secrets, cached per warm Lambda
    /// ([`affinity::identity::TenantKeys`]).
    pub peppers: K,
    /// Affinity decay and weights.
    pub decay: Decay,
    /// Raw-event retention, in seconds.
    pub event_ttl_s: i64,
    /// The clock ([`affinity::clock::system`] in Lambda; a manual clock in tests).
    pub clock: affinity::clock::SharedClock,
}

/// The 200 answer (and the counts inside a 503).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct IngestSummary {
    /// Events stored and applied to their shopper's profile.
    pub accepted: usize,
    /// Events already received before (same event id), ignored.
    pub duplicates: usize,
    /// Events refused, with the field and the reason.
    pub rejected: Vec<Rejection>,
    /// Events whose personal fields (email, phone) were dropped on arrival: no messaging consent, or the
    /// shopper's browser sent `Sec-GPC: 1`.
    pub pii_dropped: usize,
    /// Personal fields that could not be read (a malformed email, a national phone number of an
    /// unknown region), by event index, field and reason: dropped, the rest of the event kept.
    pub pii_unreadable: Vec<Rejection>,
    /// Live events whose `customer_id`, `email` or `phone` was not proven by a valid identity token
    /// for that customer (none, expired, forged, for another site or customer): each was kept under its
    /// guest alone, the claim not used to link it to anyone.
    pub identity_unverified: usize,
}

/// The 503 answer when some events could not be stored: the error object, the counts of what was
/// done, and the request indices of the events to send again.
#[derive(Debug, Serialize)]
pub struct PartialFailure<'a> {
    /// `unavailable`, 503.
    pub error: &'a ApiError,
    /// What was accepted, de-duplicated and rejected.
    #[serde(flatten)]
    pub summary: &'a IngestSummary,
    /// Indices (in the request's `events`) of the events not stored.
    pub not_stored: &'a [usize],
}

/// Handles one request; every outcome is a response.
pub async fn handle<S, K>(deps: &Deps<S, K>, req: Request) -> Response<Body>
where
    S: TenantLookup + ProfileStore + EventSink,
    K: PepperSource + IdentitySecretSource,
{
    let resp = match ingest(deps, &req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    // The live route serves storefront browsers on merchants' domains; import is server to server.
    match route(&req) {
        Ok((_, IngestMode::Live)) => http::allow_any_origin(resp),
        _ => resp,
    }
}

/// Parses the route: the site id and which route it is.
fn route(req: &Request) -> Result<(String, IngestMode), ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let (site, mode) = match segs.as_slice() {
        [s, site, e] if s == "sites" && e == "events" => (site.clone(), IngestMode::Live),
        [s, site, e, i] if s == "sites" && e == "events" && i == "import" => {
            (site.clone(), IngestMode::Import)
        }
        _ => return Err(ApiError::not_found(None, "no such route")),
    };
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    Ok((site, mode))
}

/// Reads the body into the events array.
fn parse_body(req: &Request) -> Result<Vec<Value>, ApiError> {
    let parsed: Value = http::read_json(req, MAX_BODY_BYTES)?;
    let Value::Object(mut body) = parsed else {
        return Err(events_shape());
    };
    let Some(Value::Array(events)) = body.remove("events") else {
        return Err(events_shape());
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::too_large(
            "events",
            format!(
                "{} events sent; at most {MAX_EVENTS_PER_REQUEST} per request",
                events.len()
            ),
        ));
    }
    Ok(events)
}

fn events_shape() -> ApiError {
    ApiError::bad_request("events", "the body must be {\"events\": [...]}")
}

/// What a route requires: the API key for imports, nothing more than the site for the live route.
fn access(mode: IngestMode, req: &Request) -> Access<'_> {
    match mode {
        IngestMode::Live => Access::Storefront,
        IngestMode::Import => Access::from_bearer(req),
    }
}

async fn ingest<S, K>(deps: &Deps<S, K>, req: &Request) -> Result<Response<Body>, ApiError>
where
    S: TenantLookup + ProfileStore + EventSink,
    K: PepperSource + IdentitySecretSource,
{
    let (site_id, mode) = route(req)?;
    let raw = parse_body(req)?;
    let site_id = SiteId::from_route(&site_id)?;
    let now = deps.clock.now_ms();
    let mut summary = IngestSummary::default();
    let mut valid = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        match event::validate(v, i, now, mode) {
            Ok(e) => valid.push((i, e)),
            Err(r) => summary.rejected.push(r),
        }
    }
    // Storefront requests read the tenant and their shoppers' profiles in one round trip (the tenant
    // is checked before anything is written). Imports check the API key before reading any profile.
    let (tenant, preloaded) = match mode {
        IngestMode::Live if !valid.is_empty() => {
            let keys = affinity::linking::base_keys(&valid);
            let asked: Vec<String> = keys.iter().cloned().collect();
            let (tenant, found) = deps.store.tenant_and_profiles(&site_id, &asked).await?;
            (
                admit_tenant_evicting(tenant, access(mode, req), &deps.peppers)?,
                Some((keys, found)),
            )
        }
        _ => (
            admit_site_evicting(&deps.store, &site_id, access(mode, req), &deps.peppers).await?,
            None,
        ),
    };
    // Personal data is processed only under the tenant's messaging consent, and never for a browser
    // that sends Global Privacy Control (https://globalprivacycontrol.github.io/gpc-spec/).
    let gpc = req
        .headers()
        .get("sec-gpc")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
    let consent = tenant.messaging_consent && !gpc;
    let mut pepper = None;
    let mut secret = None;
    let mut kept = Vec::with_capacity(valid.len());
    for (i, mut e) in valid {
        // What the event's token proves (live route); the import route is trusted.
        let proof = Proof::of(
            deps,
            &tenant,
            &site_id,
            mode,
            e.identity_token.take(),
            now,
            &mut secret,
        )
        .await?;
        let mut unverified = false;
        match (&proof, e.customer_id.take()) {
            (Proof::Trusted, c) => e.customer_id = c,
            (Proof::Token(claims), Some(c)) if c == claims.customer_id => e.customer_id = Some(c),
            (Proof::Token(claims), None) => e.customer_id = Some(claims.customer_id.clone()),
            (_, Some(_)) => unverified = true,
            (Proof::None, None) => {}
        }
        if !e.pii.is_empty() {
            if consent {
                if pepper.is_none() {
                    pepper = Some(deps.peppers.pepper(&tenant).await?);
                }
                let Some(key) = pepper.as_deref() else {
                    continue;
                };
                let region = e.phone_region(tenant.default_region.as_deref());
                let found = pii::identities(key, &e.pii, region);
                let (proven, claimed) = proof.split(key, found.keys, e.customer_id.is_some());
                unverified |= !claimed.is_empty();
                e.identities = proven;
                e.claims = claimed;
                summary
                    .pii_unreadable
                    .extend(found.unreadable.into_iter().map(|(field, why)| Rejection {
                        index: i,
                        field: field.into(),
                        reason: why.to_string(),
                    }));
            } else {
                summary.pii_dropped += 1;
            }
            // The plaintext goes no further than here.
            e.pii = Default::default();
        }
        summary.identity_unverified += usize::from(unverified);
        kept.push((i, e));
    }
    summary.rejected.sort_by_key(|r| r.index);
    let not_stored = apply(deps, &site_id, kept, now, &mut summary, preloaded).await;
    tracing::info!(
        site_id = %site_id,
        mode = ?mode,
        received = raw.len(),
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        rejected = summary.rejected.len(),
        not_stored = not_stored.len(),
        "ingest"
    );
    if not_stored.is_empty() {
        return Ok(http::json_response(StatusCode::OK, &summary));
    }
    let error = ApiError::unavailable(
        "some events could not be stored; retry them (retries are de-duplicated)",
    );
    let body = PartialFailure {
        error: &error,
        summary: &summary,
        not_stored: &not_stored,
    };
    Ok(http::json_response(error.status, &body))
}

#[cfg(test)]
mod tests;

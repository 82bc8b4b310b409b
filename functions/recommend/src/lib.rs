//! The recommendation function: `GET /v1/sites/{site_id}/shoppers/{shopper_id}/recommendations?limit=10`
//! for storefronts, and the messaging lookup `POST /v1/sites/{site_id}/recommendations/lookup` (see
//! [`lookup`]).
//!
//! One round trip reads the tenant, the shopper's profile and the tenant's popularity together; a second
//! follows a guest id linked to a customer profile. Shoppers with no history get trending products.

use affinity::admit::{admit_tenant, Access};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::identity::{self, IdentitySecretSource};
use affinity::pii::PiiKeySource;
use affinity::profile::Decay;
use affinity::rank;
use affinity::store::{customer_key, guest_key, ProfileRecord, RecommendSource, TenantLookup};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

/// Items answered when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 10;
/// Most items per answer.
pub const MAX_LIMIT: usize = 50;

pub mod cache;
pub mod lookup;

/// What the handler needs, built once per cold start.
pub struct Deps<S, K> {
    /// Storage (read only).
    pub store: S,
    /// Tenants' keys: peppers (messaging lookups by email or phone) and identity secrets (identity
    /// tokens), KMS-decrypted and cached ([`affinity::identity::TenantKeys`]).
    pub pii_keys: K,
    /// Tenants' popularity, reused for a minute.
    pub popularity: cache::PopularityCache,
    /// Affinity decay.
    pub decay: Decay,
    /// The clock ([`affinity::clock::system`] in Lambda).
    pub clock: affinity::clock::SharedClock,
}

/// The storefront answer: the recommendations and a fresh `recommendation_id` (a UUID v4), which the
/// storefront sends back on the clicks and impressions of these items so click-through can be
/// attributed.
#[derive(Debug, serde::Serialize)]
pub struct Answer {
    /// This answer's id.
    pub recommendation_id: String,
    /// What is recommended, and why.
    #[serde(flatten)]
    pub recommendations: rank::Recommendations,
}

/// Handles one request; every outcome is a response.
pub async fn handle<S, K>(deps: &Deps<S, K>, req: Request) -> Response<Body>
where
    S: RecommendSource + TenantLookup,
    K: PiiKeySource + IdentitySecretSource,
{
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let answer = match segs.as_slice() {
        [s, site, r, l] if s == "sites" && r == "recommendations" && l == "lookup" => {
            if req.method() == Method::POST {
                lookup::lookup(deps, site, &req).await
            } else {
                Err(ApiError::method_not_allowed("POST"))
            }
        }
        // Storefront route: readable from any merchant's domain.
        _ => {
            return http::allow_any_origin(
                recommend(deps, &req)
                    .await
                    .unwrap_or_else(ApiError::into_response),
            )
        }
    };
    match answer {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// Parses `limit`: 1 to 50, default 10.
///
/// # Errors
/// 400 naming `limit`.
pub fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// Which profile a storefront request may read: the guest's own, or the customer profile its guest id
/// is linked to only when the request proves that customer with a valid identity token (query
/// parameter `identity_token`: the widget's GET carries it without a CORS preflight, which a custom
/// header would force on every merchant's domain). Anything else (no token, expired, forged, another
/// site's, another customer's) answers from the guest's own history, which an alias does not have:
/// nothing.
async fn which_profile<S: RecommendSource, K: IdentitySecretSource>(
    deps: &Deps<S, K>,
    tenant: &affinity::tenant::Tenant,
    record: Option<ProfileRecord>,
    token: Option<&str>,
) -> Result<Option<affinity::profile::Profile>, ApiError> {
    match record {
        Some(ProfileRecord::Profile { profile, .. }) => Ok(Some(*profile)),
        Some(ProfileRecord::Alias { linked_to, .. }) => {
            let Some(token) = token else {
                return Ok(None);
            };
            let secret = deps.pii_keys.identity_secret(tenant).await?;
            let now_s = deps.clock.now_ms().div_euclid(1000);
            let proven = match identity::verify(&secret, &tenant.site_id, token, now_s) {
                Ok(c) => customer_key(&c.customer_id) == linked_to,
                Err(why) => {
                    tracing::info!(site_id = %tenant.site_id, reason = %why, "identity token refused");
                    false
                }
            };
            if !proven {
                return Ok(None);
            }
            match deps.store.profile(&tenant.site_id, &linked_to).await? {
                Some(ProfileRecord::Profile { profile, .. }) => Ok(Some(*profile)),
                _ => Ok(None),
            }
        }
        Some(ProfileRecord::Claim { .. }) | None => Ok(None),
    }
}

async fn recommend<S: RecommendSource, K: IdentitySecretSource>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let [s, site_id, sh, shopper_id, r] = segs.as_slice() else {
        return Err(ApiError::not_found(None, "no such route"));
    };
    if s != "sites" || sh != "shoppers" || r != "recommendations" {
        return Err(ApiError::not_found(None, "no such route"));
    }
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    let limit = parse_limit(http::query_param(req, "limit").as_deref())?;
    if !is_valid_id(site_id) {
        return Err(ApiError::unknown_site());
    }
    if !is_valid_id(shopper_id) || shopper_id.contains(':') {
        return Err(ApiError::bad_request(
            "shopper_id",
            "must be 1-128 characters of letters, digits and _=/+.-",
        ));
    }
    let cached = deps.popularity.get(site_id);
    let read = deps
        .store
        .recommend_read(site_id, &guest_key(shopper_id), cached.is_none())
        .await?;
    let tenant = admit_tenant(read.tenant, Access::Storefront)?;
    let popularity = cached.or_else(|| {
        let fresh = std::sync::Arc::new(read.popularity?);
        deps.popularity.put(site_id, fresh.clone());
        Some(fresh)
    });
    let token = http::query_param(req, "identity_token");
    let profile = which_profile(deps, &tenant, read.profile, token.as_deref()).await?;
    let now = deps.clock.now_ms();
    let answer = rank::recommend(
        shopper_id,
        profile.as_ref(),
        popularity.as_deref(),
        limit,
        now,
        &deps.decay,
    );
    tracing::info!(site_id = %site_id, items = answer.items.len(), known = profile.is_some(), "recommend");
    let answer = Answer {
        recommendation_id: uuid::Uuid::new_v4().to_string(),
        recommendations: answer,
    };
    Ok(http::json_response(StatusCode::OK, &answer))
}

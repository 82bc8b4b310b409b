//! The recommendation function: `GET /v1/sites/{site_id}/shoppers/{shopper_id}/recommendations?type=...`
//! for storefronts (the list types are in [`lists`]), and the messaging lookup
//! `POST /v1/sites/{site_id}/recommendations/lookup` (see [`lookup`]).
//!
//! One round trip reads the tenant, the shopper's profile, the tenant's popularity and the anchor
//! products' neighbour lists together; a second (only when needed) follows a guest id linked to a
//! customer profile, or reads the neighbour lists of the shopper's session. Shoppers with no history
//! get trending products.

use affinity::admit::{admit_tenant_evicting, Access};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::identity::{self, IdentitySecretSource};
use affinity::pii::PepperSource;
use affinity::profile::{Decay, Profile};
use affinity::store::{
    customer_key, guest_key, ProfileRecord, RecommendQuery, RecommendSource, TenantLookup,
};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

/// Items answered when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 10;
/// Most items per answer.
pub const MAX_LIMIT: usize = 50;

pub mod cache;
pub mod lists;
pub mod lookup;

/// What the handler needs, built once per cold start.
pub struct Deps<S, K> {
    /// Storage (read only).
    pub store: S,
    /// Tenants' keys: peppers (messaging lookups by email or phone) and identity secrets (identity
    /// tokens), KMS-decrypted and cached ([`affinity::identity::TenantKeys`]).
    pub peppers: K,
    /// Tenants' popularity, reused for a minute.
    pub popularity: cache::PopularityCache,
    /// Affinity decay.
    pub decay: Decay,
    /// The clock ([`affinity::clock::system`] in Lambda).
    pub clock: affinity::clock::SharedClock,
}

/// The storefront answer: the items and why, and a fresh `recommendation_id` (a UUID v4), which the
/// storefront sends back on the clicks and impressions of these items so click-through can be
/// attributed. Nothing else about the shopper (no preference scores, nothing derived from purchases
/// beyond the items): those are for the API-key lookup route.
#[derive(Debug, serde::Serialize)]
pub struct Answer {
    /// This answer's id.
    pub recommendation_id: String,
    /// The shopper asked about (as given).
    pub shopper_id: String,
    /// The list type answered.
    #[serde(rename = "type")]
    pub kind: lists::ListType,
    /// At most `limit` items, best first.
    pub items: Vec<lists::Item>,
}

/// Handles one request; every outcome is a response.
pub async fn handle<S, K>(deps: &Deps<S, K>, req: Request) -> Response<Body>
where
    S: RecommendSource + TenantLookup,
    K: PepperSource + IdentitySecretSource,
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

async fn recommend<S: RecommendSource, K: PepperSource + IdentitySecretSource>(
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
    if http::query_param(req, "identity_token").is_some_and(|t| t.len() > identity::MAX_TOKEN_BYTES)
    {
        return Err(ApiError::bad_request(
            "identity_token",
            format!("is longer than {} bytes", identity::MAX_TOKEN_BYTES),
        ));
    }
    if !is_valid_id(site_id) {
        return Err(ApiError::unknown_site());
    }
    if !is_valid_id(shopper_id) || shopper_id.contains(':') {
        return Err(ApiError::bad_request(
            "shopper_id",
            "must be 1-128 characters of letters, digits and _=/+.-",
        ));
    }
    let list = lists::ListRequest::parse(
        http::query_param(req, "type").as_deref(),
        http::query_param(req, "product_id").as_deref(),
        http::query_param(req, "product_ids").as_deref(),
        http::query_param(req, "category").as_deref(),
        limit,
    )?;
    let cached = deps.popularity.get(site_id);
    let read = deps
        .store
        .recommend_read(&RecommendQuery {
            site_id,
            shopper_key: &guest_key(shopper_id),
            with_popularity: cached.is_none(),
            lists: &list.first_lists(),
        })
        .await?;
    let tenant = admit_tenant_evicting(read.tenant, Access::Storefront, &deps.peppers)?;
    let popularity = cached.or_else(|| {
        let fresh = std::sync::Arc::new(read.popularity?);
        deps.popularity.put(site_id, fresh.clone());
        Some(fresh)
    });
    let mut lists_read = read.lists;
    let token = http::query_param(req, "identity_token");
    let profile = match read_profile(deps, &tenant, read.profile, token.as_deref()).await? {
        Read::Own(profile) => {
            // The second round trip, only when the list needs the session's (or cart's) lists.
            let more = list.second_lists(profile.as_ref());
            if !more.is_empty() {
                let (_, found) = deps.store.profile_and_lists(site_id, None, &more).await?;
                lists_read.extend(found);
            }
            profile
        }
        // The linked profile took the second round trip: its session's lists are not read.
        Read::Linked(profile) => profile,
    };
    let now = deps.clock.now_ms();
    let items = lists::items(
        &list,
        lists::Inputs {
            profile: profile.as_ref(),
            popularity: popularity.as_deref(),
            lists: &lists_read,
            now_ms: now,
            decay: &deps.decay,
        },
    );
    tracing::info!(site_id = %site_id, items = items.len(), known = profile.is_some(), kind = ?list.kind, "recommend");
    let answer = Answer {
        recommendation_id: uuid::Uuid::new_v4().to_string(),
        shopper_id: shopper_id.to_string(),
        kind: list.kind,
        items,
    };
    Ok(http::json_response(StatusCode::OK, &answer))
}

/// Which profile a storefront answer reads, and whether reading it took a round trip.
enum Read {
    /// The guest's own profile item (read in the first round trip), if any.
    Own(Option<Profile>),
    /// The profile the guest is linked to (read in a second round trip).
    Linked(Option<Profile>),
}

/// Which profile answers for the shopper whose profile item is `record`: their own, or the customer
/// profile their guest id is linked to, only when the request proves that customer with a valid
/// identity token (query parameter `identity_token`: the widget's GET carries it without the CORS
/// preflight that a custom header would force on every merchant's domain). Anything else (no token,
/// expired, forged, another site's or another customer's) answers from the guest's own history, which
/// a linked guest id does not have: nothing.
async fn read_profile<S: RecommendSource, K: IdentitySecretSource>(
    deps: &Deps<S, K>,
    tenant: &affinity::tenant::Tenant,
    record: Option<ProfileRecord>,
    token: Option<&str>,
) -> Result<Read, ApiError> {
    Ok(match record {
        Some(ProfileRecord::Profile { profile, .. }) => Read::Own(Some(*profile)),
        Some(ProfileRecord::Alias { linked_to, .. }) => {
            let Some(token) = token else {
                return Ok(Read::Own(None));
            };
            let secret = match deps.peppers.identity_secret(tenant).await {
                Ok(secret) => secret,
                // A store installed before identity tokens: no token proves anything there.
                Err(affinity::kms::KmsError::Missing(_)) => return Ok(Read::Own(None)),
                Err(e) => return Err(e.into()),
            };
            let now_s = deps.clock.now_ms().div_euclid(1000);
            match identity::verify(&secret, &tenant.site_id, token, now_s) {
                Ok(c) if customer_key(&c.customer_id) == linked_to => {}
                Ok(_) => return Ok(Read::Own(None)),
                Err(why) => {
                    tracing::info!(site_id = %tenant.site_id, reason = %why, "identity token refused");
                    return Ok(Read::Own(None));
                }
            }
            match deps.store.profile(&tenant.site_id, &linked_to).await? {
                Some(ProfileRecord::Profile { profile, .. }) => Read::Linked(Some(*profile)),
                _ => Read::Linked(None),
            }
        }
        Some(ProfileRecord::Claim { .. }) | None => Read::Own(None),
    })
}

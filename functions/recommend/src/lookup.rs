//! Messaging recommendations: `POST /v1/sites/{site_id}/recommendations/lookup`, server to server with the
//! tenant API key (`Authorization: Bearer ...`).
//!
//! Body: `{"shoppers": [{"email": ...} | {"email_sha256": ...} | {"phone": ...} | {"phone_sha256": ...} |
//! {"customer_id": ...} | {"shopper_id": ...}], "limit": 10}`, at most [`MAX_SHOPPERS`] identities.
//! Answer: `{"results": [...]}`, one per identity in order, each `{"index", "matched", "shopper_id",
//! "preferred_categories", "preferred_brands", "items"}` (the storefront shape; `shopper_id` is the
//! matched profile's key, never the email or phone), or `{"index", "error": {"field", "reason"}}`.
//! An unknown identity gets trending products. An email or phone answers with its proven profile when
//! one exists, else with the profile of the browser that claimed it most recently (docs/DESIGN.md,
//! "Links"). Emails and phones are hashed with the tenant's key and
//! go no further; they are looked up only under the tenant's messaging consent (else 403).
//!
//! Round trips: the tenant, then every identity and the popularity together, then the profiles that
//! aliases point to.

use std::collections::BTreeSet;

use affinity::admit::{admit_site_evicting, Access};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::pii::{self, PepperSource};
use affinity::profile::Profile;
use affinity::rank;
use affinity::store::{customer_key, guest_key, ProfileRecord, RecommendSource, TenantLookup};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::{parse_limit, Deps};

/// Most identities per lookup.
pub const MAX_SHOPPERS: usize = 100;
/// Largest lookup body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What one identity asks for.
enum Wanted {
    Key(String),
    Error(&'static str, String),
}

fn identity(v: &Value, key: Option<&pii::Pepper>, region: Option<&str>) -> Wanted {
    let Value::Object(o) = v else {
        return Wanted::Error("shopper", "must be an object with one of email, email_sha256, phone, phone_sha256, customer_id, shopper_id".into());
    };
    let text = |name: &str| o.get(name).and_then(Value::as_str);
    let hashed =
        |field: &'static str, r: Result<pii::IdentityKey, pii::PiiError>, prefix: &str| match r {
            Ok(k) => Wanted::Key(format!("{prefix}:{}", k.0)),
            Err(e) => Wanted::Error(field, e.to_string()),
        };
    match (
        key,
        text("email"),
        text("email_sha256"),
        text("phone"),
        text("phone_sha256"),
    ) {
        (Some(k), Some(e), ..) => return hashed("email", pii::email_key(k, e), "e"),
        (Some(k), None, Some(h), ..) => {
            return hashed("email_sha256", pii::email_sha256_key(k, h), "e")
        }
        (Some(k), None, None, Some(p), _) => {
            return hashed("phone", pii::phone_key(k, p, region), "p")
        }
        (Some(k), None, None, None, Some(h)) => {
            return hashed("phone_sha256", pii::phone_sha256_key(k, h), "p")
        }
        _ => {}
    }
    let id = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    };
    if let Some(c) = o.get("customer_id") {
        return match id(c) {
            Some(c) if is_valid_id(&c) => Wanted::Key(customer_key(&c)),
            _ => Wanted::Error(
                "customer_id",
                "must be 1-128 characters of letters, digits and _=/+.-:".into(),
            ),
        };
    }
    if let Some(g) = o.get("shopper_id") {
        return match id(g) {
            Some(g) if is_valid_id(&g) && !g.contains(':') => Wanted::Key(guest_key(&g)),
            _ => Wanted::Error(
                "shopper_id",
                "must be 1-128 characters of letters, digits and _=/+.-".into(),
            ),
        };
    }
    Wanted::Error(
        "shopper",
        "must hold one of email, email_sha256, phone, phone_sha256, customer_id, shopper_id".into(),
    )
}

/// Where an alias or a claim points.
fn link_of(r: &ProfileRecord) -> Option<String> {
    match r {
        ProfileRecord::Alias { linked_to, .. } | ProfileRecord::Claim { linked_to, .. } => {
            Some(linked_to.clone())
        }
        ProfileRecord::Profile { .. } => None,
    }
}

fn asks_for_pii(v: &Value) -> bool {
    ["email", "email_sha256", "phone", "phone_sha256"]
        .iter()
        .any(|f| v.get(f).is_some())
}

/// Handles a lookup.
///
/// # Errors
/// 400/413 for an unusable body, 401/403 for credentials (403 also without messaging consent when
/// emails or phones are asked), 404/410 for the site, 503 when storage or KMS fails.
pub async fn lookup<S, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError>
where
    S: RecommendSource + TenantLookup,
    K: PepperSource,
{
    let parsed: Value = http::read_json(req, MAX_BODY_BYTES)?;
    let Some(shoppers) = parsed.get("shoppers").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "shoppers",
            "the body must be {\"shoppers\": [...], \"limit\": 10}",
        ));
    };
    if shoppers.len() > MAX_SHOPPERS {
        return Err(ApiError::too_large(
            "shoppers",
            format!(
                "{} identities sent; at most {MAX_SHOPPERS} per request",
                shoppers.len()
            ),
        ));
    }
    let limit = match parsed.get("limit") {
        None | Some(Value::Null) => parse_limit(None)?,
        Some(Value::Number(n)) => parse_limit(Some(&n.to_string()))?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "limit",
                "must be an integer from 1 to 50",
            ))
        }
    };
    let tenant = admit_site_evicting(
        &deps.store,
        site_id,
        Access::from_bearer(req),
        &deps.peppers,
    )
    .await?;
    let pii_asked = shoppers.iter().any(asks_for_pii);
    if pii_asked && !tenant.messaging_consent {
        return Err(ApiError::forbidden(
            "this store has not granted consent to Personalized Messaging: emails and phones are not looked up",
        ));
    }
    let pepper = if pii_asked {
        Some(deps.peppers.pepper(&tenant).await?)
    } else {
        None
    };
    let wanted: Vec<Wanted> = shoppers
        .iter()
        .map(|v| identity(v, pepper.as_deref(), tenant.default_region.as_deref()))
        .collect();
    let keys: Vec<String> = wanted
        .iter()
        .filter_map(|w| match w {
            Wanted::Key(k) => Some(k.clone()),
            Wanted::Error(..) => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // 99 keys and the popularity fit one BatchGetItem; the 100th goes with the alias targets.
    let (first, rest) = keys.split_at(keys.len().min(99));
    let cached = deps.popularity.get(site_id);
    let (mut found, read) = deps
        .store
        .lookup_read(site_id, first, cached.is_none())
        .await?;
    let popularity = cached.or_else(|| {
        let fresh = std::sync::Arc::new(read?);
        deps.popularity.put(site_id, fresh.clone());
        Some(fresh)
    });
    let targets: Vec<String> = found
        .values()
        .filter_map(link_of)
        .chain(rest.iter().cloned())
        .filter(|k| !found.contains_key(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in targets.chunks(100) {
        found.extend(deps.store.lookup_read(site_id, chunk, false).await?.0);
    }
    // The 100th key may itself be an alias, and a claim's browser may have logged in since (its guest
    // id is an alias now): one more read for what those point to.
    let second: Vec<String> = found
        .values()
        .filter_map(link_of)
        .filter(|k| !found.contains_key(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in second.chunks(100) {
        found.extend(deps.store.lookup_read(site_id, chunk, false).await?.0);
    }
    let now = deps.clock.now_ms();
    // An email or phone key's own item holds one link: a proven alias (an identity token or the
    // import route), or else the claim of the browser that sent it most recently. A proven link
    // replaces any claim and no claim replaces it, so where both were ever seen the proven one
    // decides; among claims only, the most recent (the other claimants are items of their own,
    // `claim:{key}#{profile}`, for erasure, never read here).
    let resolve = |k: &str| -> Option<(String, &Profile)> {
        let mut key = k;
        for _ in 0..3 {
            match found.get(key)? {
                ProfileRecord::Profile { profile, .. } => return Some((key.to_string(), profile)),
                ProfileRecord::Alias { linked_to, .. } | ProfileRecord::Claim { linked_to, .. } => {
                    key = linked_to;
                }
            }
        }
        None
    };
    let mut matched = 0;
    let results: Vec<Value> = wanted
        .iter()
        .enumerate()
        .map(|(i, w)| match w {
            Wanted::Error(field, reason) => json!({"index": i, "error": {"field": field, "reason": reason}}),
            Wanted::Key(k) => {
                let hit = resolve(k);
                matched += usize::from(hit.is_some());
                let (id, profile) = match &hit {
                    Some((id, p)) => (Value::String(id.clone()), Some(*p)),
                    None => (Value::Null, None),
                };
                let r = rank::recommend("", profile, popularity.as_deref(), limit, now, &deps.decay);
                json!({"index": i, "matched": hit.is_some(), "shopper_id": id,
                    "preferred_categories": r.preferred_categories, "preferred_brands": r.preferred_brands, "items": r.items})
            }
        })
        .collect();
    tracing::info!(site_id = %site_id, identities = results.len(), matched, "lookup");
    Ok(http::json_response(
        StatusCode::OK,
        &json!({ "results": results }),
    ))
}

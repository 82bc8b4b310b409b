//! Shoppers' rights with the tenant API key: `DELETE /v1/sites/{site_id}/shoppers/{shopper_id}` and
//! `GET /v1/sites/{site_id}/shoppers/{shopper_id}/export`.

use affinity::admit::{admit_site, Access};
use affinity::deletion::shopper;
use affinity::deletion::ErasureError;
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::ids::ShopperKey;
use affinity::pii::PepperSource;
use affinity::store::deletion::ErasureReport;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::{Deps, Store};

/// The profile key of the shopper named in the route: a guest id, or a customer id with
/// `?id_type=customer`.
fn shopper_key(req: &Request, shopper_id: &str) -> Result<ShopperKey, ApiError> {
    if !is_valid_id(shopper_id) {
        return Err(ApiError::bad_request(
            "shopper_id",
            "must be 1-128 characters of A-Z a-z 0-9 _ = / + . - :",
        ));
    }
    match http::query_param(req, "id_type").as_deref() {
        None | Some("guest") => Ok(ShopperKey::Guest(shopper_id.to_string())),
        Some("customer") => Ok(ShopperKey::Customer(shopper_id.to_string())),
        Some(_) => Err(ApiError::bad_request(
            "id_type",
            "must be guest (the default) or customer",
        )),
    }
}

/// What a shopper's route asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShopperRight {
    /// `DELETE /v1/sites/{site_id}/shoppers/{shopper_id}`: erasure; answers the erasure report.
    Erasure,
    /// `GET /v1/sites/{site_id}/shoppers/{shopper_id}/export`: access; answers the export document.
    Export,
}

/// A shopper's route: the shopper key from the route, the site admitted with the tenant API key, then
/// the erasure or the export, logged without the shopper's ids.
pub(crate) async fn answer<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    req: &Request,
    (site_id, shopper_id): (&str, &str),
    right: ShopperRight,
) -> Result<Response<Body>, ApiError> {
    let key = shopper_key(req, shopper_id)?.to_key();
    let tenant = admit_site(&deps.store, site_id, Access::from_bearer(req)).await?;
    let site_id = tenant.site_id.as_str();
    match right {
        ShopperRight::Erasure => {
            let report = shopper::erase(&deps.store, site_id, &key)
                .await
                .map_err(ErasureError::from)?;
            let ErasureReport {
                profiles,
                events,
                guest_ids,
                ..
            } = report;
            tracing::info!(%site_id, profiles, events, guest_ids, "shopper erased (API)");
            Ok(http::json_response(StatusCode::OK, &report))
        }
        ShopperRight::Export => {
            let export = shopper::export(&deps.store, site_id, &key, deps.clock.now_ms())
                .await
                .map_err(ErasureError::from)?;
            tracing::info!(
                site_id = %site_id,
                profiles = export.profiles.len(),
                events = export.events.len(),
                "shopper export produced (API)"
            );
            Ok(http::json_response(StatusCode::OK, &export))
        }
    }
}

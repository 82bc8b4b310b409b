//! The site owner's routes: a new API key (with the current key, or with a re-install's single-use
//! grant), and messaging consent (with the API key).

use affinity::http::{self, ApiError};
use affinity::install::InstallStore;
use affinity::kms::SecretSealer;
use affinity::oauth;
use affinity::tenant::{KeyCheck, Tenant};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::pages;
use crate::request::is_form;
use crate::Deps;

/// The active tenant of `site`, for its owner's routes.
async fn active_tenant<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    site: &str,
) -> Result<Tenant, ApiError> {
    if !affinity::event::is_valid_id(site) {
        return Err(ApiError::unknown_site());
    }
    Ok(deps.install().active_tenant(site).await?)
}

/// Checks the request's `Authorization: Bearer` API key against `t`.
fn authorize(t: &Tenant, req: &Request) -> Result<(), ApiError> {
    match t.check_api_key(http::bearer_token(req)) {
        KeyCheck::Valid => Ok(()),
        KeyCheck::OtherTenant => Err(ApiError::forbidden("this API key belongs to another store")),
        KeyCheck::Invalid => Err(ApiError::unauthorized(
            "send the store's API key as Authorization: Bearer <key>",
        )),
    }
}

/// `POST /v1/sites/{site_id}/api-key`: a new API key; the old one stops working at once.
pub(crate) async fn rotate<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
    site: &str,
) -> Result<Response<Body>, ApiError> {
    let by_grant = http::bearer_token(req).is_none() && is_form(req);
    let t = active_tenant(deps, site).await?;
    let install = deps.install();
    if by_grant {
        let body = String::from_utf8_lossy(http::body_bytes(req)).into_owned();
        let form = oauth::parse_query(&body);
        let grant = oauth::single(&form, "grant")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| ApiError::bad_request("grant", "the form has no grant"))?;
        install.take_rotation_grant(&t, grant).await?;
    } else {
        authorize(&t, req)?;
    }
    let key = install.rotate_api_key(&t).await?;
    tracing::info!(site_id = %t.site_id, by_grant, "API key rotated");
    if by_grant {
        Ok(pages::new_key_page(&t.site_id, &key))
    } else {
        Ok(http::json_response(
            StatusCode::OK,
            &serde_json::json!({"site_id": t.site_id, "api_key": key}),
        ))
    }
}

/// `PUT /v1/sites/{site_id}/messaging-consent` with `{"granted": true|false}`.
pub(crate) async fn messaging_consent<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
    site: &str,
) -> Result<Response<Body>, ApiError> {
    let t = active_tenant(deps, site).await?;
    authorize(&t, req)?;
    http::require_json_content(req)?;
    let granted = serde_json::from_slice::<serde_json::Value>(http::body_bytes(req))
        .ok()
        .and_then(|v| v.get("granted").and_then(serde_json::Value::as_bool))
        .ok_or_else(|| {
            ApiError::bad_request(
                "granted",
                "send {\"granted\": true} or {\"granted\": false}",
            )
        })?;
    let at = deps.install().set_messaging_consent(&t, granted).await?;
    tracing::info!(site_id = %t.site_id, granted, "messaging consent changed");
    Ok(http::json_response(
        StatusCode::OK,
        &serde_json::json!({"site_id": t.site_id, "messaging_consent": granted, "messaging_consent_at": at}),
    ))
}

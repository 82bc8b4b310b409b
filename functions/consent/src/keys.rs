//! The site owner's routes: a new API key and identity secret (with the current key, or with a
//! re-install's single-use grant), and messaging consent (with the API key).

use affinity::admit::{admit_site, Access};
use affinity::http::{self, ApiError};
use affinity::install::InstallStore;
use affinity::kms::SecretSealer;
use affinity::oauth;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::pages;
use crate::request::is_form;
use crate::Deps;

/// `POST /v1/sites/{site_id}/api-key`: a new API key and a new identity secret (they are replaced
/// together: whoever may rotate the key may sign tokens); the old ones stop working at once.
pub(crate) async fn rotate<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
    site: &str,
) -> Result<Response<Body>, ApiError> {
    let by_grant = http::bearer_token(req).is_none() && is_form(req);
    let access = if by_grant {
        Access::Storefront
    } else {
        Access::from_bearer(req)
    };
    let t = admit_site(&deps.store, site, access).await?;
    let install = deps.install();
    if by_grant {
        let body = String::from_utf8_lossy(http::body_bytes(req)).into_owned();
        let form = oauth::parse_query(&body);
        let grant = oauth::single(&form, "grant")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| ApiError::bad_request("grant", "the form has no grant"))?;
        install.take_rotation_grant(&t, grant).await?;
    }
    let keys = install.rotate_api_key(&t).await?;
    tracing::info!(site_id = %t.site_id, by_grant, "API key and identity secret rotated");
    if by_grant {
        Ok(pages::new_key_page(
            &t.site_id,
            &keys.api_key,
            keys.identity_secret.expose(),
        ))
    } else {
        Ok(http::json_response(
            StatusCode::OK,
            &serde_json::json!({"site_id": t.site_id, "api_key": keys.api_key,
                "identity_secret": keys.identity_secret.expose()}),
        ))
    }
}

/// Largest messaging-consent body read, in bytes.
pub const MAX_CONSENT_BYTES: usize = 1024;

/// `PUT /v1/sites/{site_id}/messaging-consent` with `{"granted": true|false}`.
pub(crate) async fn messaging_consent<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
    site: &str,
) -> Result<Response<Body>, ApiError> {
    let t = admit_site(&deps.store, site, Access::from_bearer(req)).await?;
    let body: serde_json::Value = http::read_json(req, MAX_CONSENT_BYTES)?;
    let granted = body
        .get("granted")
        .and_then(serde_json::Value::as_bool)
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

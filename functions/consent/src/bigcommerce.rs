//! BigCommerce's routes: the auth callback, and the load and uninstall callbacks with their
//! `signed_payload_jwt` (<https://developer.bigcommerce.com/docs/integrations/apps/guide/callbacks>).
//!
//! A payload is verified ([`bigcommerce::verify_signed_payload_jwt`]) and its `jti` used once (a
//! conditional put: a replay gets 401 `replayed_payload`). An uninstall, which deletes every record of
//! the store, must also be fresh (400 `stale_request`) and the store owner's (403 `not_store_owner`),
//! and BigCommerce's API must refuse the store's access token (a 401 to `GET /stores/{hash}/v2/store`
//! with it; a token that still works is 409 `token_not_revoked`, no answer 502 `platform_error`).
//! Every refusal is logged and changes nothing.

use affinity::http::{self, ApiError};
use affinity::install::{InstallError, InstallStore};
use affinity::kms::SecretSealer;
use affinity::oauth;
use affinity::oauth::bigcommerce::{self, BigCommerceError, SignedPayload};
use affinity::oauth::AccessTokenOpener;
use affinity::store::deletion::Trigger;
use affinity::tenant::{Platform, TenantStatus};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::pages;
use crate::platform::{connect, settings_url};
use crate::request::{public_base, query_pairs};
use crate::Deps;

/// `GET /v1/oauth/bigcommerce/callback`: the code exchanged, the store connected.
pub(crate) async fn callback<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let params = query_pairs(req);
    let get = |name: &'static str| {
        oauth::single(&params, name)
            .filter(|v| !v.is_empty())
            .ok_or(BigCommerceError::Missing(name))
    };
    let (code, scope, context) = (get("code")?, get("scope")?, get("context")?);
    bigcommerce::store_hash_of(context).ok_or(BigCommerceError::BadStore)?;
    let redirect_uri = format!(
        "{}/v1/oauth/bigcommerce/callback",
        public_base(&deps.config, req)?
    );
    let token = exchange(deps, code, context, scope, &redirect_uri).await?;
    let scopes = token.scope.split_whitespace().map(str::to_string).collect();
    connect(
        deps,
        req,
        Platform::BigCommerce,
        context,
        scopes,
        &token.secret(),
    )
    .await
}

/// Exchanges `code` at BigCommerce's token endpoint; the answer must be for `context`.
async fn exchange<S, K>(
    deps: &Deps<S, K>,
    code: &str,
    context: &str,
    scope: &str,
    redirect_uri: &str,
) -> Result<bigcommerce::AccessToken, InstallError> {
    let failed = InstallError::PlatformFailed(Platform::BigCommerce);
    let app = &deps.config.bigcommerce;
    let body = bigcommerce::token_request_body(app, code, context, scope, redirect_uri);
    let url = bigcommerce::token_url(&deps.config.bigcommerce_login_url);
    let answer = deps
        .platform
        .exchange_token(Platform::BigCommerce, context, &url, &body)
        .await?;
    serde_json::from_slice::<bigcommerce::AccessToken>(&answer)
        .ok()
        .filter(|t| !t.access_token.is_empty() && t.context == context)
        .ok_or_else(|| {
            tracing::warn!(platform = "bigcommerce", store = %context, "token exchange answer unreadable or for another store");
            failed
        })
}

/// The verified `signed_payload_jwt` of a callback (its `jti` not used yet).
fn verified_payload<S, K>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<SignedPayload, BigCommerceError> {
    let params = query_pairs(req);
    let jwt = oauth::single(&params, "signed_payload_jwt")
        .ok_or(BigCommerceError::Missing("signed_payload_jwt"))?;
    bigcommerce::verify_signed_payload_jwt(&deps.config.bigcommerce, jwt, deps.now_s())
}

/// `GET /v1/oauth/bigcommerce/load`: the app's page in the control panel.
pub(crate) async fn load<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let payload = verified_payload(deps, req)?;
    deps.install()
        .use_payload_once(&payload.jti, "load")
        .await?;
    let store = payload.context();
    let t = deps
        .install()
        .tenant_of_shop(Platform::BigCommerce, &store)
        .await?;
    if t.status != TenantStatus::Active {
        return Err(InstallError::SiteDeleted.into());
    }
    Ok(pages::app_page(
        &t.shop_domain,
        &t.site_id,
        t.messaging_consent,
    ))
}

/// `GET /v1/oauth/bigcommerce/uninstall`: proven (fresh, single use, by the owner, the token refused
/// by BigCommerce), then consent withdrawn, token dropped, deletion started (the merchant discontinued
/// the service: every record of the store is deleted). A store already being deleted has no token to
/// prove with and nothing more to lose: the deletion goes on as it is.
pub(crate) async fn uninstall<S: InstallStore, K: SecretSealer + AccessTokenOpener>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let payload = verified_payload(deps, req)?;
    let store = payload.context();
    bigcommerce::check_uninstall(&payload, deps.now_s()).inspect_err(|e| {
        tracing::warn!(platform = "bigcommerce", store = %store, reason = %e, "uninstall refused");
    })?;
    let install = deps.install();
    install.use_payload_once(&payload.jti, "uninstall").await?;
    let t = install
        .tenant_of_shop(Platform::BigCommerce, &store)
        .await?;
    if t.status == TenantStatus::Active {
        let (url, header) = settings_url(deps, Platform::BigCommerce, &store);
        deps.platform
            .confirm_revoked(&deps.kms, &t, &url, header)
            .await?;
    }
    let at = install.uninstall(&t, Trigger::BigCommerceUninstall).await?;
    Ok(http::json_response(
        StatusCode::OK,
        &serde_json::json!({"uninstalled": true, "messaging_consent": false, "messaging_consent_at": at, "deletion": "started"}),
    ))
}

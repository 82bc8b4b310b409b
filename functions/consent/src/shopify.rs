//! Shopify's routes: the install redirect and the OAuth callback
//! (<https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant>).

use affinity::http::ApiError;
use affinity::install::{InstallError, InstallStore};
use affinity::kms::SecretSealer;
use affinity::oauth::shopify::ShopifyError;
use affinity::oauth::{self, shopify, Secret};
use affinity::tenant::Platform;
use lambda_http::{Body, Request, Response};

use crate::platform::connect;
use crate::request::{public_base, query_pairs, redirect};
use crate::{Deps, SHOPIFY_SCOPES};

/// The query pairs of a redirect from Shopify and the shop they name, verified (HMAC, timestamp).
fn verified<S, K>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<(Vec<(String, String)>, String), ShopifyError> {
    let params = query_pairs(req);
    let secret = deps.config.shopify.client_secret.expose();
    let shop = shopify::verify_redirect(secret, &params, deps.now_s())?;
    Ok((params, shop))
}

/// `GET /v1/oauth/shopify/install`: verified, then 302 to the shop's authorize page with a new state.
pub(crate) async fn install<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let (_, shop) = verified(deps, req)?;
    let state = deps.install().begin_shopify(&shop).await?;
    let redirect_uri = format!(
        "{}/v1/oauth/shopify/callback",
        public_base(&deps.config, req)?
    );
    let base = shopify::shop_base(&deps.config.shopify_base_url, &shop);
    tracing::info!(platform = "shopify", shop = %shop, "install: redirect to authorize");
    redirect(&shopify::authorize_url(
        &base,
        &deps.config.shopify.client_id,
        SHOPIFY_SCOPES,
        &redirect_uri,
        &state,
    ))
}

/// `GET /v1/oauth/shopify/callback`: verified, the state used up, the code exchanged, the store
/// connected.
pub(crate) async fn callback<S: InstallStore, K: SecretSealer>(
    deps: &Deps<S, K>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let (params, shop) = verified(deps, req)?;
    let required = |name: &'static str| {
        oauth::single(&params, name)
            .filter(|v| !v.is_empty())
            .ok_or(ShopifyError::Missing(name))
    };
    let (code, state) = (required("code")?, required("state")?);
    let install = deps.install();
    install.take_shopify_state(state, &shop).await?;
    let token = exchange(deps, &shop, code).await?;
    let granted = shopify::split_scopes(&token.scope);
    let missing = shopify::missing_scopes(SHOPIFY_SCOPES, &granted);
    if !missing.is_empty() {
        tracing::warn!(platform = "shopify", shop = %shop, missing = ?missing, "fewer scopes granted than requested");
        return Err(InstallError::ScopesMissing(missing).into());
    }
    let token = Secret::new(token.access_token);
    connect(deps, req, Platform::Shopify, &shop, granted, &token).await
}

/// Exchanges `code` at the shop's token endpoint.
async fn exchange<S, K>(
    deps: &Deps<S, K>,
    shop: &str,
    code: &str,
) -> Result<shopify::AccessToken, InstallError> {
    let failed = InstallError::PlatformFailed(Platform::Shopify);
    let base = shopify::shop_base(&deps.config.shopify_base_url, shop);
    let body = shopify::token_request_body(
        &deps.config.shopify.client_id,
        &deps.config.shopify.client_secret,
        code,
    );
    let url = shopify::access_token_url(&base);
    let answer = deps
        .platform
        .exchange_token(Platform::Shopify, shop, &url, &body)
        .await?;
    serde_json::from_slice::<shopify::AccessToken>(&answer)
        .ok()
        .filter(|t| !t.access_token.is_empty())
        .ok_or_else(|| {
            tracing::warn!(platform = "shopify", shop = %shop, "token exchange answer unreadable");
            failed
        })
}

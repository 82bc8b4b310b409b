//! The consent function: a merchant connects their store through the platform's OAuth, and Affinity
//! keeps the tenant record, the sealed access token, the tenant's pepper and API key.
//!
//! Routes (template.yaml, `ConsentFunction`):
//! - `GET /v1/oauth/shopify/install`: the app URL Shopify opens. Verified (HMAC, timestamp, shop), then
//!   302 to `https://{shop}/admin/oauth/authorize` with a single-use `state` bound to the shop.
//! - `GET /v1/oauth/shopify/callback`: verified the same way, the state used up, the code exchanged at
//!   `https://{shop}/admin/oauth/access_token`; the tenant is created or refreshed; success page.
//! - `GET /v1/oauth/bigcommerce/callback`: the code exchanged at BigCommerce's
//!   `https://login.bigcommerce.com/oauth2/token`; the tenant is created or refreshed; success page.
//! - `GET /v1/oauth/bigcommerce/load` and `/uninstall`: `signed_payload_jwt` verified; the app page, or
//!   messaging consent withdrawn and the token dropped.
//! - `POST /v1/sites/{site_id}/api-key`: a new API key, with the current key (`Authorization: Bearer`,
//!   JSON answer) or with the single-use grant of a success page (form `grant=...`, HTML answer).
//! - `PUT /v1/sites/{site_id}/messaging-consent`: `{"granted": true|false}` with the tenant API key.
//!
//! Every refusal is a 4xx naming the rule, as a page on the merchant's browser routes and as JSON
//! elsewhere; a platform that fails or does not answer in time gives a 502 page and nothing is written.
//! Nothing secret (client secrets, codes, tokens, keys' hashes) is logged.

pub mod pages;
pub mod platform;

use std::time::Duration;

use affinity::config::{self, ConfigError};
use affinity::http::{self, ApiError, ErrorCode};
use affinity::kms::{Kms, KmsError};
use affinity::oauth::{self, bigcommerce, shopify, AppCredentials, Secret};
use affinity::store::deletion::Trigger;
use affinity::store::tenants::{install_path, InstallPath, OAuthState, Refresh, StateCheck};
use affinity::store::{dynamo::DynamoStore, StoreError, TenantLookup};
use affinity::tenant::{
    new_api_key, new_random_token, new_site_id, tenant_id_for, KeyCheck, Tenant, TenantStatus,
};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use pages::Framing;
use platform::PlatformClient;

/// The Shopify access scopes Affinity asks for: the catalogue (categories, brands), orders (purchases)
/// and customers (customer ids; email and phone only under messaging consent).
pub const SHOPIFY_SCOPES: &[&str] = &["read_products", "read_orders", "read_customers"];
/// The default deadline of a call to a platform (`PLATFORM_TIMEOUT_MS`).
pub const DEFAULT_PLATFORM_TIMEOUT_MS: u64 = 5_000;
/// How long a state or a rotation grant stays valid.
pub const STATE_TTL_S: i64 = affinity::store::tenants::STATE_TTL_S;

/// The function's configuration, read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SHOPIFY_CLIENT_ID`, `SHOPIFY_CLIENT_SECRET`.
    pub shopify: AppCredentials,
    /// `BIGCOMMERCE_CLIENT_ID`, `BIGCOMMERCE_CLIENT_SECRET`.
    pub bigcommerce: AppCredentials,
    /// `SHOPIFY_BASE_URL`: where a shop's OAuth endpoints are; `{shop}` is replaced by the verified
    /// shop domain. Default `https://{shop}`; a fake platform on loopback in tests and the local demo.
    pub shopify_base_url: String,
    /// `BIGCOMMERCE_LOGIN_URL`: default `https://login.bigcommerce.com`.
    pub bigcommerce_login_url: String,
    /// `PUBLIC_BASE_URL`: the API's public origin, for the `redirect_uri`s registered with the
    /// platforms (`{PUBLIC_BASE_URL}/v1/oauth/{platform}/callback`). When unset, the request's
    /// `X-Forwarded-Proto` and `Host` (as API Gateway passes them) are used.
    pub public_base_url: Option<String>,
    /// `PLATFORM_TIMEOUT_MS` (default 5000): the deadline of each call to a platform.
    pub platform_timeout: Duration,
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn url_var(name: &'static str, default: &str) -> Result<String, ConfigError> {
    let v = optional(name).unwrap_or_else(|| default.to_string());
    if v.starts_with("https://") || v.starts_with("http://") {
        Ok(v.trim_end_matches('/').to_string())
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: "must be an http(s) URL",
        })
    }
}

impl Config {
    /// Reads the configuration. The client ids and secrets are required.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming the first missing variable; [`ConfigError::Invalid`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let timeout_ms =
            match optional("PLATFORM_TIMEOUT_MS") {
                None => DEFAULT_PLATFORM_TIMEOUT_MS,
                Some(v) => v.trim().parse::<u64>().ok().filter(|&ms| ms > 0).ok_or(
                    ConfigError::Invalid {
                        name: "PLATFORM_TIMEOUT_MS",
                        reason: "must be a positive number of milliseconds",
                    },
                )?,
            };
        Ok(Self {
            shopify: AppCredentials {
                client_id: config::required("SHOPIFY_CLIENT_ID")?,
                client_secret: Secret::new(config::required("SHOPIFY_CLIENT_SECRET")?),
            },
            bigcommerce: AppCredentials {
                client_id: config::required("BIGCOMMERCE_CLIENT_ID")?,
                client_secret: Secret::new(config::required("BIGCOMMERCE_CLIENT_SECRET")?),
            },
            shopify_base_url: url_var("SHOPIFY_BASE_URL", shopify::DEFAULT_BASE_URL)?,
            bigcommerce_login_url: url_var(
                "BIGCOMMERCE_LOGIN_URL",
                bigcommerce::DEFAULT_LOGIN_URL,
            )?,
            public_base_url: match optional("PUBLIC_BASE_URL") {
                None => None,
                Some(_) => Some(url_var("PUBLIC_BASE_URL", "")?),
            },
            platform_timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// What the handler needs, built once per cold start.
pub struct Deps {
    /// The tenants table.
    pub store: DynamoStore,
    /// The service key.
    pub kms: Kms,
    /// Calls to the platforms.
    pub platform: PlatformClient,
    /// Credentials and URLs.
    pub config: Config,
    /// The clock, epoch ms (a parameter so tests can move it).
    pub clock: fn() -> i64,
}

/// The routes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ShopifyInstall,
    ShopifyCallback,
    BigCommerceCallback,
    BigCommerceLoad,
    BigCommerceUninstall,
    ApiKey(String),
    MessagingConsent(String),
}

impl Route {
    fn framing(&self) -> Option<Framing> {
        match self {
            Route::ShopifyInstall | Route::ShopifyCallback => Some(Framing::None),
            Route::BigCommerceCallback | Route::BigCommerceLoad => Some(Framing::BigCommerce),
            _ => None,
        }
    }
}

fn route(req: &Request) -> Result<Route, ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (r, method) = match segs.as_slice() {
        ["oauth", "shopify", "install"] => (Route::ShopifyInstall, Method::GET),
        ["oauth", "shopify", "callback"] => (Route::ShopifyCallback, Method::GET),
        ["oauth", "bigcommerce", "callback"] => (Route::BigCommerceCallback, Method::GET),
        ["oauth", "bigcommerce", "load"] => (Route::BigCommerceLoad, Method::GET),
        ["oauth", "bigcommerce", "uninstall"] => (Route::BigCommerceUninstall, Method::GET),
        ["sites", site, "api-key"] => (Route::ApiKey(site.to_string()), Method::POST),
        ["sites", site, "messaging-consent"] => {
            (Route::MessagingConsent(site.to_string()), Method::PUT)
        }
        _ => return Err(ApiError::not_found(None, "no such route")),
    };
    if req.method() != method {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    Ok(r)
}

/// Handles one request; every outcome is a response (a page on the merchant's browser routes).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let r = match route(&req) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let framing = r.framing();
    let out = match &r {
        Route::ShopifyInstall => shopify_install(deps, &req).await,
        Route::ShopifyCallback => shopify_callback(deps, &req).await,
        Route::BigCommerceCallback => bigcommerce_callback(deps, &req).await,
        Route::BigCommerceLoad => bigcommerce_load(deps, &req).await,
        Route::BigCommerceUninstall => bigcommerce_uninstall(deps, &req).await,
        Route::ApiKey(site) => rotate_key(deps, &req, site).await,
        Route::MessagingConsent(site) => messaging_consent(deps, &req, site).await,
    };
    match out {
        Ok(resp) => resp,
        Err(e) => {
            // A form post answers as a page too (the merchant's browser sent it).
            let browser = framing.or_else(|| is_form(&req).then_some(Framing::None));
            match browser {
                Some(f) => pages::error_page(&e, f),
                None => e.into_response(),
            }
        }
    }
}

// ---- errors, in one place ------------------------------------------------------------------------

fn refusal(code: ErrorCode, field: Option<&str>, msg: String) -> ApiError {
    ApiError::new(code, field, msg)
}

fn shopify_refusal(e: shopify::ShopifyError) -> ApiError {
    use shopify::ShopifyError as E;
    let msg = e.to_string();
    match e {
        E::Missing(f) => refusal(ErrorCode::MissingParameter, Some(f), msg),
        E::BadSignature => refusal(ErrorCode::BadSignature, Some("hmac"), msg),
        E::BadTimestamp => refusal(ErrorCode::BadTimestamp, Some("timestamp"), msg),
        E::StaleTimestamp => refusal(ErrorCode::StaleRequest, Some("timestamp"), msg),
        E::BadShop => refusal(ErrorCode::BadShop, Some("shop"), msg),
    }
}

fn bigcommerce_refusal(e: bigcommerce::BigCommerceError) -> ApiError {
    use bigcommerce::BigCommerceError as E;
    let msg = e.to_string();
    match e {
        E::Missing(f) => refusal(ErrorCode::MissingParameter, Some(f), msg),
        E::BadStore => refusal(ErrorCode::BadStore, Some("context"), msg),
        E::BadSignature
        | E::WrongAudience
        | E::WrongIssuer
        | E::MissingClaim
        | E::Expired
        | E::NotYetValid => refusal(ErrorCode::BadSignedPayload, Some("signed_payload_jwt"), msg),
    }
}

fn state_refusal(c: StateCheck) -> ApiError {
    match c {
        StateCheck::Unknown => refusal(ErrorCode::UnknownState,
            Some("state"),
            "this sign-in link was already used or was never issued; start again from your store's admin"
                .into(),
        ),
        StateCheck::Expired => refusal(ErrorCode::ExpiredState,
            Some("state"),
            "this sign-in link is older than 10 minutes; start again from your store's admin".into(),
        ),
    }
}

fn foreign_state() -> ApiError {
    refusal(
        ErrorCode::ForeignState,
        Some("state"),
        "this sign-in link was issued for another store; start again from your store's admin"
            .into(),
    )
}

fn platform_error(platform: &str) -> ApiError {
    refusal(
        ErrorCode::PlatformError,
        None,
        format!("{platform} did not complete the connection (it failed or did not answer in time)"),
    )
}

fn storage(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "storage failed");
    ApiError::unavailable("storage is unavailable; nothing was changed, retry in a minute")
}

fn kms_error(e: KmsError) -> ApiError {
    tracing::error!(error = %e, "KMS failed");
    match e {
        KmsError::Unavailable(_) => ApiError::unavailable(
            "encryption is unavailable; nothing was changed, retry in a minute",
        ),
        _ => ApiError::internal(),
    }
}

fn random() -> Result<String, ApiError> {
    new_random_token().map_err(|e| {
        tracing::error!(error = %e, "random source failed");
        ApiError::internal()
    })
}

// ---- request helpers -------------------------------------------------------------------------------

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(oauth::parse_query)
        .unwrap_or_default()
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The API's public origin: `PUBLIC_BASE_URL`, else the request's scheme and host.
fn public_base(deps: &Deps, req: &Request) -> Result<String, ApiError> {
    if let Some(b) = &deps.config.public_base_url {
        return Ok(b.clone());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .ok_or_else(|| ApiError::bad_request("host", "the request has no usable Host header"))?;
    let proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "http" || *p == "https")
        .unwrap_or("https");
    Ok(format!("{proto}://{host}"))
}

fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::FOUND;
    let loc = HeaderValue::from_str(location).map_err(|_| ApiError::internal())?;
    resp.headers_mut().insert(header::LOCATION, loc);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

fn now_s(deps: &Deps) -> i64 {
    (deps.clock)() / 1000
}

// ---- Shopify ---------------------------------------------------------------------------------------

async fn shopify_install(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = query_pairs(req);
    let shop = shopify::verify_redirect(
        deps.config.shopify.client_secret.expose(),
        &params,
        now_s(deps),
    )
    .map_err(shopify_refusal)?;
    let state = OAuthState {
        state: random()?,
        kind: "shopify".into(),
        subject: shop.clone(),
        expires_at: now_s(deps) + STATE_TTL_S,
    };
    deps.store.put_oauth_state(&state).await.map_err(storage)?;
    let redirect_uri = format!("{}/v1/oauth/shopify/callback", public_base(deps, req)?);
    let base = shopify::shop_base(&deps.config.shopify_base_url, &shop);
    tracing::info!(platform = "shopify", shop = %shop, "install: redirect to authorize");
    redirect(&shopify::authorize_url(
        &base,
        &deps.config.shopify.client_id,
        SHOPIFY_SCOPES,
        &redirect_uri,
        &state.state,
    ))
}

async fn shopify_callback(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = query_pairs(req);
    let shop = shopify::verify_redirect(
        deps.config.shopify.client_secret.expose(),
        &params,
        now_s(deps),
    )
    .map_err(shopify_refusal)?;
    let code = oauth::single(&params, "code")
        .filter(|c| !c.is_empty())
        .ok_or(shopify_refusal(shopify::ShopifyError::Missing("code")))?;
    let state = oauth::single(&params, "state")
        .filter(|s| !s.is_empty())
        .ok_or(shopify_refusal(shopify::ShopifyError::Missing("state")))?;
    let found = deps
        .store
        .consume_oauth_state(state, now_s(deps))
        .await
        .map_err(storage)?
        .map_err(state_refusal)?;
    if found.kind != "shopify" || found.subject != shop {
        return Err(foreign_state());
    }
    let token = exchange_shopify(deps, &shop, code).await?;
    let granted = shopify::split_scopes(&token.scope);
    let missing = shopify::missing_scopes(SHOPIFY_SCOPES, &granted);
    if !missing.is_empty() {
        tracing::warn!(platform = "shopify", shop = %shop, missing = ?missing, "fewer scopes granted than requested");
        return Err(refusal(ErrorCode::ScopesMissing,
            Some("scope"),
            format!("Shopify granted fewer permissions than Affinity needs (missing: {}); nothing was saved", missing.join(", ")),
        ));
    }
    let c = connect(
        deps,
        "shopify",
        &shop,
        granted,
        &Secret::new(token.access_token),
    )
    .await?;
    success(deps, req, "Shopify", &shop, &c, Framing::None)
}

async fn exchange_shopify(
    deps: &Deps,
    shop: &str,
    code: &str,
) -> Result<shopify::AccessToken, ApiError> {
    let base = shopify::shop_base(&deps.config.shopify_base_url, shop);
    let body = shopify::token_request_body(
        &deps.config.shopify.client_id,
        &deps.config.shopify.client_secret,
        code,
    );
    let answer = deps
        .platform
        .post_json(&shopify::access_token_url(&base), &body)
        .await
        .map_err(|e| {
            tracing::warn!(platform = "shopify", shop = %shop, error = %e, "token exchange failed");
            platform_error("Shopify")
        })?;
    if answer.status != 200 {
        tracing::warn!(platform = "shopify", shop = %shop, status = answer.status, "token exchange refused");
        return Err(platform_error("Shopify"));
    }
    serde_json::from_slice::<shopify::AccessToken>(&answer.body)
        .ok()
        .filter(|t| !t.access_token.is_empty())
        .ok_or_else(|| {
            tracing::warn!(platform = "shopify", shop = %shop, "token exchange answer unreadable");
            platform_error("Shopify")
        })
}

// ---- BigCommerce -----------------------------------------------------------------------------------

async fn bigcommerce_callback(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    use bigcommerce::BigCommerceError as E;
    let params = query_pairs(req);
    let get = |name: &'static str| {
        oauth::single(&params, name)
            .filter(|v| !v.is_empty())
            .ok_or(bigcommerce_refusal(E::Missing(name)))
    };
    let (code, scope, context) = (get("code")?, get("scope")?, get("context")?);
    bigcommerce::store_hash_of(context).ok_or(bigcommerce_refusal(E::BadStore))?;
    let redirect_uri = format!("{}/v1/oauth/bigcommerce/callback", public_base(deps, req)?);
    let body = bigcommerce::token_request_body(
        &deps.config.bigcommerce,
        code,
        context,
        scope,
        &redirect_uri,
    );
    let url = bigcommerce::token_url(&deps.config.bigcommerce_login_url);
    let answer = deps.platform.post_json(&url, &body).await.map_err(|e| {
        tracing::warn!(platform = "bigcommerce", store = %context, error = %e, "token exchange failed");
        platform_error("BigCommerce")
    })?;
    if answer.status != 200 {
        tracing::warn!(platform = "bigcommerce", store = %context, status = answer.status, "token exchange refused");
        return Err(platform_error("BigCommerce"));
    }
    let token = serde_json::from_slice::<bigcommerce::AccessToken>(&answer.body)
        .ok()
        .filter(|t| !t.access_token.is_empty() && t.context == context)
        .ok_or_else(|| {
            tracing::warn!(platform = "bigcommerce", store = %context, "token exchange answer unreadable or for another store");
            platform_error("BigCommerce")
        })?;
    let scopes = token.scope.split_whitespace().map(str::to_string).collect();
    let c = connect(deps, "bigcommerce", context, scopes, &token.secret()).await?;
    success(deps, req, "BigCommerce", context, &c, Framing::BigCommerce)
}

fn verified_payload(deps: &Deps, req: &Request) -> Result<bigcommerce::SignedPayload, ApiError> {
    let params = query_pairs(req);
    let jwt = oauth::single(&params, "signed_payload_jwt").ok_or(bigcommerce_refusal(
        bigcommerce::BigCommerceError::Missing("signed_payload_jwt"),
    ))?;
    bigcommerce::verify_signed_payload_jwt(&deps.config.bigcommerce, jwt, now_s(deps))
        .map_err(bigcommerce_refusal)
}

async fn tenant_of(deps: &Deps, platform: &str, shop: &str) -> Result<Tenant, ApiError> {
    deps.store
        .tenant_by_tenant_id(&tenant_id_for(platform, shop))
        .await
        .map_err(storage)?
        .ok_or_else(|| {
            ApiError::not_found(
                Some("store"),
                "this store is not connected to Affinity; install the app first",
            )
        })
}

async fn bigcommerce_load(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let p = verified_payload(deps, req)?;
    let t = tenant_of(deps, "bigcommerce", &p.context()).await?;
    if t.status != TenantStatus::Active {
        return Err(ApiError::site_deleted());
    }
    Ok(pages::app_page(
        &t.shop_domain,
        &t.site_id,
        t.messaging_consent,
    ))
}

async fn bigcommerce_uninstall(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let p = verified_payload(deps, req)?;
    let t = tenant_of(deps, "bigcommerce", &p.context()).await?;
    let at = affinity::rfc3339((deps.clock)());
    deps.store
        .record_uninstall(&t.site_id, &at)
        .await
        .map_err(|e| match e {
            StoreError::TenantInactive => ApiError::unknown_site(),
            e => storage(e),
        })?;
    // The merchant discontinued the service: every record of the store is deleted (the article's
    // promise). This marks the tenant deleting and destroys its keys now; the tenant-delete function's
    // schedule deletes the items and leaves the tombstone.
    deps.store
        .begin_deletion(&t.tenant_id, Trigger::BigCommerceUninstall, (deps.clock)())
        .await
        .map_err(storage)?;
    tracing::info!(platform = "bigcommerce", tenant_id = %t.tenant_id, "uninstalled: consent withdrawn, token dropped, deletion started");
    Ok(http::json_response(
        StatusCode::OK,
        &serde_json::json!({"uninstalled": true, "messaging_consent": false, "messaging_consent_at": at, "deletion": "started"}),
    ))
}

// ---- the tenant ------------------------------------------------------------------------------------

/// The outcome of an install.
struct Connection {
    tenant_id: String,
    site_id: String,
    /// On a first install: the API key, shown once.
    api_key: Option<String>,
    /// On a re-install: a single-use grant to issue a new API key.
    rotation_grant: Option<String>,
    reinstalled: bool,
}

/// Creates the store's tenant, or refreshes it when it exists (same tenant id, site id, pepper, API key
/// and data; new consent time, scopes and token). The token is sealed before anything is written.
async fn connect(
    deps: &Deps,
    platform: &str,
    shop: &str,
    scopes: Vec<String>,
    token: &Secret,
) -> Result<Connection, ApiError> {
    let tenant_id = tenant_id_for(platform, shop);
    let sealed = deps
        .kms
        .seal_access_token(&tenant_id, token)
        .await
        .map_err(kms_error)?;
    let now = affinity::rfc3339((deps.clock)());
    // Two rounds at most: a concurrent install of the same store can win the first.
    for _ in 0..3 {
        let pointer = deps
            .store
            .site_id_of_tenant(&tenant_id)
            .await
            .map_err(storage)?;
        let existing = match &pointer {
            Some(site) => deps.store.tenant_by_site(site).await.map_err(storage)?,
            None => None,
        };
        match existing.as_ref().map(install_path) {
            Some(InstallPath::Refresh) => {
                let Some(t) = existing else { continue };
                let pepper = match t.pii_key_ciphertext {
                    Some(_) => None,
                    None => Some(deps.kms.new_pii_key(&tenant_id).await.map_err(kms_error)?),
                };
                let r = deps
                    .store
                    .refresh_tenant(&Refresh {
                        tenant_id: tenant_id.clone(),
                        site_id: t.site_id.clone(),
                        scopes: scopes.clone(),
                        consent_granted_at: now.clone(),
                        access_token_ciphertext: sealed.clone(),
                        pii_key_ciphertext: pepper,
                    })
                    .await;
                match r {
                    Ok(()) => {
                        let grant = random()?;
                        deps.store
                            .put_oauth_state(&OAuthState {
                                state: grant.clone(),
                                kind: "api-key".into(),
                                subject: t.site_id.clone(),
                                expires_at: now_s(deps) + STATE_TTL_S,
                            })
                            .await
                            .map_err(storage)?;
                        tracing::info!(platform, tenant_id = %tenant_id, site_id = %t.site_id, "re-installed: consent and token refreshed");
                        return Ok(Connection {
                            tenant_id,
                            site_id: t.site_id,
                            api_key: None,
                            rotation_grant: Some(grant),
                            reinstalled: true,
                        });
                    }
                    Err(StoreError::TenantInactive) => continue,
                    Err(e) => return Err(storage(e)),
                }
            }
            Some(InstallPath::Wait) => return Err(refusal(
                ErrorCode::DeletionInProgress,
                None,
                "this store's earlier data is still being deleted; install again in a few minutes"
                    .into(),
            )),
            Some(InstallPath::Recreate) | None => {
                let site_id = new_site_id().map_err(|_| ApiError::internal())?;
                let (api_key, hash) = new_api_key(&site_id).map_err(|_| ApiError::internal())?;
                let pepper = deps.kms.new_pii_key(&tenant_id).await.map_err(kms_error)?;
                let tenant = Tenant {
                    tenant_id: tenant_id.clone(),
                    site_id: site_id.clone(),
                    platform: platform.to_string(),
                    shop_domain: shop.to_string(),
                    status: TenantStatus::Active,
                    scopes: scopes.clone(),
                    consent_granted_at: Some(now.clone()),
                    messaging_consent: false,
                    messaging_consent_at: None,
                    access_token_ciphertext: Some(sealed.clone()),
                    pii_key_ciphertext: Some(pepper),
                    api_key_sha256: Some(hash),
                    default_region: None,
                    created_at: now.clone(),
                };
                match deps.store.create_tenant(&tenant, pointer.as_deref()).await {
                    Ok(()) => {
                        tracing::info!(platform, tenant_id = %tenant_id, site_id = %site_id, "installed: tenant created");
                        return Ok(Connection {
                            tenant_id,
                            site_id,
                            api_key: Some(api_key),
                            rotation_grant: None,
                            reinstalled: false,
                        });
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(storage(e)),
                }
            }
        }
    }
    Err(storage(StoreError::Conflict))
}

fn success(
    deps: &Deps,
    req: &Request,
    platform_name: &str,
    shop: &str,
    c: &Connection,
    framing: Framing,
) -> Result<Response<Body>, ApiError> {
    let action = format!("{}/v1/sites/{}/api-key", public_base(deps, req)?, c.site_id);
    Ok(pages::success_page(
        &pages::Connected {
            platform_name,
            shop,
            tenant_id: &c.tenant_id,
            site_id: &c.site_id,
            api_key: c.api_key.as_deref(),
            rotation: c.rotation_grant.as_deref().map(|g| (g, action.as_str())),
            reinstalled: c.reinstalled,
        },
        framing,
    ))
}

// ---- API key and messaging consent -----------------------------------------------------------------

async fn active_tenant(deps: &Deps, site: &str) -> Result<Tenant, ApiError> {
    if !affinity::event::is_valid_id(site) {
        return Err(ApiError::unknown_site());
    }
    let t = deps
        .store
        .tenant_by_site(site)
        .await
        .map_err(storage)?
        .ok_or_else(ApiError::unknown_site)?;
    if t.status != TenantStatus::Active {
        return Err(ApiError::site_deleted());
    }
    Ok(t)
}

fn authorize(t: &Tenant, req: &Request) -> Result<(), ApiError> {
    match t.check_api_key(http::bearer_token(req)) {
        KeyCheck::Valid => Ok(()),
        KeyCheck::OtherTenant => Err(ApiError::forbidden("this API key belongs to another store")),
        KeyCheck::Invalid => Err(ApiError::unauthorized(
            "send the store's API key as Authorization: Bearer <key>",
        )),
    }
}

async fn rotate_key(deps: &Deps, req: &Request, site: &str) -> Result<Response<Body>, ApiError> {
    let by_grant = http::bearer_token(req).is_none() && is_form(req);
    let t = active_tenant(deps, site).await?;
    if by_grant {
        let body = String::from_utf8_lossy(http::body_bytes(req)).into_owned();
        let form = oauth::parse_query(&body);
        let grant = oauth::single(&form, "grant")
            .filter(|g| !g.is_empty())
            .ok_or_else(|| ApiError::bad_request("grant", "the form has no grant"))?;
        let found = deps
            .store
            .consume_oauth_state(grant, now_s(deps))
            .await
            .map_err(storage)?
            .map_err(|c| {
                let mut e = state_refusal(c);
                e.field = Some("grant".into());
                e
            })?;
        if found.kind != "api-key" || found.subject != t.site_id {
            let mut e = foreign_state();
            e.field = Some("grant".into());
            return Err(e);
        }
    } else {
        authorize(&t, req)?;
    }
    let (key, hash) = new_api_key(&t.site_id).map_err(|_| ApiError::internal())?;
    deps.store
        .rotate_api_key(&t.site_id, t.api_key_sha256.as_deref(), &hash)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => refusal(
                ErrorCode::Conflict,
                None,
                "the API key changed meanwhile; nothing was changed".into(),
            ),
            e => storage(e),
        })?;
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

async fn messaging_consent(
    deps: &Deps,
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
    let at = affinity::rfc3339((deps.clock)());
    deps.store
        .set_messaging_consent(&t.site_id, granted, &at)
        .await
        .map_err(|e| match e {
            StoreError::TenantInactive => ApiError::site_deleted(),
            e => storage(e),
        })?;
    tracing::info!(site_id = %t.site_id, granted, "messaging consent changed");
    Ok(http::json_response(
        StatusCode::OK,
        &serde_json::json!({"site_id": t.site_id, "messaging_consent": granted, "messaging_consent_at": at}),
    ))
}

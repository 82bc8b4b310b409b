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
//! - `GET /v1/oauth/bigcommerce/load` and `/uninstall`: `signed_payload_jwt` verified and used once;
//!   the app page, or (a fresh uninstall by the store owner whose token BigCommerce now refuses)
//!   messaging consent withdrawn, the token dropped and the deletion started ([`bigcommerce`]).
//! - `POST /v1/sites/{site_id}/api-key`: a new API key, with the current key (`Authorization: Bearer`,
//!   JSON answer) or with the single-use grant of a success page (form `grant=...`, HTML answer).
//! - `PUT /v1/sites/{site_id}/messaging-consent`: `{"granted": true|false}` with the tenant API key.
//!
//! The rules are the domain's ([`affinity::install`]); this crate routes, reads requests, calls the
//! platforms ([`platform`]) and shapes answers. Every refusal is a 4xx naming the rule, as a page on the
//! merchant's browser routes and as JSON elsewhere; a platform that fails or does not answer in time
//! gives a 502 page and nothing is written. Nothing secret (client secrets, codes, tokens, keys' hashes)
//! is logged.

pub mod bigcommerce;
pub mod config;
pub mod keys;
pub mod pages;
pub mod platform;
mod request;
pub mod shopify;

use affinity::clock::SharedClock;
use affinity::http::{self, ApiError};
use affinity::install::{Install, InstallStore};
use affinity::kms::SecretSealer;
use affinity::oauth::AccessTokenOpener;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use pages::Framing;
use platform::PlatformClient;

pub use config::{Config, DEFAULT_PLATFORM_TIMEOUT_MS};

/// The Shopify access scopes Affinity asks for: the catalogue (categories, brands), orders (purchases)
/// and customers (customer ids; email and phone only under messaging consent).
pub const SHOPIFY_SCOPES: &[&str] = &[
    "read_products",
    "read_orders",
    "read_customers",
    // The web pixel extension (storefront/shopify/): registering it, and the customer events it sees
    // (https://shopify.dev/docs/apps/build/marketing-analytics/build-web-pixels).
    "write_pixels",
    "read_customer_events",
];
/// How long a state or a rotation grant stays valid, in seconds.
pub const STATE_TTL_S: i64 = affinity::store::tenants::STATE_TTL_S;

/// What the handler needs, built once per cold start: the tenants table `S` (in production
/// `DynamoStore`), the sealer of secrets `K` (`Kms`), the platforms' client, the configuration and the
/// clock.
pub struct Deps<S, K> {
    /// The tenants table.
    pub store: S,
    /// Seals access tokens and makes peppers.
    pub kms: K,
    /// Calls to the platforms.
    pub platform: PlatformClient,
    /// Credentials and URLs.
    pub config: Config,
    /// What time it is (tests move a manual clock).
    pub clock: SharedClock,
}

impl<S: InstallStore, K: SecretSealer> Deps<S, K> {
    /// The install flow over these ports.
    pub fn install(&self) -> Install<'_, S, K> {
        Install {
            store: &self.store,
            sealer: &self.kms,
            clock: self.clock.as_ref(),
        }
    }
}

impl<S, K> Deps<S, K> {
    /// Now, in epoch seconds.
    pub fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }
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
    /// The pages' framing on the merchant's browser routes; `None` for the JSON routes.
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
pub async fn handle<S: InstallStore, K: SecretSealer + AccessTokenOpener>(
    deps: &Deps<S, K>,
    req: Request,
) -> Response<Body> {
    let r = match route(&req) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let out = match &r {
        Route::ShopifyInstall => shopify::install(deps, &req).await,
        Route::ShopifyCallback => shopify::callback(deps, &req).await,
        Route::BigCommerceCallback => bigcommerce::callback(deps, &req).await,
        Route::BigCommerceLoad => bigcommerce::load(deps, &req).await,
        Route::BigCommerceUninstall => bigcommerce::uninstall(deps, &req).await,
        Route::ApiKey(site) => keys::rotate(deps, &req, site).await,
        Route::MessagingConsent(site) => keys::messaging_consent(deps, &req, site).await,
    };
    match out {
        Ok(resp) => resp,
        Err(e) => {
            // A form post answers as a page too (the merchant's browser sent it).
            let browser = r
                .framing()
                .or_else(|| request::is_form(&req).then_some(Framing::None));
            match browser {
                Some(f) => pages::error_page(&e, f),
                None => e.into_response(),
            }
        }
    }
}

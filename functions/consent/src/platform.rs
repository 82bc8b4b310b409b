//! The calls to the platforms: the HTTP client ([`affinity::oauth::client`], re-exported where the
//! consent function's callers, tests and the demo installer, have always found it), the store's
//! settings (its country at install; the proof of an uninstall) and the end of both OAuth callbacks.

pub use affinity::oauth::client::{Answer, PlatformClient, PlatformError, MAX_RESPONSE_BYTES};

use affinity::http::ApiError;
use affinity::install::{Grant, InstallStore};
use affinity::kms::SecretSealer;
use affinity::oauth::{bigcommerce, region_of, shopify, Secret};
use affinity::tenant::Platform;
use lambda_http::{Body, Request, Response};

use crate::pages::Framing;
use crate::request::success;
use crate::{Config, Deps};

/// BigCommerce's API origin: [`bigcommerce::DEFAULT_API_URL`] with BigCommerce's own login URL; when
/// `BIGCOMMERCE_LOGIN_URL` names another origin (a fake platform on loopback in tests and the local
/// demo), that origin serves the API too.
pub fn bigcommerce_api_base(config: &Config) -> String {
    if config.bigcommerce_login_url == bigcommerce::DEFAULT_LOGIN_URL {
        bigcommerce::DEFAULT_API_URL.to_string()
    } else {
        config.bigcommerce_login_url.clone()
    }
}

/// Where a store's settings are read with its access token, and the header that carries it: Shopify's
/// `shop.json`, BigCommerce's `v2/store`. The same read gives the country at install and, answering
/// 401, proves an uninstall.
pub fn settings_url<S, K>(
    deps: &Deps<S, K>,
    platform: Platform,
    shop: &str,
) -> (String, &'static str) {
    match platform {
        Platform::BigCommerce => {
            let hash = bigcommerce::store_hash_of(shop).unwrap_or_default();
            (
                bigcommerce::store_url(&bigcommerce_api_base(&deps.config), hash),
                bigcommerce::AUTH_TOKEN_HEADER,
            )
        }
        _ => (
            shopify::shop_json_url(&shopify::shop_base(&deps.config.shopify_base_url, shop)),
            shopify::ACCESS_TOKEN_HEADER,
        ),
    }
}

/// The store's country (its `default_region`) read with the new `token`; `None` when the platform
/// does not say (logged: the install goes on, national phone numbers then need a country code).
async fn store_region<S, K>(
    deps: &Deps<S, K>,
    platform: Platform,
    shop: &str,
    token: &Secret,
) -> Option<String> {
    let (url, header) = settings_url(deps, platform, shop);
    let client = &deps.platform;
    let code = match platform {
        Platform::BigCommerce => client
            .read_with_token::<bigcommerce::StoreInfo>(platform, shop, &url, header, token)
            .await
            .and_then(|s| s.country_code),
        _ => client
            .read_with_token::<shopify::ShopAnswer>(platform, shop, &url, header, token)
            .await
            .and_then(|a| a.shop.country_code),
    };
    region_of(code.as_deref())
}

/// The end of both platforms' OAuth callbacks: the store's country read with the new token, the store
/// connected, the success page.
pub(crate) async fn connect<S, K>(
    deps: &Deps<S, K>,
    req: &Request,
    platform: Platform,
    shop: &str,
    scopes: Vec<String>,
    token: &Secret,
) -> Result<Response<Body>, ApiError>
where
    S: InstallStore,
    K: SecretSealer,
{
    let default_region = store_region(deps, platform, shop, token).await;
    let c = deps
        .install()
        .connect(&Grant {
            platform,
            shop,
            scopes,
            token,
            default_region,
        })
        .await?;
    let framing = match platform {
        Platform::BigCommerce => Framing::BigCommerce,
        _ => Framing::None,
    };
    success(&deps.config, req, platform, shop, &c, framing)
}

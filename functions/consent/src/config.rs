//! The consent function's configuration, read once at cold start.

use std::time::Duration;

use affinity::config::{self, ConfigError};
use affinity::oauth::{bigcommerce, shopify, AppCredentials, Secret};

/// The default deadline of a call to a platform (`PLATFORM_TIMEOUT_MS`).
pub const DEFAULT_PLATFORM_TIMEOUT_MS: u64 = 5_000;

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

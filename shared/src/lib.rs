//! Affinity's shared library: what every function of the service uses.
//!
//! - [`event`]: the storefront events and their validation;
//! - [`linking`]: which profile each event belongs to (customer, email/phone, login, alias);
//! - [`profile`]: shopper profiles with time-decayed category and brand affinities;
//! - [`popularity`] and [`rank`]: the tenant's popular products and the recommendations drawn from them;
//! - [`tenant`]: tenant records, site ids and API keys;
//! - [`store`]: storage ports and the DynamoDB adapter;
//! - [`deletion`]: tenant deletion (the state machine) and shoppers' erasure and export;
//! - [`http`]: the error codes, typed API errors and JSON responses, shared by every HTTP function;
//! - [`admit`]: the one admission guard (site, tenant state, API key);
//! - [`ids`]: id newtypes and the profile keys' `g:`/`c:`/`e:`/`p:` prefixes;
//! - [`oauth`]: the platforms' OAuth and signature rules (Shopify, BigCommerce);
//! - [`kms`]: the KMS envelope of access tokens and peppers, and the pepper cache;
//! - [`config`]: configuration from the environment, AWS config and logging;
//! - [`clock`]: the clock port (epoch ms), with a manual clock for tests.

pub mod admit;
pub mod clock;
pub mod config;
pub mod deletion;
pub mod event;
pub mod http;
pub mod identity;
pub mod ids;
pub mod install;
pub mod kms;
pub mod linking;
pub mod oauth;
pub mod observe;
pub mod pii;
pub mod popularity;
pub mod profile;
pub mod rank;
pub mod recommender;
pub mod store;
pub mod tenant;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An epoch-ms instant as RFC 3339 (UTC), e.g. `2026-11-29T16:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

//! The platforms' OAuth and request-signing rules: Shopify ([`shopify`]) and BigCommerce
//! ([`bigcommerce`]). Pure functions over what arrived and the app's credentials, plus what a
//! destructive request must prove with the platform: the store's access token no longer works
//! ([`TokenState`], [`AccessTokenOpener`]). The HTTP calls are [`client`] (feature `platform-http`).

pub mod bigcommerce;
#[cfg(feature = "platform-http")]
pub mod client;
pub mod shopify;

use std::future::Future;

use crate::kms::{Kms, KmsError};

/// What a platform said of a store's access token when asked with the token itself (an authenticated
/// read of the store's settings). Only a 401 proves that the token was revoked, i.e. that the app was
/// uninstalled: a 2xx says it still works, and anything else (a 404, a 429, a 5xx) proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// 401: the platform no longer accepts the token.
    Revoked,
    /// 2xx: the token still works, so the app is still installed.
    Live,
    /// Any other status: nothing is proven (the status, for logs).
    Unproven(u16),
}

impl TokenState {
    /// The state an HTTP status of the platform's answer shows.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => Self::Revoked,
            200..=299 => Self::Live,
            other => Self::Unproven(other),
        }
    }
}

/// A store's country from a platform's settings (`country_code`), as the tenant's `default_region`:
/// two ASCII letters (ISO 3166-1 alpha-2), upper-cased; `None` for anything else (absent, empty,
/// `"ZZ"`-like junk of another length).
pub fn region_of(country_code: Option<&str>) -> Option<String> {
    let c = country_code?.trim();
    (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())).then(|| c.to_ascii_uppercase())
}

/// Opens a tenant's sealed platform access token, to ask the platform whether it still works (the
/// port of the uninstall proofs; KMS in production).
pub trait AccessTokenOpener: Send + Sync {
    /// The access token of `tenant_id` sealed as `ciphertext` (KMS `Decrypt` under the encryption
    /// context `{"tenant_id": tenant_id, "purpose": "platform-access-token"}`).
    ///
    /// # Errors
    /// [`KmsError::Refused`] for another tenant's or purpose's ciphertext; [`KmsError::Unavailable`],
    /// [`KmsError::Malformed`].
    fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> impl Future<Output = Result<Secret, KmsError>> + Send;
}

impl AccessTokenOpener for Kms {
    async fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, KmsError> {
        Kms::open_access_token(self, tenant_id, ciphertext).await
    }
}

/// The tenant-delete function's opener: the KMS envelope under its pepper cache (access tokens are
/// never cached).
impl AccessTokenOpener for crate::kms::Peppers {
    async fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, KmsError> {
        self.kms().open_access_token(tenant_id, ciphertext).await
    }
}

/// A test double beside [`crate::pii::DerivedPeppers`]: a tenant's stored "ciphertext" is its token's
/// text (tests write tenants by hand), so a test's fake platform recognises it.
#[cfg(feature = "test-doubles")]
impl AccessTokenOpener for crate::pii::DerivedPeppers {
    async fn open_access_token(
        &self,
        _tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, KmsError> {
        std::str::from_utf8(ciphertext)
            .map(Secret::new)
            .map_err(|_| KmsError::Malformed("a test access token that is not UTF-8"))
    }
}

/// The test double of [`AccessTokenOpener`] over [`crate::kms::MemorySealer`]'s ciphertexts: the
/// "token" is the ciphertext's text, and it opens only for the tenant and purpose it was sealed for
/// (as KMS's encryption context would refuse), so a test's fake platform recognises it.
#[cfg(feature = "test-doubles")]
impl AccessTokenOpener for crate::kms::MemorySealer {
    async fn open_access_token(
        &self,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, KmsError> {
        let text = std::str::from_utf8(ciphertext)
            .map_err(|_| KmsError::Refused("not a test ciphertext".into()))?;
        let prefix = format!("sealed:{}:{tenant_id}:", crate::kms::ACCESS_TOKEN_PURPOSE);
        if text.starts_with(&prefix) {
            Ok(Secret::new(text))
        } else {
            Err(KmsError::Refused(
                "sealed for another tenant or purpose".into(),
            ))
        }
    }
}

/// A secret from the environment (a client secret). Its `Debug` and `Display` print nothing of it, so it
/// cannot reach a log by accident; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing and for the token exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An app's credentials on a platform (from the environment, read once at cold start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The public client id (Shopify: API key; BigCommerce: client id).
    pub client_id: String,
    /// The client secret: signs Shopify's redirects and webhooks and BigCommerce's payloads.
    pub client_secret: Secret,
}

/// Splits a raw query string (`a=1&b=x%20y`) into decoded pairs, in order, as web frameworks do before
/// platforms' libraries verify them: `+` is a space, percent escapes are decoded (invalid UTF-8 is
/// replaced), a pair without `=` has an empty value, empty pairs are skipped.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The single value of `name` among `pairs`: `None` when absent or repeated (a repeated parameter is
/// ambiguous, so it is treated as missing and the request refused).
pub fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next()?;
    found.next().is_none().then_some(first.1.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_plus_and_percent_and_keep_order() {
        assert_eq!(
            parse_query("b=x+y&a=1%262&ids[]=2&ids[]=1&flag&&c="),
            vec![
                ("b".into(), "x y".into()),
                ("a".into(), "1&2".into()),
                ("ids[]".into(), "2".into()),
                ("ids[]".into(), "1".into()),
                ("flag".into(), String::new()),
                ("c".into(), String::new()),
            ]
        );
    }

    #[test]
    fn repeated_parameters_count_as_missing() {
        let q = parse_query("a=1&a=2&b=3");
        assert_eq!(single(&q, "a"), None);
        assert_eq!(single(&q, "b"), Some("3"));
        assert_eq!(single(&q, "c"), None);
    }

    #[test]
    fn only_a_401_proves_a_token_revoked() {
        assert_eq!(TokenState::of_status(401), TokenState::Revoked);
        assert_eq!(TokenState::of_status(200), TokenState::Live);
        assert_eq!(TokenState::of_status(204), TokenState::Live);
        for s in [403, 404, 429, 500, 503] {
            assert_eq!(TokenState::of_status(s), TokenState::Unproven(s), "{s}");
        }
    }

    #[test]
    fn regions_are_two_letters_upper_cased() {
        assert_eq!(region_of(Some("US")).as_deref(), Some("US"));
        assert_eq!(region_of(Some(" gb ")).as_deref(), Some("GB"));
        for bad in [None, Some(""), Some("USA"), Some("U1"), Some("é")] {
            assert_eq!(region_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hush");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
        assert_eq!(s.expose(), "hush");
    }
}

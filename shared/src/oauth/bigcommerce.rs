//! BigCommerce's app OAuth flow and signed payloads, as BigCommerce specifies them:
//! - the `/auth` callback (`code`, `scope`, `context`, `account_uuid`) is answered by exchanging the code
//!   at `https://login.bigcommerce.com/oauth2/token` with `client_id`, `client_secret`, `code`, `context`,
//!   `scope`, `grant_type=authorization_code` and the exact registered `redirect_uri`
//!   (<https://developer.bigcommerce.com/docs/integrations/apps/guide/auth>);
//! - the `/load`, `/uninstall` and `/remove_user` callbacks carry `signed_payload_jwt`: a JWT signed
//!   HS256 with the app's client secret, with `aud` = the client id, `iss` = `bc`, `sub` =
//!   `stores/{store_hash}`, and `iat`/`nbf`/`exp`
//!   (<https://developer.bigcommerce.com/docs/integrations/apps/guide/callbacks>). Anything else (another
//!   algorithm, `alg: none`, another app's audience, another secret, an expired or not-yet-valid payload)
//!   is refused.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{AppCredentials, Secret};

/// Where tokens are exchanged, unless `BIGCOMMERCE_LOGIN_URL` says otherwise (a fake on loopback).
pub const DEFAULT_LOGIN_URL: &str = "https://login.bigcommerce.com";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: i64 = 60;
/// The `iss` of every BigCommerce payload.
pub const ISSUER: &str = "bc";

/// Why a BigCommerce request was refused. The messages never echo the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BigCommerceError {
    /// No single `signed_payload_jwt` (or other required) parameter.
    #[error("the request has no single `{0}` parameter")]
    Missing(&'static str),
    /// Not a JWT signed HS256 with this app's client secret (tampered, `alg: none`, another algorithm,
    /// another secret, or not a JWT at all).
    #[error("signed_payload_jwt is not signed by BigCommerce for this app")]
    BadSignature,
    /// `aud` is not this app's client id.
    #[error("signed_payload_jwt is for another app (aud)")]
    WrongAudience,
    /// `iss` is not `bc`.
    #[error("signed_payload_jwt is not from BigCommerce (iss)")]
    WrongIssuer,
    /// `sub` (or `context`) is not `stores/{store_hash}`.
    #[error("the store must be given as stores/{{store_hash}}")]
    BadStore,
    /// A required claim (`exp`, `nbf`, `aud`, `iss`, `sub`) is missing or malformed.
    #[error("signed_payload_jwt lacks a required claim (exp, nbf, aud, iss, sub)")]
    MissingClaim,
    /// `exp` has passed.
    #[error(
        "signed_payload_jwt has expired; open the app again from the BigCommerce control panel"
    )]
    Expired,
    /// `nbf` is still to come.
    #[error("signed_payload_jwt is not valid yet (nbf)")]
    NotYetValid,
}

/// A refused BigCommerce request: 400 for a missing parameter or a malformed store, 401 for a payload
/// that is not BigCommerce's for this app now.
impl From<BigCommerceError> for crate::http::ApiError {
    fn from(e: BigCommerceError) -> Self {
        use crate::http::ErrorCode;
        let (code, field) = match e {
            BigCommerceError::Missing(f) => (ErrorCode::MissingParameter, f),
            BigCommerceError::BadStore => (ErrorCode::BadStore, "context"),
            BigCommerceError::BadSignature
            | BigCommerceError::WrongAudience
            | BigCommerceError::WrongIssuer
            | BigCommerceError::MissingClaim
            | BigCommerceError::Expired
            | BigCommerceError::NotYetValid => (ErrorCode::BadSignedPayload, "signed_payload_jwt"),
        };
        Self::new(code, Some(field), e.to_string())
    }
}

/// The verified content of a `signed_payload_jwt` that Affinity uses: the store. (The payload's user and
/// owner e-mail addresses are not read.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The store hash (`sub` without `stores/`).
    pub store_hash: String,
}

impl SignedPayload {
    /// `stores/{store_hash}`: the store's context, and its `shop_domain` in the tenant record.
    pub fn context(&self) -> String {
        format!("stores/{}", self.store_hash)
    }
}

/// The store hash of a `stores/{hash}` context: 1 to 64 lowercase letters and digits.
pub fn store_hash_of(context: &str) -> Option<&str> {
    let hash = context.strip_prefix("stores/")?;
    (!hash.is_empty()
        && hash.len() <= 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(hash)
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    nbf: i64,
}

/// Verifies a `signed_payload_jwt` (load, uninstall, remove-user callbacks) against the app's
/// credentials at `now_s` (epoch seconds): HS256 only, signature with the client secret, `aud` = client
/// id, `iss` = `bc`, `sub` = `stores/{hash}`, `nbf - 60 s <= now <= exp + 60 s`.
///
/// # Errors
/// The [`BigCommerceError`] of the first rule broken.
pub fn verify_signed_payload_jwt(
    app: &AppCredentials,
    jwt: &str,
    now_s: i64,
) -> Result<SignedPayload, BigCommerceError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.set_audience(&[app.client_id.as_str()]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    // The time checks are made below against the caller's clock (testable, and the same leeway).
    v.validate_exp = false;
    v.validate_nbf = false;
    // An empty secret is refused by the library (and never configured: main requires it).
    let key = DecodingKey::from_secret(app.client_secret.expose().as_bytes())
        .map_err(|_| BigCommerceError::BadSignature)?;
    let data = jsonwebtoken::decode::<Claims>(jwt, &key, &v).map_err(|e| match e.kind() {
        ErrorKind::InvalidAudience => BigCommerceError::WrongAudience,
        ErrorKind::InvalidIssuer => BigCommerceError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            BigCommerceError::MissingClaim
        }
        _ => BigCommerceError::BadSignature,
    })?;
    let c = data.claims;
    if now_s > c.exp.saturating_add(LEEWAY_S) {
        return Err(BigCommerceError::Expired);
    }
    if now_s < c.nbf.saturating_sub(LEEWAY_S) {
        return Err(BigCommerceError::NotYetValid);
    }
    let hash = store_hash_of(&c.sub).ok_or(BigCommerceError::BadStore)?;
    Ok(SignedPayload {
        store_hash: hash.to_string(),
    })
}

/// Where the code is exchanged: `{login_base}/oauth2/token`.
pub fn token_url(login_base: &str) -> String {
    format!("{}/oauth2/token", login_base.trim_end_matches('/'))
}

/// The JSON body of the token exchange, as BigCommerce documents it.
pub fn token_request_body(
    app: &AppCredentials,
    code: &str,
    context: &str,
    scope: &str,
    redirect_uri: &str,
) -> serde_json::Value {
    serde_json::json!({
        "client_id": app.client_id,
        "client_secret": app.client_secret.expose(),
        "code": code,
        "context": context,
        "scope": scope,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    })
}

/// BigCommerce's answer to the token exchange (the user and owner it also names are not read).
#[derive(Deserialize)]
pub struct AccessToken {
    /// The store's access token (never logged: see the `Debug` impl).
    pub access_token: String,
    /// The scopes granted, space-separated.
    #[serde(default)]
    pub scope: String,
    /// `stores/{hash}`: must be the store of the request.
    pub context: String,
}

impl AccessToken {
    /// The token as a [`Secret`].
    pub fn secret(&self) -> Secret {
        Secret::new(self.access_token.clone())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("scope", &self.scope)
            .field("context", &self.context)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const NOW: i64 = 1_659_031_626;

    fn app() -> AppCredentials {
        AppCredentials {
            client_id: "client".into(),
            client_secret: Secret::new("secret"),
        }
    }

    fn jwt(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
        )
        .expect("encode")
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"aud": "client", "iss": "bc", "sub": "stores/abc123",
            "iat": NOW, "nbf": NOW - 5, "exp": NOW + 86_400})
    }

    #[test]
    fn store_hashes_are_lowercase_alphanumerics() {
        assert_eq!(store_hash_of("stores/g5cd38"), Some("g5cd38"));
        for bad in ["stores/", "stores/G5", "stores/a/b", "g5cd38", "stores/a-b"] {
            assert_eq!(store_hash_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_payload_signed_for_this_app_verifies() {
        let p = verify_signed_payload_jwt(&app(), &jwt(claims(), "secret"), NOW).expect("valid");
        assert_eq!(p.context(), "stores/abc123");
    }

    #[test]
    fn time_claims_are_checked_with_leeway() {
        let t = jwt(claims(), "secret");
        assert!(verify_signed_payload_jwt(&app(), &t, NOW + 86_400 + 60).is_ok());
        assert_eq!(
            verify_signed_payload_jwt(&app(), &t, NOW + 86_400 + 61),
            Err(BigCommerceError::Expired)
        );
        assert_eq!(
            verify_signed_payload_jwt(&app(), &t, NOW - 66),
            Err(BigCommerceError::NotYetValid)
        );
    }
}

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
//!
//! The three callbacks share one payload format, and a payload lives 24 hours (`exp` = `nbf` + 24 h), so
//! a payload seen once (in a browser's history, a proxy's log) could be sent again all day. Hence the
//! rules of the callers: each `jti` is used once (the consent function records it,
//! [`jti_receipt_id`]); an uninstall (sent server to server by BigCommerce at the moment the Uninstall
//! button is clicked, per the callbacks guide's "Request Origin: server") must be fresh
//! ([`check_uninstall`]: `iat` at most [`UNINSTALL_MAX_AGE_S`] old) and by the store owner
//! (`user.id` = `owner.id`; the guide: "only store owner or authorized users can uninstall an app",
//! and Affinity deletes a whole store's data only for its owner); and before anything is deleted the
//! store's access token must be refused by BigCommerce's API ([`store_url`], [`AUTH_TOKEN_HEADER`]).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{AppCredentials, Secret};

/// Where tokens are exchanged, unless `BIGCOMMERCE_LOGIN_URL` says otherwise (a fake on loopback).
pub const DEFAULT_LOGIN_URL: &str = "https://login.bigcommerce.com";
/// BigCommerce's REST API (<https://developer.bigcommerce.com/docs/start/authentication>).
pub const DEFAULT_API_URL: &str = "https://api.bigcommerce.com";
/// The header that carries a store's access token on BigCommerce's API.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";
/// How old an uninstall payload may be, in seconds (`now - iat`): BigCommerce sends it server to
/// server when the Uninstall button is clicked, so a few seconds is normal; five minutes leaves room
/// for clock skew and BigCommerce's retries, while a payload replayed later is refused. BigCommerce
/// documents no window of its own (the callbacks guide gives only `exp` = `nbf` + 24 h), so this is
/// Affinity's, the same order as Shopify's request timestamps.
pub const UNINSTALL_MAX_AGE_S: i64 = 300;
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
    /// A required claim (`exp`, `nbf`, `iat`, `jti`, `aud`, `iss`, `sub`, `user.id`, `owner.id`) is
    /// missing or malformed.
    #[error("signed_payload_jwt lacks a required claim (exp, nbf, iat, jti, aud, iss, sub, user, owner)")]
    MissingClaim,
    /// `exp` has passed.
    #[error(
        "signed_payload_jwt has expired; open the app again from the BigCommerce control panel"
    )]
    Expired,
    /// `nbf` is still to come.
    #[error("signed_payload_jwt is not valid yet (nbf)")]
    NotYetValid,
    /// Its `jti` was used before: a replayed payload.
    #[error("signed_payload_jwt was already used (jti); open the app again from the BigCommerce control panel")]
    Replayed,
    /// An uninstall whose `iat` is more than [`UNINSTALL_MAX_AGE_S`] old.
    #[error("signed_payload_jwt of an uninstall must be at most 300 seconds old (iat); nothing was deleted")]
    Stale,
    /// An uninstall by a user who is not the store owner.
    #[error("only the store owner can uninstall Affinity and delete the store's data (user is not owner); nothing was deleted")]
    NotOwner,
}

/// A refused BigCommerce request: 400 for a missing parameter, a malformed store or a stale uninstall
/// (`stale_request`), 401 for a payload that is not BigCommerce's for this app now or was used before
/// (`replayed_payload`), 403 for an uninstall by another user than the owner (`not_store_owner`).
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
            BigCommerceError::Replayed => (ErrorCode::ReplayedPayload, "signed_payload_jwt"),
            BigCommerceError::Stale => (ErrorCode::StaleRequest, "signed_payload_jwt"),
            BigCommerceError::NotOwner => (ErrorCode::NotStoreOwner, "signed_payload_jwt"),
        };
        Self::new(code, Some(field), e.to_string())
    }
}

/// The verified content of a `signed_payload_jwt` that Affinity uses: the store, the payload's id and
/// issue time, and who sent it. (The user's and owner's e-mail addresses are not read.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The store hash (`sub` without `stores/`).
    pub store_hash: String,
    /// `jti`: the payload's unique id (a UUID in BigCommerce's payloads).
    pub jti: String,
    /// `iat`: when BigCommerce issued it, epoch seconds.
    pub issued_at: i64,
    /// `user.id`: the control panel user who opened or uninstalled the app.
    pub user_id: u64,
    /// `owner.id`: the store owner.
    pub owner_id: u64,
}

impl SignedPayload {
    /// `stores/{store_hash}`: the store's context, and its `shop_domain` in the tenant record.
    pub fn context(&self) -> String {
        format!("stores/{}", self.store_hash)
    }
}

/// The id under which a payload's `jti` is recorded as used (a webhook receipt of the tenants table,
/// kept a week: longer than the payload's 24 h life).
pub fn jti_receipt_id(jti: &str) -> String {
    format!("bigcommerce-jti.{jti}")
}

/// The rules of an uninstall beyond the signature (see the module's text): issued at most
/// [`UNINSTALL_MAX_AGE_S`] before `now_s` (and not more than [`LEEWAY_S`] after it), by the owner.
///
/// # Errors
/// [`BigCommerceError::Stale`], [`BigCommerceError::NotOwner`].
pub fn check_uninstall(p: &SignedPayload, now_s: i64) -> Result<(), BigCommerceError> {
    let age = now_s.saturating_sub(p.issued_at);
    if !(-LEEWAY_S..=UNINSTALL_MAX_AGE_S).contains(&age) {
        return Err(BigCommerceError::Stale);
    }
    if p.user_id != p.owner_id {
        return Err(BigCommerceError::NotOwner);
    }
    Ok(())
}

/// The store's settings on BigCommerce's API: `{api_base}/stores/{hash}/v2/store`
/// (<https://developer.bigcommerce.com/docs/rest-management/store-information>). Read with the
/// store's token at install (its country) and to prove an uninstall (a 401 once the token is revoked).
pub fn store_url(api_base: &str, store_hash: &str) -> String {
    format!(
        "{}/stores/{store_hash}/v2/store",
        api_base.trim_end_matches('/')
    )
}

/// The part of BigCommerce's store settings Affinity reads.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreInfo {
    /// The store's country, ISO 3166-1 alpha-2 (e.g. `US`).
    #[serde(default)]
    pub country_code: Option<String>,
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
struct Person {
    id: u64,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    user: Person,
    owner: Person,
}

/// Verifies a `signed_payload_jwt` (load, uninstall, remove-user callbacks) against the app's
/// credentials at `now_s` (epoch seconds): HS256 only, signature with the client secret, `aud` = client
/// id, `iss` = `bc`, `sub` = `stores/{hash}`, `nbf - 60 s <= now <= exp + 60 s`, and the `iat`,
/// non-empty `jti`, `user.id` and `owner.id` that BigCommerce's payloads always carry.
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
    v.set_required_spec_claims(&["exp", "nbf", "iat", "jti", "aud", "iss", "sub"]);
    // The time checks are made below against the caller's clock (testable, and the same leeway).
    v.validate_exp = false;
    v.validate_nbf = false;
    // An empty secret is refused by the library (and never configured: main requires it).
    let key = DecodingKey::from_secret(app.client_secret.expose().as_bytes())
        .map_err(|_| BigCommerceError::BadSignature)?;
    let data = jsonwebtoken::decode::<Claims>(jwt, &key, &v).map_err(|e| match e.kind() {
        ErrorKind::InvalidAudience => BigCommerceError::WrongAudience,
        ErrorKind::InvalidIssuer => BigCommerceError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => BigCommerceError::MissingClaim,
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
    if c.jti.trim().is_empty() || c.jti.len() > 128 {
        return Err(BigCommerceError::MissingClaim);
    }
    Ok(SignedPayload {
        store_hash: hash.to_string(),
        jti: c.jti,
        issued_at: c.iat,
        user_id: c.user.id,
        owner_id: c.owner.id,
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
            "iat": NOW, "nbf": NOW - 5, "exp": NOW + 86_400, "jti": "c5f0bcf5-a504-4ae6-8dcc-0e40eaa5a070",
            "user": {"id": 7, "email": "u@example.com"}, "owner": {"id": 7, "email": "u@example.com"}})
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
        assert_eq!(
            (p.jti.as_str(), p.issued_at, p.user_id, p.owner_id),
            ("c5f0bcf5-a504-4ae6-8dcc-0e40eaa5a070", NOW, 7, 7)
        );
    }

    #[test]
    fn a_payload_without_jti_or_owner_is_refused() {
        for drop in ["jti", "owner", "user", "iat"] {
            let mut c = claims();
            c.as_object_mut().expect("object").remove(drop);
            assert_eq!(
                verify_signed_payload_jwt(&app(), &jwt(c, "secret"), NOW),
                Err(BigCommerceError::MissingClaim),
                "{drop}"
            );
        }
    }

    #[test]
    fn an_uninstall_must_be_fresh_and_by_the_owner() {
        let p = verify_signed_payload_jwt(&app(), &jwt(claims(), "secret"), NOW).expect("valid");
        assert_eq!(check_uninstall(&p, NOW + UNINSTALL_MAX_AGE_S), Ok(()));
        assert_eq!(
            check_uninstall(&p, NOW + UNINSTALL_MAX_AGE_S + 1),
            Err(BigCommerceError::Stale)
        );
        assert_eq!(
            check_uninstall(&p, NOW - LEEWAY_S - 1),
            Err(BigCommerceError::Stale)
        );
        let mut c = claims();
        c["user"]["id"] = serde_json::json!(9);
        let by_user = verify_signed_payload_jwt(&app(), &jwt(c, "secret"), NOW).expect("valid");
        assert_eq!(
            check_uninstall(&by_user, NOW),
            Err(BigCommerceError::NotOwner)
        );
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

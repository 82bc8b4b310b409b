//! Signed identity tokens: how a merchant proves to Affinity which customer is logged in on a browser.
//!
//! A storefront's events and recommendation requests are sent by the shopper's browser, which can say
//! anything. A customer id, an email or a phone in such a request links the browser to a customer's
//! profile (and lets it read that profile's recommendations) only when it comes with a token that the
//! merchant's server signed with the tenant's identity secret. The format is built so a Shopify theme can
//! make it in Liquid (`hmac_sha256`, `sha256`, `date`, `append`), in the manner of Shopify App Proxy's
//! signed `logged_in_customer_id` and Intercom's identity verification.
//!
//! ```text
//! payload = "v1." site_id "." customer_id "." expires "." email_sha256 "." phone_sha256
//! token   = payload "." hex(HMAC-SHA256(key = identity secret as its 64-character text, payload))
//! ```
//!
//! - `site_id`: the tenant's public site id; `customer_id`: the platform's customer id (the id rule of
//!   [`crate::ids::CustomerId`]); `expires`: epoch seconds, decimal.
//! - `email_sha256` / `phone_sha256`: empty, or the lowercase hex SHA-256 of the email the merchant
//!   verified (trimmed, lowercased) / of the phone in E.164 digits without `+`. Each proves that
//!   address belongs to the customer, so it links to the customer's profile instead of staying a claim.
//! - The HMAC key is the secret's text (64 lowercase hex characters) taken as bytes, as Liquid's
//!   `hmac_sha256` filter takes it; the MAC is lowercase hex.
//!
//! A token is checked against the site of the route, the clock (expired, or expiring more than
//! [`MAX_TOKEN_LIFETIME_S`] ahead: refused) and the MAC (constant-time, [`Mac::verify_slice`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::ids::CustomerId;

/// Furthest ahead a token's expiry may be, in seconds (7 days): a leaked token is useful no longer.
pub const MAX_TOKEN_LIFETIME_S: i64 = 7 * 24 * 3600;
/// Longest token read, in bytes.
pub const MAX_TOKEN_BYTES: usize = 512;

/// A tenant's identity secret: 32 random bytes, used as the HMAC key in its text form (lowercase hex).
/// Its `Debug` prints nothing of it; it is wiped when dropped.
#[derive(Clone)]
pub struct IdentitySecret(String);

impl IdentitySecret {
    /// The secret of 32 bytes (from KMS or the operating system's generator).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(hex::encode(bytes))
    }

    /// The secret from raw bytes as KMS returns them.
    ///
    /// # Errors
    /// When they are not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, &'static str> {
        let b: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| "an identity secret is 32 bytes")?;
        Ok(Self::from_bytes(b))
    }

    /// The secret from its text form (64 hex characters), as the merchant holds it.
    ///
    /// # Errors
    /// When it is not 64 hex characters.
    pub fn from_text(text: &str) -> Result<Self, &'static str> {
        let t = text.trim().to_ascii_lowercase();
        let mut b = [0u8; 32];
        hex::decode_to_slice(&t, &mut b).map_err(|_| "an identity secret is 64 hex characters")?;
        Ok(Self(t))
    }

    /// The text form given to the merchant (64 lowercase hex characters). Show it once; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this never fails; the fallback keeps it free of panics.
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
    }
}

impl Drop for IdentitySecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Compared in constant time (two secrets are equal only when every byte is).
impl PartialEq for IdentitySecret {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), other.0.as_bytes()).into()
    }
}

impl Eq for IdentitySecret {}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySecret(..)")
    }
}

/// What a merchant signs: the customer, until when, and the contacts it verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The platform's customer id.
    pub customer_id: String,
    /// Expiry, epoch seconds.
    pub expires_s: i64,
    /// Lowercase hex SHA-256 of the verified email (trimmed, lowercased), if any.
    pub email_sha256: Option<String>,
    /// Lowercase hex SHA-256 of the verified phone (E.164 digits without `+`), if any.
    pub phone_sha256: Option<String>,
}

/// Why a token is not accepted. The reason is said to clients; it never repeats the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the `v1.` format, or a part breaks its rule.
    #[error("is not a v1 identity token (see the README, \"Identity tokens\")")]
    Malformed,
    /// Signed for another site.
    #[error("was signed for another site")]
    OtherSite,
    /// The expiry has passed.
    #[error("has expired")]
    Expired,
    /// The expiry is further ahead than [`MAX_TOKEN_LIFETIME_S`].
    #[error("expires more than 7 days ahead")]
    TooLong,
    /// The MAC does not match: not signed with this site's secret.
    #[error("has a signature that does not match this site's identity secret")]
    BadSignature,
    /// Valid, but for another customer than the event names.
    #[error("proves another customer than customer_id")]
    OtherCustomer,
}

/// The lowercase hex SHA-256 of `text` (as Liquid's `sha256` filter makes it).
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn payload(site_id: &str, c: &Claims) -> String {
    format!(
        "v1.{site_id}.{}.{}.{}.{}",
        c.customer_id,
        c.expires_s,
        c.email_sha256.as_deref().unwrap_or(""),
        c.phone_sha256.as_deref().unwrap_or("")
    )
}

/// The token of `claims` for `site_id` (what the merchant's server makes; also `affinity-admin
/// identity-token`).
pub fn sign(secret: &IdentitySecret, site_id: &str, claims: &Claims) -> String {
    let p = payload(site_id, claims);
    let mut mac = secret.mac();
    mac.update(p.as_bytes());
    format!("{p}.{}", hex::encode(mac.finalize().into_bytes()))
}

fn hash_part(s: &str) -> Result<Option<String>, TokenError> {
    match s.len() {
        0 => Ok(None),
        64 if s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(Some(s.to_string()))
        }
        _ => Err(TokenError::Malformed),
    }
}

/// Checks `token` for the site `site_id` at `now_s` (epoch seconds) and returns what it proves.
///
/// # Errors
/// The first [`TokenError`] found, in this order: malformed, other site, bad signature, expired, too
/// long.
pub fn verify(
    secret: &IdentitySecret,
    site_id: &str,
    token: &str,
    now_s: i64,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES || !token.is_ascii() {
        return Err(TokenError::Malformed);
    }
    let (p, mac_hex) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = p.rsplitn(4, '.');
    let (Some(phone), Some(email), Some(exp), Some(head)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let rest = head.strip_prefix("v1.").ok_or(TokenError::Malformed)?;
    let customer = match rest.strip_prefix(site_id).and_then(|r| r.strip_prefix('.')) {
        Some(c) => c,
        None => return Err(TokenError::OtherSite),
    };
    if CustomerId::parse(customer).is_err()
        || exp.is_empty()
        || exp.len() > 12
        || !exp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(TokenError::Malformed);
    }
    let expires_s: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    let claims = Claims {
        customer_id: customer.to_string(),
        expires_s,
        email_sha256: hash_part(email)?,
        phone_sha256: hash_part(phone)?,
    };
    let presented = hex::decode(mac_hex).map_err(|_| TokenError::Malformed)?;
    let mut mac = secret.mac();
    mac.update(p.as_bytes());
    mac.verify_slice(&presented)
        .map_err(|_| TokenError::BadSignature)?;
    if expires_s < now_s {
        return Err(TokenError::Expired);
    }
    if expires_s > now_s + MAX_TOKEN_LIFETIME_S {
        return Err(TokenError::TooLong);
    }
    Ok(claims)
}

/// Where a function gets a tenant's identity secret: [`crate::kms::Peppers`] in Lambda (decrypted with
/// KMS, cached like the pepper), a fixed secret in tests.
pub trait IdentitySecretSource: Send + Sync {
    /// The tenant's identity secret.
    ///
    /// # Errors
    /// [`crate::kms::KmsError::Missing`] when the tenant has none (installed before identity tokens:
    /// rotate its API key to make one); the KMS errors of decryption.
    fn identity_secret(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> impl std::future::Future<
        Output = Result<std::sync::Arc<IdentitySecret>, crate::kms::KmsError>,
    > + Send;
}

/// Tenants' identity secrets, decrypted with KMS on first use and kept for a bounded time per warm
/// Lambda, like the pepper ([`crate::kms::Peppers`]) and in the same cache ([`crate::kms::KeyCache`]):
/// an entry is used only for the same ciphertext (a rotated or re-installed secret is read again), for
/// at most `ttl` on the given clock, and leaves at once on [`crate::kms::Unsealed::forget`].
pub type IdentitySecrets = crate::kms::Unsealed<IdentitySecret>;

impl IdentitySecretSource for IdentitySecrets {
    async fn identity_secret(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<IdentitySecret>, crate::kms::KmsError> {
        self.get(tenant).await
    }
}

/// A tenant's keys as the storefront functions read them: the pepper and the identity secret, both
/// KMS-decrypted and cached per warm Lambda.
#[derive(Debug)]
pub struct TenantKeys {
    /// Peppers.
    pub pii: crate::kms::Peppers,
    /// Identity secrets.
    pub identity: IdentitySecrets,
}

impl TenantKeys {
    /// Both caches over `kms`, each entry kept for `ttl` (use [`crate::kms::PEPPER_TTL`]).
    pub fn new(kms: crate::kms::Kms, ttl: std::time::Duration) -> Self {
        Self {
            pii: crate::kms::Peppers::new(kms.clone(), ttl),
            identity: IdentitySecrets::new(kms, ttl),
        }
    }

    /// Forgets a tenant's keys at once (its deletion started).
    pub fn forget(&self, tenant_id: &str) {
        self.pii.forget(tenant_id);
        self.identity.forget(tenant_id);
    }
}

impl crate::pii::PepperSource for TenantKeys {
    async fn pepper(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<crate::pii::Pepper>, crate::kms::KmsError> {
        self.pii.get(tenant).await
    }

    /// Forgets both of the tenant's keys: its deletion started.
    fn forget(&self, tenant_id: &str) {
        TenantKeys::forget(self, tenant_id);
    }
}

impl IdentitySecretSource for TenantKeys {
    async fn identity_secret(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<IdentitySecret>, crate::kms::KmsError> {
        self.identity.identity_secret(tenant).await
    }
}

/// The test double's identity secret of a tenant: SHA-256 of `identity|{tenant id}` (what
/// [`crate::kms::MemorySealer`] makes and [`crate::pii::DerivedPeppers`] reads).
#[cfg(feature = "test-doubles")]
pub fn derived_identity_secret(tenant_id: &str) -> IdentitySecret {
    let d: [u8; 32] = Sha256::digest(format!("identity|{tenant_id}").as_bytes()).into();
    IdentitySecret::from_bytes(&d)
}

#[cfg(feature = "test-doubles")]
impl IdentitySecretSource for crate::pii::DerivedPeppers {
    async fn identity_secret(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<IdentitySecret>, crate::kms::KmsError> {
        Ok(std::sync::Arc::new(derived_identity_secret(
            &tenant.tenant_id,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's worked example ("Identity tokens").
    const EXAMPLE_SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const EXAMPLE_TOKEN: &str =
        "v1.demo-store.77001.1800000000...c0f4c6f052a96c660cb06d61323faff01f1835fdec617347cf44eb29a3b2e746";

    fn claims(c: &str, exp: i64) -> Claims {
        Claims {
            customer_id: c.into(),
            expires_s: exp,
            email_sha256: None,
            phone_sha256: None,
        }
    }

    fn secret() -> IdentitySecret {
        IdentitySecret::from_text(EXAMPLE_SECRET).expect("hex")
    }

    #[test]
    fn the_readme_example_signs_and_verifies() {
        let token = sign(&secret(), "demo-store", &claims("77001", 1_800_000_000));
        assert_eq!(token, EXAMPLE_TOKEN);
        assert_eq!(
            verify(&secret(), "demo-store", EXAMPLE_TOKEN, 1_799_990_000),
            Ok(claims("77001", 1_800_000_000))
        );
    }

    #[test]
    fn the_mac_is_hmac_sha256_keyed_with_the_secret_text() {
        // The same computation as Liquid's `payload | hmac_sha256: secret`, done by hand.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(EXAMPLE_SECRET.as_bytes()).expect("key");
        mac.update(b"v1.demo-store.77001.1800000000..");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert!(EXAMPLE_TOKEN.ends_with(&format!(".{expected}")));
    }

    #[test]
    fn contact_hashes_are_bound_and_customer_ids_may_hold_dots() {
        let c = Claims {
            customer_id: "gid.shop.7".into(),
            expires_s: 1_800_000_000,
            email_sha256: Some(sha256_hex("ann@example.com")),
            phone_sha256: None,
        };
        let t = sign(&secret(), "s.1", &c);
        assert_eq!(verify(&secret(), "s.1", &t, 1_799_999_999), Ok(c));
        // Swapping the email hash breaks the MAC.
        let forged = t.replacen(
            &sha256_hex("ann@example.com"),
            &sha256_hex("bob@example.com"),
            1,
        );
        assert_eq!(
            verify(&secret(), "s.1", &forged, 1_799_999_999),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn forged_expired_foreign_and_malformed_tokens_are_refused() {
        let t = sign(&secret(), "site", &claims("42", 1_000_000));
        let other = IdentitySecret::from_bytes(&[7; 32]);
        assert_eq!(
            verify(&other, "site", &t, 999_000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&secret(), "site", &t, 1_000_001),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&secret(), "other", &t, 999_000),
            Err(TokenError::OtherSite)
        );
        assert_eq!(
            verify(&secret(), "site", &t.replacen(".42.", ".43.", 1), 999_000),
            Err(TokenError::BadSignature)
        );
        let far = sign(
            &secret(),
            "site",
            &claims("42", 1_000_000 + MAX_TOKEN_LIFETIME_S + 1),
        );
        assert_eq!(
            verify(&secret(), "site", &far, 1_000_000),
            Err(TokenError::TooLong)
        );
        for bad in [
            "",
            "v1",
            "v2.site.42.1000000...ab",
            "v1.site..1000000...ab",
            "v1.site.42.x...ab",
            "v1.site.42.1..zz.ab",
        ] {
            assert_eq!(
                verify(&secret(), "site", bad, 999_000),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&secret(), "site", &"v".repeat(MAX_TOKEN_BYTES + 1), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_readme_example_with_a_verified_email() {
        let c = Claims {
            email_sha256: Some(sha256_hex(
                " Ann@Example.com ".trim().to_lowercase().as_str(),
            )),
            ..claims("77001", 1_800_000_000)
        };
        assert_eq!(
            sign(&secret(), "demo-store", &c),
            "v1.demo-store.77001.1800000000.71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476..9b16525c4b43f5b28557b625bf7352ae7a5f600c61b59fa229f3d875cf02f176"
        );
    }

    #[test]
    fn the_readme_documents_the_worked_examples() {
        let readme = include_str!("../../README.md");
        assert!(readme.contains(EXAMPLE_SECRET) && readme.contains(EXAMPLE_TOKEN));
    }

    #[test]
    fn a_secret_never_prints() {
        assert_eq!(format!("{:?}", secret()), "IdentitySecret(..)");
        assert!(IdentitySecret::from_text("zz").is_err());
    }

    /// A cache over a KMS client that is never reached: every read below is served from memory.
    #[cfg(feature = "test-doubles")]
    fn secrets_on(clock: &crate::clock::ManualClock) -> IdentitySecrets {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .build();
        let kms = crate::kms::Kms::new(aws_sdk_kms::Client::from_conf(conf), "alias/unused");
        IdentitySecrets::with_clock(kms, crate::kms::PEPPER_TTL, clock.shared())
    }

    #[cfg(feature = "test-doubles")]
    #[tokio::test]
    async fn an_identity_secret_leaves_memory_after_its_ttl_on_the_clock_and_at_once_on_forget() {
        let clock = crate::clock::ManualClock::at(1_700_000_000_000);
        let secrets = secrets_on(&clock);
        let mut tenant = crate::tenant::Tenant::new(
            crate::tenant::Platform::Shopify,
            "ttl.myshopify.com",
            "ttl-site",
            "2026-12-02T05:00:00Z",
        );
        tenant.identity_secret_ciphertext = Some(b"ct-1".to_vec());
        secrets
            .cache
            .put(&tenant.tenant_id, b"ct-1", std::sync::Arc::new(secret()));
        clock.advance(5 * 60 * 1000 - 1);
        let held = secrets.identity_secret(&tenant).await.expect("from memory");
        assert_eq!(*held, secret());
        clock.advance(1);
        assert!(secrets.cache.get(&tenant.tenant_id, b"ct-1").is_none());
        assert_eq!(secrets.len(), 0, "evicted after 5 minutes, not just hidden");

        secrets
            .cache
            .put(&tenant.tenant_id, b"ct-1", std::sync::Arc::new(secret()));
        assert_eq!(secrets.len(), 1);
        secrets.forget(&tenant.tenant_id);
        assert!(secrets.is_empty(), "forget drops it with no time passing");
    }
}

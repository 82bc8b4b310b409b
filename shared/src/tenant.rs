//! Tenants: one merchant's store, its public site id, its consent and its secrets (as KMS ciphertexts).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Where a tenant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Connected: events are accepted and recommendations served.
    Active,
    /// Deletion requested: every request gets 410 and nothing more is stored; items are being deleted.
    Deleting,
    /// Every item is gone; only the tombstone remains.
    Deleted,
}

/// The commerce platform a tenant's store runs on. Stored and answered as `shopify`, `bigcommerce` or
/// `demo` (a store made locally, with no platform behind it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Shopify (<https://shopify.dev/docs/apps/build/authentication-authorization>).
    Shopify,
    /// BigCommerce (<https://developer.bigcommerce.com/docs/integrations/apps/guide/auth>).
    BigCommerce,
    /// A local demo store (`affinity-admin create-demo-tenant`).
    Demo,
}

impl Platform {
    /// The stored form: `shopify`, `bigcommerce`, `demo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::BigCommerce => "bigcommerce",
            Self::Demo => "demo",
        }
    }

    /// The name shown to merchants: `Shopify`, `BigCommerce`, `demo`.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Shopify => "Shopify",
            Self::BigCommerce => "BigCommerce",
            Self::Demo => "demo",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform name that is none of [`Platform`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the platform must be shopify, bigcommerce or demo")]
pub struct UnknownPlatform;

impl std::str::FromStr for Platform {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shopify" => Ok(Self::Shopify),
            "bigcommerce" => Ok(Self::BigCommerce),
            "demo" => Ok(Self::Demo),
            _ => Err(UnknownPlatform),
        }
    }
}

/// A tenant record, stored at `pk = site#{site_id}` in the tenants table.
///
/// Holds no plaintext secret: the platform access token and the tenant's pepper (the key of its
/// keyed PII hashes) are KMS ciphertexts bound to the tenant by encryption context, and the API key is
/// kept as its SHA-256. Build one with [`Tenant::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable id, derived from the platform and the store (see [`tenant_id_for`]).
    pub tenant_id: String,
    /// Public id that storefront JavaScript sends.
    pub site_id: String,
    /// The store's platform.
    pub platform: Platform,
    /// The store's domain (`example.myshopify.com`) or `stores/{hash}` for BigCommerce.
    pub shop_domain: String,
    /// Life-cycle state.
    pub status: TenantStatus,
    /// OAuth scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the merchant granted access (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_granted_at: Option<String>,
    /// Consent to process email and phone for Personalized Messaging.
    #[serde(default)]
    pub messaging_consent: bool,
    /// When that consent was last granted or withdrawn (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_consent_at: Option<String>,
    /// KMS ciphertext of the platform access token.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub access_token_ciphertext: Option<Vec<u8>>,
    /// KMS ciphertext of the tenant's 256-bit pepper. (The field keeps its stored name.)
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub pepper_ciphertext: Option<Vec<u8>>,
    /// KMS ciphertext of the tenant's 256-bit identity secret, the key of its identity tokens
    /// ([`crate::identity`]); made at install, replaced with every new API key.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub identity_secret_ciphertext: Option<Vec<u8>>,
    /// SHA-256 (hex) of the tenant API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sha256: Option<String>,
    /// Default region for phone numbers without a country code (ISO 3166 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    /// When the record was created (RFC 3339).
    pub created_at: String,
}

mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
                Ok(Some(b.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Self::Value, E> {
                Ok(Some(b))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_bytes(V)
            }
        }
        d.deserialize_option(V)
    }
}

impl Tenant {
    /// A new active tenant of `shop_domain` on `platform` with site id `site_id`, created at
    /// `created_at` (RFC 3339): its tenant id is [`tenant_id_for`]; no scopes, consent, secrets or API
    /// key yet (set the fields that apply), messaging consent off.
    pub fn new(platform: Platform, shop_domain: &str, site_id: &str, created_at: &str) -> Self {
        Self {
            tenant_id: tenant_id_for(platform, shop_domain),
            site_id: site_id.to_string(),
            platform,
            shop_domain: shop_domain.to_string(),
            status: TenantStatus::Active,
            scopes: Vec::new(),
            consent_granted_at: None,
            messaging_consent: false,
            messaging_consent_at: None,
            access_token_ciphertext: None,
            pepper_ciphertext: None,
            identity_secret_ciphertext: None,
            api_key_sha256: None,
            default_region: None,
            created_at: created_at.to_string(),
        }
    }

    /// A test double's tenant: [`Platform::Demo`], shop `{site_id}.example`, created
    /// 2026-11-29T00:00:00Z, nothing else set.
    #[cfg(feature = "test-doubles")]
    pub fn demo(site_id: &str) -> Self {
        Self::new(
            Platform::Demo,
            &format!("{site_id}.example"),
            site_id,
            "2026-11-29T00:00:00Z",
        )
    }
}

/// The stable tenant id of a store: `{platform}-` and the first 16 bytes of SHA-256 over
/// `{platform}:{shop_domain}`, hex. The same store always gets the same tenant (re-installs keep data).
pub fn tenant_id_for(platform: Platform, shop_domain: &str) -> String {
    let d = Sha256::digest(format!("{platform}:{}", shop_domain.to_ascii_lowercase()).as_bytes());
    format!("{platform}-{}", hex::encode(&d[..16]))
}

/// A new tenant API key for `site_id`: `afk_{site_id}_{43 base64url characters of 256 random bits}`.
/// The site id inside lets a key presented on another tenant's route be told apart (403) from a
/// wrong key (401). Returns the key and its SHA-256 hex, the only form stored.
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_api_key(site_id: &str) -> Result<(String, String), getrandom::Error> {
    use base64::Engine;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let key = format!(
        "afk_{site_id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Ok((key, hash))
}

/// A fresh public site id: `s_` and 16 random bytes, hex.
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_site_id() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)?;
    Ok(format!("s_{}", hex::encode(raw)))
}

/// A single-use random value (an OAuth `state`, a one-time grant): 256 random bits, base64url without
/// padding (43 characters).
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_random_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// How a presented API key compares with a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The tenant's key.
    Valid,
    /// A well-formed key of another site (403).
    OtherTenant,
    /// Missing, malformed or wrong (401).
    Invalid,
}

impl Tenant {
    /// Compares `presented` with the stored hash in constant time.
    pub fn check_api_key(&self, presented: Option<&str>) -> KeyCheck {
        let (Some(key), Some(stored)) = (presented, self.api_key_sha256.as_deref()) else {
            return KeyCheck::Invalid;
        };
        let Some(rest) = key.strip_prefix("afk_") else {
            return KeyCheck::Invalid;
        };
        // The secret part is always 43 base64url characters (which may themselves contain '_').
        let Some(site) = rest
            .len()
            .checked_sub(44)
            .filter(|&i| rest.is_char_boundary(i) && rest.as_bytes()[i] == b'_')
            .map(|i| &rest[..i])
        else {
            return KeyCheck::Invalid;
        };
        if site != self.site_id {
            return KeyCheck::OtherTenant;
        }
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        if bool::from(hash.as_bytes().ct_eq(stored.as_bytes())) {
            KeyCheck::Valid
        } else {
            KeyCheck::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(site: &str, hash: &str) -> Tenant {
        let mut t = Tenant::new(Platform::Demo, "demo.example", site, "2026-11-29T00:00:00Z");
        t.api_key_sha256 = Some(hash.into());
        t
    }

    #[test]
    fn api_keys_are_checked_by_hash_and_site() {
        let (key, hash) = new_api_key("s_abc").expect("random");
        assert_eq!(key.len(), "afk_s_abc_".len() + 43);
        let t = tenant("s_abc", &hash);
        assert_eq!(t.check_api_key(Some(&key)), KeyCheck::Valid);
        let mut wrong = key.clone();
        // Another last character (never the same one, which would make this key valid).
        let last = wrong.pop();
        wrong.push(if last == Some('A') { 'B' } else { 'A' });
        assert_eq!(t.check_api_key(Some(&wrong)), KeyCheck::Invalid);
        let (other, _) = new_api_key("s_other").expect("random");
        assert_eq!(t.check_api_key(Some(&other)), KeyCheck::OtherTenant);
        assert_eq!(t.check_api_key(None), KeyCheck::Invalid);
        assert_eq!(t.check_api_key(Some("Bearer nonsense")), KeyCheck::Invalid);
    }

    #[test]
    fn platforms_keep_their_stored_names() {
        for (p, name) in [
            (Platform::Shopify, "shopify"),
            (Platform::BigCommerce, "bigcommerce"),
            (Platform::Demo, "demo"),
        ] {
            assert_eq!(serde_json::to_value(p).expect("json"), name);
            assert_eq!(name.parse::<Platform>(), Ok(p));
            assert_eq!(p.to_string(), name);
        }
        assert_eq!("woo".parse::<Platform>(), Err(UnknownPlatform));
        let t = Tenant::new(
            Platform::BigCommerce,
            "stores/abc",
            "s_1",
            "2026-11-29T00:00:00Z",
        );
        assert_eq!(
            t.tenant_id,
            tenant_id_for(Platform::BigCommerce, "stores/abc")
        );
        assert_eq!(t.status, TenantStatus::Active);
    }

    #[test]
    fn tenant_ids_are_stable_and_case_blind() {
        assert_eq!(
            tenant_id_for(Platform::Shopify, "Shop.myshopify.com"),
            tenant_id_for(Platform::Shopify, "shop.myshopify.com")
        );
        assert_ne!(
            tenant_id_for(Platform::Shopify, "a.myshopify.com"),
            tenant_id_for(Platform::BigCommerce, "a.myshopify.com")
        );
    }
}

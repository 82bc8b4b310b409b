//! Personal data in, identity keys out: the only place where an email or a phone number exists in the
//! clear.
//!
//! An identity key is `HMAC-SHA256(tenant pepper, SHA-256(normalized value))`, lowercase hex. A plain
//! SHA-256 of an email can be reversed by hashing a list of known addresses; a keyed hash cannot without
//! the tenant's key (the pepper), which exists in plaintext only in memory (see the consent issue's KMS
//! data key). Different tenants have different keys, so one person's keys never match across tenants.
//!
//! Clients that only hold the SHA-256 of a normalized value (as ad and email platforms exchange them)
//! send it as `email_sha256` / `phone_sha256` and meet the same key.
//!
//! Normalization follows Meta's Conversions API parameter builder (facebook/capi-param-builder,
//! `getNormalizedEmail` / `getNormalizedPhone`), so that SHA-256 values prepared for ad platforms match:
//! - email: trimmed, lowercased, and checked against the usual address grammar;
//! - phone: the E.164 number (country code and national number) as digits without `+`, as Meta hashes
//!   it. Unlike Meta's builder (which keeps whatever digits it finds), Affinity parses with the
//!   `phonenumber` crate (Google's libphonenumber metadata) and the tenant's default region, so
//!   `(650) 123-4567` in a US store and `+1 650 123 4567` reach the same key, and text that holds no
//!   phone number is refused instead of hashed.
//!
//! Nothing here logs, and no error carries the value.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Why a personal value was refused. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    /// Not an email address.
    #[error("is not an email address")]
    NotAnEmail,
    /// Not a phone number (or not one in the tenant's default region without a country code).
    #[error("is not a phone number; give it in international form (+country code) or as the store's region uses it")]
    NotAPhone,
    /// Not 64 hexadecimal characters.
    #[error("must be the SHA-256 of the normalized value: 64 hexadecimal characters")]
    NotASha256,
}

/// A tenant's pepper: its 256-bit key for hashing personal data, in memory only. Its `Debug` prints nothing of it,
/// and it is wiped when dropped.
#[derive(Clone)]
pub struct Pepper([u8; 32]);

impl Pepper {
    /// Wraps the 32 bytes of a decrypted data key.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From a decrypted data key of any length.
    ///
    /// # Errors
    /// When it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, &'static str> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the pepper must be 32 bytes")?;
        Ok(Self(arr))
    }
}

impl Drop for Pepper {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// An identity key: 64 lowercase hex characters. Safe to store and log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey(pub String);

fn keyed(key: &Pepper, digest: &[u8]) -> IdentityKey {
    // HMAC takes keys of any length, so this cannot fail; the fallback keeps the type total.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0) else {
        return IdentityKey(String::new());
    };
    mac.update(digest);
    IdentityKey(hex::encode(mac.finalize().into_bytes()))
}

fn is_atom_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn is_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Normalizes an email: trimmed and lowercased, then checked (dot-atom local part, a domain of at least
/// two labels).
///
/// # Errors
/// [`PiiError::NotAnEmail`].
pub fn normalize_email(raw: &str) -> Result<String, PiiError> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@').ok_or(PiiError::NotAnEmail)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atom_char));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2 && domain.len() <= 253 && labels.iter().all(|l| is_label(l));
    if local_ok && domain_ok {
        Ok(e)
    } else {
        Err(PiiError::NotAnEmail)
    }
}

fn region_id(code: &str) -> Option<phonenumber::country::Id> {
    let c = code.trim();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    c.to_ascii_uppercase()
        .parse::<phonenumber::country::Id>()
        .ok()
}

/// `code` as an uppercase ISO 3166-1 alpha-2 region that phone numbers can be read in (`gb` ->
/// `GB`), or `None` when it is not one: two letters that name a region of libphonenumber's metadata
/// (which covers every ISO 3166-1 country that has a telephone numbering plan).
pub fn region(code: &str) -> Option<String> {
    region_id(code).map(|_| code.trim().to_ascii_uppercase())
}

/// Normalizes a phone number to E.164 digits without `+` (`16501234567`), reading numbers without a
/// country code in `default_region` (ISO 3166-1 alpha-2, e.g. `US`; the event's `country`, else the
/// tenant's default region).
///
/// # Errors
/// [`PiiError::NotAPhone`] when no phone number can be read (a national number without a region is
/// one).
pub fn normalize_phone(raw: &str, default_region: Option<&str>) -> Result<String, PiiError> {
    let region = default_region.and_then(region_id);
    let t = raw.trim();
    // Letters would be read as a vanity number (1-800-FLOWERS); personal numbers have none.
    if t.is_empty() || t.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(PiiError::NotAPhone);
    }
    // A number with its country code is read without the default region: the parser would otherwise
    // strip the region's national prefix from it (+33 1 42... read in the US lost its leading 1).
    let region = if t.starts_with('+') { None } else { region };
    let number = phonenumber::parse(region, t).map_err(|_| PiiError::NotAPhone)?;
    // Only numbers that can exist (libphonenumber's validity rules) become identities: fictional 555
    // numbers and typos would otherwise link strangers.
    if !number.is_valid() {
        return Err(PiiError::NotAPhone);
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    if (8..=15).contains(&digits.len()) {
        Ok(digits)
    } else {
        Err(PiiError::NotAPhone)
    }
}

fn sha256_hex_to_bytes(raw: &str) -> Result<[u8; 32], PiiError> {
    let t = raw.trim();
    if t.len() != 64 {
        return Err(PiiError::NotASha256);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(t.to_ascii_lowercase(), &mut out).map_err(|_| PiiError::NotASha256)?;
    Ok(out)
}

/// The identity key of an email.
///
/// # Errors
/// [`PiiError::NotAnEmail`].
pub fn email_key(key: &Pepper, raw: &str) -> Result<IdentityKey, PiiError> {
    let normalized = normalize_email(raw)?;
    Ok(keyed(key, &Sha256::digest(normalized.as_bytes())))
}

/// The identity key of an email given as the SHA-256 (hex) of its normalized form.
///
/// # Errors
/// [`PiiError::NotASha256`].
pub fn email_sha256_key(key: &Pepper, hex_digest: &str) -> Result<IdentityKey, PiiError> {
    Ok(keyed(key, &sha256_hex_to_bytes(hex_digest)?))
}

/// The identity key of a phone number.
///
/// # Errors
/// [`PiiError::NotAPhone`].
pub fn phone_key(
    key: &Pepper,
    raw: &str,
    default_region: Option<&str>,
) -> Result<IdentityKey, PiiError> {
    let normalized = normalize_phone(raw, default_region)?;
    Ok(keyed(key, &Sha256::digest(normalized.as_bytes())))
}

/// The identity key of a phone number given as the SHA-256 (hex) of its E.164 digits.
///
/// # Errors
/// [`PiiError::NotASha256`].
pub fn phone_sha256_key(key: &Pepper, hex_digest: &str) -> Result<IdentityKey, PiiError> {
    Ok(keyed(key, &sha256_hex_to_bytes(hex_digest)?))
}

/// What an event's personal fields give: their identity keys, and the fields that could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct Identities {
    /// `e:{hex}` for `email`/`email_sha256`, `p:{hex}` for `phone`/`phone_sha256`, distinct, in that
    /// order.
    pub keys: Vec<String>,
    /// The fields that could not be read, and why (never their values). They are dropped; the rest of
    /// the event is kept.
    pub unreadable: Vec<(&'static str, PiiError)>,
}

/// The identity keys of an event's personal fields (see [`Identities`]): each field is normalized and
/// hashed on its own, so one unreadable field (a national phone number of an unknown region, a
/// malformed email) costs only itself.
pub fn identities(
    key: &Pepper,
    fields: &crate::event::PiiFields,
    default_region: Option<&str>,
) -> Identities {
    use crate::ids::ShopperKey;
    let mut out = Identities::default();
    let mut push = |field: &'static str, k: Result<ShopperKey, PiiError>| match k {
        Ok(k) => {
            let k = k.to_key();
            if !out.keys.contains(&k) {
                out.keys.push(k);
            }
        }
        Err(e) => out.unreadable.push((field, e)),
    };
    let email = |k: IdentityKey| ShopperKey::Email(k.0);
    let phone = |k: IdentityKey| ShopperKey::Phone(k.0);
    if let Some(v) = &fields.email {
        push("email", email_key(key, v).map(email));
    }
    if let Some(v) = &fields.email_sha256 {
        push("email_sha256", email_sha256_key(key, v).map(email));
    }
    if let Some(v) = &fields.phone {
        push("phone", phone_key(key, v, default_region).map(phone));
    }
    if let Some(v) = &fields.phone_sha256 {
        push("phone_sha256", phone_sha256_key(key, v).map(phone));
    }
    out
}

/// Where a function gets a tenant's pepper: [`crate::kms::Peppers`] in Lambda, a fixed key in tests.
pub trait PepperSource: Send + Sync {
    /// The tenant's pepper.
    ///
    /// # Errors
    /// [`crate::kms::KmsError::Unavailable`] (retry), `Refused` / `Missing` (the tenant's key cannot
    /// be used: permanent), `Malformed`.
    fn pepper(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> impl std::future::Future<Output = Result<std::sync::Arc<Pepper>, crate::kms::KmsError>> + Send;

    /// Forgets the tenant's pepper if it is held in memory (its deletion started). Called by
    /// [`crate::admit::admit_tenant_evicting`] when it sees the tenant `deleting`.
    fn forget(&self, tenant_id: &str);
}

impl PepperSource for crate::kms::Peppers {
    async fn pepper(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<Pepper>, crate::kms::KmsError> {
        self.get(tenant).await
    }

    fn forget(&self, tenant_id: &str) {
        crate::kms::Peppers::forget(self, tenant_id);
    }
}

/// A test double: every tenant's key is derived from its tenant id (distinct per tenant, fixed).
#[cfg(feature = "test-doubles")]
#[derive(Debug, Default, Clone, Copy)]
pub struct DerivedPeppers;

#[cfg(feature = "test-doubles")]
impl PepperSource for DerivedPeppers {
    async fn pepper(
        &self,
        tenant: &crate::tenant::Tenant,
    ) -> Result<std::sync::Arc<Pepper>, crate::kms::KmsError> {
        let d = Sha256::digest(tenant.tenant_id.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(&d);
        Ok(std::sync::Arc::new(Pepper::new(k)))
    }

    /// Holds nothing, so forgets nothing.
    fn forget(&self, _tenant_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Pepper {
        Pepper::new([b; 32])
    }

    #[test]
    fn the_same_address_however_written_meets_one_key_and_its_sha256_too() {
        let k = key(7);
        let a = email_key(&k, " Jane.Doe@Example.com ").expect("email");
        let b = email_key(&k, "jane.doe@example.com").expect("email");
        assert_eq!(a, b);
        let sha = hex::encode(Sha256::digest(b"jane.doe@example.com"));
        assert_eq!(email_sha256_key(&k, &sha.to_uppercase()).expect("sha"), a);
        assert_eq!(a.0.len(), 64);
    }

    #[test]
    fn tenants_never_share_a_key_and_the_key_is_not_the_plain_hash() {
        let a = email_key(&key(1), "jane.doe@example.com").expect("email");
        let b = email_key(&key(2), "jane.doe@example.com").expect("email");
        assert_ne!(a, b);
        assert_ne!(a.0, hex::encode(Sha256::digest(b"jane.doe@example.com")));
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3 (key "Jefe"): checks that `keyed` is a standard HMAC-SHA256.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn an_unreadable_field_costs_only_itself() {
        let fields = crate::event::PiiFields {
            email: Some("Jane@Example.com".into()),
            phone: Some("650 253 0000".into()),
            ..Default::default()
        };
        // No region: the national number cannot be read; the email still gives its key.
        let got = identities(&key(1), &fields, None);
        assert_eq!(got.keys.len(), 1);
        assert!(got.keys[0].starts_with("e:"));
        assert_eq!(got.unreadable, [("phone", PiiError::NotAPhone)]);
        // With the store's region both are read.
        let got = identities(&key(1), &fields, Some("US"));
        assert_eq!(got.keys.len(), 2);
        assert!(got.unreadable.is_empty());
    }

    #[test]
    fn phones_in_national_and_international_form_meet() {
        let k = key(3);
        let national = phone_key(&k, "(650) 253-0000", Some("US")).expect("phone");
        let intl = phone_key(&k, "+1 650-253-0000", None).expect("phone");
        assert_eq!(national, intl);
        assert_eq!(
            normalize_phone("+44 20 7946 0958", Some("US")).expect("uk"),
            "442079460958"
        );
        assert_eq!(
            normalize_phone("020 7946 0958", Some("GB")).expect("uk"),
            "442079460958"
        );
        let sha = hex::encode(Sha256::digest(b"16502530000"));
        assert_eq!(phone_sha256_key(&k, &sha).expect("sha"), intl);
    }

    /// National formats as people type them, each read in its own country: the UK number is one of
    /// Ofcom's numbers reserved for drama (020 7946 0xxx), the US one Google's switchboard (the
    /// example of libphonenumber's documentation), the French one the usual Paris example of the
    /// 01 range of ARCEP's plan.
    #[test]
    fn national_numbers_are_read_in_the_events_country_or_the_stores_region() {
        let cases = [
            ("020 7946 0958", "GB", "442079460958"),
            ("(650) 253-0000", "US", "16502530000"),
            ("01 23 45 67 89", "FR", "33123456789"),
        ];
        for (national, region, e164) in cases {
            assert_eq!(
                normalize_phone(national, Some(region)),
                Ok(e164.to_string()),
                "{national}"
            );
            // Lowercase codes are read too; the international form needs no region.
            assert_eq!(
                normalize_phone(national, Some(&region.to_lowercase())),
                Ok(e164.to_string())
            );
            assert_eq!(
                normalize_phone(&format!("+{e164}"), None),
                Ok(e164.to_string())
            );
            assert_eq!(normalize_phone(national, None), Err(PiiError::NotAPhone));
        }
        // Read in the wrong country, a national number is another number or none.
        assert_ne!(
            normalize_phone("020 7946 0958", Some("FR")).ok().as_deref(),
            Some("442079460958")
        );
        // Through `identities`, the event's country decides; without any region the phone is
        // unreadable, the email still counts.
        let k = key(5);
        let fields = crate::event::PiiFields {
            email: Some("jane@example.com".into()),
            phone: Some("020 7946 0958".into()),
            ..Default::default()
        };
        let gb = identities(&k, &fields, Some("GB"));
        assert_eq!(gb.keys.len(), 2);
        assert_eq!(
            gb.keys[1],
            format!(
                "p:{}",
                phone_key(&k, "+44 20 7946 0958", None).expect("uk").0
            )
        );
        let none = identities(&k, &fields, None);
        assert_eq!(none.keys.len(), 1);
        assert_eq!(none.unreadable, [("phone", PiiError::NotAPhone)]);
    }

    #[test]
    fn regions_are_iso_alpha_2_codes_with_a_numbering_plan() {
        assert_eq!(region(" gb "), Some("GB".to_string()));
        assert_eq!(region("FR"), Some("FR".to_string()));
        for bad in ["GBR", "G", "", "12", "ZZ", "U\u{0}"] {
            assert_eq!(region(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_never_echo_the_value() {
        let e = email_key(&key(1), "jane.doe@@example.com").expect_err("bad");
        assert!(!e.to_string().contains("jane"));
        assert!(!format!("{:?}", key(9)).contains('9'));
    }
}

#[cfg(test)]
mod meta_vectors {
    //! Meta's normalization cases (tests/fixtures/pii-hashing, see its PROVENANCE.md) as tests.
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/pii-hashing/meta-normalization-vectors.json"
        ))
        .expect("vectors")
    }

    #[test]
    fn emails_normalize_as_meta_does_except_bare_hashes() {
        let all = vectors();
        let mut compared = 0;
        for v in all["email"].as_array().expect("email") {
            let input = v["input"].as_str().expect("input");
            let ours = normalize_email(input).ok();
            let meta = v["expected_normalized"].as_str();
            let is_hash = input.len() == 64 && input.chars().all(|c| c.is_ascii_alphanumeric());
            if is_hash && meta.is_some() {
                // Differs on purpose: Meta passes a 64-hex `email` through as already hashed; Affinity takes
                // hashes only in `email_sha256`, so a typo can never turn an address into a "hash".
                assert_eq!(ours, None, "{input}");
                assert!(email_sha256_key(&Pepper::new([0; 32]), input).is_ok());
                continue;
            }
            assert_eq!(ours.as_deref(), meta, "{input:?}");
            if let (Some(n), Some(h)) = (&ours, v["sha256_of_expected"].as_str()) {
                assert_eq!(hex::encode(Sha256::digest(n.as_bytes())), h);
            }
            compared += 1;
        }
        assert_eq!(compared, 57);
    }

    #[test]
    fn phones_that_exist_normalize_as_meta_does_and_the_rest_are_refused() {
        let all = vectors();
        let mut accepted = Vec::new();
        for v in all["phone"].as_array().expect("phone") {
            let input = v["input"].as_str().expect("input");
            match normalize_phone(input, Some("US")) {
                Ok(n) => {
                    assert_eq!(
                        Some(n.as_str()),
                        v["expected_normalized"].as_str(),
                        "{input:?}"
                    );
                    if let Some(h) = v["sha256_of_expected"].as_str() {
                        assert_eq!(hex::encode(Sha256::digest(n.as_bytes())), h);
                    }
                    accepted.push(input);
                }
                // Differs on purpose. Meta keeps whatever digits it finds ("1-800-FLOWERS" -> "1800",
                // "911", "00001" -> "1") and passes 64-hex input through; Affinity refuses text that is not
                // a valid number (libphonenumber's rules, which also reject the fictional 555 and
                // 650-123 numbers of these cases) and takes hashes only in `phone_sha256`.
                Err(e) => assert_eq!(e, PiiError::NotAPhone),
            }
        }
        assert_eq!(accepted, ["+33 1 42 86 83 26", "+61 2 9374 4000"]);
    }
}

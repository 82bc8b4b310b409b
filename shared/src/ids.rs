//! Identifier newtypes that own their rules and the messages that explain them.
//!
//! - [`SiteId`]: the public id a storefront sends (`/v1/sites/{site_id}/...`);
//! - [`GuestId`], [`CustomerId`]: who a shopper is on the storefront and on the platform;
//! - [`ShopperKey`]: the key of a shopper's item in the profiles table, `g:{guest id}`,
//!   `c:{customer id}`, `e:{email identity key}` or `p:{phone identity key}`: the one place these
//!   prefixes are written and read.
//!
//! Ids are 1-128 bytes of `A-Z a-z 0-9 _ = / + . - :` (guest ids without `:`); `#` is never allowed,
//! since it separates the parts of storage keys.

use std::fmt;
use std::ops::Deref;

use crate::http::ApiError;

/// The rule every id follows, as said to clients.
pub const ID_RULE: &str = "must be 1-128 characters of letters, digits and _=/+.-:";
/// The rule of guest ids, as said to clients.
pub const GUEST_ID_RULE: &str = "must be 1-128 characters of letters, digits and _=/+.-";

/// Whether `s` follows the id rule ([`ID_RULE`]; without `:` when `colon` is false, [`GUEST_ID_RULE`]).
pub(crate) fn id_chars_ok(s: &str, colon: bool) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'=' | b'/' | b'+' | b'.' | b'-')
                || (colon && b == b':')
        })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, colon = $colon:expr, rule = $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id, if `s` follows the rule.
            ///
            /// # Errors
            /// The rule it breaks, as said to clients (never the value).
            pub fn parse(s: &str) -> Result<Self, &'static str> {
                if id_chars_ok(s, $colon) {
                    Ok(Self(s.to_string()))
                } else {
                    Err($rule)
                }
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant's public site id.
    SiteId, colon = true, rule = ID_RULE
);
id_type!(
    /// A storefront's guest id (the shopper's cookie).
    GuestId, colon = false, rule = GUEST_ID_RULE
);
id_type!(
    /// The platform's customer id of a logged-in shopper.
    CustomerId, colon = true, rule = ID_RULE
);

impl SiteId {
    /// The site id of a route: a malformed one cannot belong to any tenant.
    ///
    /// # Errors
    /// 404 `unknown_site`.
    pub fn from_route(s: &str) -> Result<Self, ApiError> {
        Self::parse(s).map_err(|_| ApiError::unknown_site())
    }
}

/// The key of a shopper's item in the profiles table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShopperKey {
    /// `g:{guest id}`: a browser's profile (or its alias to a customer).
    Guest(String),
    /// `c:{customer id}`: a logged-in customer's profile.
    Customer(String),
    /// `e:{64 hex}`: the keyed hash of an email ([`crate::pii::email_key`]).
    Email(String),
    /// `p:{64 hex}`: the keyed hash of a phone number ([`crate::pii::phone_key`]).
    Phone(String),
}

impl ShopperKey {
    /// The stored key, e.g. `g:abc`.
    pub fn to_key(&self) -> String {
        self.to_string()
    }

    /// The key of a stored item, `None` when it has no known prefix.
    pub fn parse(key: &str) -> Option<Self> {
        let (prefix, id) = key.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        let id = id.to_string();
        match prefix {
            "g" => Some(Self::Guest(id)),
            "c" => Some(Self::Customer(id)),
            "e" => Some(Self::Email(id)),
            "p" => Some(Self::Phone(id)),
            _ => None,
        }
    }

    /// The id after the prefix.
    pub fn id(&self) -> &str {
        match self {
            Self::Guest(s) | Self::Customer(s) | Self::Email(s) | Self::Phone(s) => s,
        }
    }

    /// An email or phone key (an identity key, not a profile).
    pub fn is_identity(&self) -> bool {
        matches!(self, Self::Email(_) | Self::Phone(_))
    }
}

impl fmt::Display for ShopperKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self {
            Self::Guest(_) => "g",
            Self::Customer(_) => "c",
            Self::Email(_) => "e",
            Self::Phone(_) => "p",
        };
        write!(f, "{prefix}:{}", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_prefixes() {
        for k in [
            ShopperKey::Guest("abc".into()),
            ShopperKey::Customer("77001".into()),
            ShopperKey::Email("ab".repeat(32)),
            ShopperKey::Phone("cd".repeat(32)),
        ] {
            assert_eq!(ShopperKey::parse(&k.to_key()), Some(k.clone()));
        }
        assert_eq!(ShopperKey::Guest("x".into()).to_key(), "g:x");
        assert_eq!(ShopperKey::parse("x:1"), None);
        assert_eq!(ShopperKey::parse("g:"), None);
        assert_eq!(ShopperKey::parse("nocolon"), None);
    }

    #[test]
    fn ids_follow_their_rules() {
        assert!(GuestId::parse("550e8400-e29b-41d4-a716-446655440000").is_ok());
        assert_eq!(GuestId::parse("a:b"), Err(GUEST_ID_RULE));
        assert!(CustomerId::parse("gid:shopify/1").is_ok());
        assert_eq!(CustomerId::parse(""), Err(ID_RULE));
        assert_eq!(CustomerId::parse(&"x".repeat(129)), Err(ID_RULE));
        assert_eq!(SiteId::parse("a#b"), Err(ID_RULE));
        assert_eq!(
            SiteId::from_route("a#b").expect_err("404").status.as_u16(),
            404
        );
    }
}

//! The events the importer sends, serialized exactly as the ingest API expects them.

use serde::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The event types, products and lines the API reads, defined once for the functions and the importer
/// (the `affinity-wire` crate, which does not pull in the AWS SDK). A [`Line`] is serialized flat, as the
/// API reads it: `{id, category, brand, price, quantity}` (the price in the order's currency).
pub use affinity_wire::{EventType, Line, Product};

/// One shopper behaviour, as sent in the `events` array of an ingest request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The guest id the event is attributed to (1–128 chars of `[A-Za-z0-9_=/+.-]`).
    pub shopper_id: String,
    /// The store's customer id, when the shopper is known to be a customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The storefront session, when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Deterministic id derived from the source row (e.g. `rees46-{line}`), so a re-run is
    /// recognised by the API as duplicates instead of being counted twice.
    pub event_id: String,
    /// When it happened, in milliseconds since the Unix epoch; sent as an RFC 3339 string.
    #[serde(rename = "timestamp", serialize_with = "serialize_epoch_ms")]
    pub timestamp_ms: i64,
    /// The search text of a `search` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The product of a view, click or cart event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// The lines of a purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Line>>,
    /// The order id of a purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The ISO 4217 currency of a purchase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The source line the event was built from (the first line, for a grouped purchase).
    /// Not sent.
    #[serde(skip)]
    pub line: u64,
}

impl Event {
    /// An event of `kind` by `shopper_id` at `timestamp_ms` with id `event_id`, from source line
    /// `line`; every optional field empty (set them with struct update syntax).
    pub fn new(
        kind: EventType,
        shopper_id: String,
        event_id: String,
        timestamp_ms: i64,
        line: u64,
    ) -> Self {
        Event {
            kind,
            shopper_id,
            customer_id: None,
            session_id: None,
            event_id,
            timestamp_ms,
            query: None,
            product: None,
            items: None,
            order_id: None,
            currency: None,
            line,
        }
    }

    /// The product ids this event mentions (its product, or its purchase items).
    pub fn product_ids(&self) -> impl Iterator<Item = &str> {
        let single = self.product.iter().map(|p| p.id.as_str());
        let items = self.items.iter().flatten().map(|i| i.product.id.as_str());
        single.chain(items)
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC (`2019-10-01T00:00:00Z`, with a fraction only
/// when the milliseconds are not zero).
pub fn format_epoch_ms(ms: i64) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    at.format(&Rfc3339).ok()
}

fn serialize_epoch_ms<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    match format_epoch_ms(*ms) {
        Some(text) => serializer.serialize_str(&text),
        None => Err(serde::ser::Error::custom(format!(
            "timestamp {ms} ms is outside the RFC 3339 range"
        ))),
    }
}

/// Most items the API takes in one purchase.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity the API takes for one item.
pub const MAX_QUANTITY: u32 = 100_000;
/// Longest category or brand the API takes, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// True when `id` is a valid shopper (guest) id for the API: 1–128 characters of
/// `[A-Za-z0-9_=/+.-]`.
pub fn is_valid_shopper_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'/' | b'+' | b'.' | b'-')
        })
}

/// True when `id` is a valid customer, session, event or order id for the API: 1–128
/// characters of `[A-Za-z0-9_=/+.:-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'/' | b'+' | b'.' | b'-' | b':')
        })
}

/// True when `id` is a valid product id for the API: 1–128 bytes, not blank, without `#`.
pub fn is_valid_product_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= 128 && !id.contains('#')
}

/// A category or brand as the API takes it: `Ok(None)` when empty, an error text when longer
/// than [`MAX_NAME_CHARS`] characters or holding control characters.
pub fn name_field(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else if text.chars().count() > MAX_NAME_CHARS {
        Err(format!("longer than {MAX_NAME_CHARS} characters"))
    } else if text.chars().any(char::is_control) {
        Err("holds control characters".to_string())
    } else {
        Ok(Some(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_event_serializes_to_the_api_shape() {
        let event = Event {
            kind: EventType::View,
            shopper_id: "541312140".into(),
            customer_id: None,
            session_id: Some("72d76fde-8bb3-4e00-8c23-a032dfed738c".into()),
            event_id: "rees46-2".into(),
            timestamp_ms: 1_569_888_000_000,
            query: None,
            product: Some(Product {
                id: "44600062".into(),
                category: Some("2103807459595387724".into()),
                brand: Some("shiseido".into()),
                price: Some(35.79),
            }),
            items: None,
            order_id: None,
            currency: None,
            line: 2,
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert_eq!(
            json,
            r#"{"type":"view","shopper_id":"541312140","session_id":"72d76fde-8bb3-4e00-8c23-a032dfed738c","event_id":"rees46-2","timestamp":"2019-10-01T00:00:00Z","product":{"id":"44600062","category":"2103807459595387724","brand":"shiseido","price":35.79}}"#
        );
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(
            format_epoch_ms(1_473_757_493_213).as_deref(),
            Some("2016-09-13T09:04:53.213Z")
        );
        assert_eq!(format_epoch_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn shopper_id_rules() {
        assert!(is_valid_shopper_id("uci-12923"));
        assert!(is_valid_shopper_id("a/b+c=d_e.f-g"));
        assert!(!is_valid_shopper_id(""));
        assert!(!is_valid_shopper_id("has space"));
        assert!(!is_valid_shopper_id("ümlaut"));
        assert!(is_valid_shopper_id(&"x".repeat(128)));
        assert!(!is_valid_shopper_id(&"x".repeat(129)));
        // Order and session ids may also hold ':'; shopper ids may not.
        assert!(is_valid_id("ORD:1"));
        assert!(!is_valid_shopper_id("ORD:1"));
        assert!(!is_valid_id("a#b"));
    }

    #[test]
    fn product_ids_and_names() {
        assert!(is_valid_product_id("GGOEGAAX0074"));
        assert!(is_valid_product_id("9180753 B"));
        assert!(!is_valid_product_id("a#1"));
        assert!(!is_valid_product_id("  "));
        assert!(!is_valid_product_id(&"p".repeat(129)));
        assert_eq!(name_field(" samsung "), Ok(Some("samsung".to_string())));
        assert_eq!(name_field(""), Ok(None));
        assert!(name_field(&"c".repeat(257)).is_err());
        assert!(name_field("a\u{7}b").is_err());
    }
}

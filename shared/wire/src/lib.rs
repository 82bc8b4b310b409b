//! The words of Affinity's ingest API that both sides of it speak: the event types, a product and a
//! line of an order or cart, with their JSON names (`EVENTS.md`, `openapi.yaml`). The functions
//! (through `affinity::event`, which validates them) and the importer (which writes them) use these
//! one definitions. The crate has no dependency beyond serde, so a tool that only sends events does
//! not build the AWS SDK.

use serde::{Deserialize, Serialize};

/// The shopper behaviours the help article lists, plus cart removal and recommendation impressions.
/// Serialized as its wire name ([`EventType::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Search terms entered in the store (the event's `query`).
    Search,
    /// A product page viewed.
    View,
    /// An item clicked in a list, a search result or a recommendation.
    Click,
    /// A product put in the cart.
    CartAdd,
    /// A product taken out of the cart.
    CartRemove,
    /// An order placed (`items`, `order_id` and `currency`).
    Purchase,
    /// A recommended product shown to the shopper (at least half of it visible for a second), with the
    /// answer's `recommendation_id`: for click-through attribution only, it moves no affinity.
    Impression,
}

impl EventType {
    /// Every type, in the order of the API's documentation.
    pub const ALL: [EventType; 7] = [
        Self::Search,
        Self::View,
        Self::Click,
        Self::CartAdd,
        Self::CartRemove,
        Self::Purchase,
        Self::Impression,
    ];

    /// Parses the wire name (`search`, `view`, `click`, `cart_add`, `cart_remove`, `purchase`,
    /// `impression`); `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The wire name, as in the API's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::View => "view",
            Self::Click => "click",
            Self::CartAdd => "cart_add",
            Self::CartRemove => "cart_remove",
            Self::Purchase => "purchase",
            Self::Impression => "impression",
        }
    }
}

/// A product as an event names it. `price` is a unit price in the event's currency, in major units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// The merchant's product id (SKU, stock code, ...).
    pub id: String,
    /// Category name or path, as the store names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Brand name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// A line of an order or a cart: a product and a quantity (at least 1). On the wire it is flat:
/// `{id, category, brand, price, quantity}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The product.
    #[serde(flatten)]
    pub product: Product,
    /// Units, at least 1.
    pub quantity: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_wire_name_and_serializes_as_it() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::json!(t.as_str()))
            );
        }
        assert_eq!(EventType::parse("cart"), None);
        assert_eq!(EventType::parse("View"), None);
    }

    #[test]
    fn a_line_is_flat_on_the_wire_and_leaves_out_what_is_unknown() {
        let line = Line {
            product: Product {
                id: "85123A".into(),
                category: None,
                brand: Some("acme".into()),
                price: Some(2.55),
            },
            quantity: 6,
        };
        assert_eq!(
            serde_json::to_string(&line).ok().as_deref(),
            Some(r#"{"id":"85123A","brand":"acme","price":2.55,"quantity":6}"#)
        );
    }
}

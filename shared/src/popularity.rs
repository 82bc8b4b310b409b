//! A tenant's product popularity: time-decayed points per product, aggregated asynchronously from the
//! events table's stream by the `aggregate` function (one write per tenant per stream batch, never one
//! per product or per event).

use serde::{Deserialize, Serialize};

use crate::event::{EventType, Product};
use crate::profile::Decay;

/// Most products kept per tenant (the most popular).
pub const MAX_PRODUCTS: usize = 1000;
/// Most bytes the products may take in the stored item ([`Popularity::approx_bytes`]): with long ids
/// and names, fewer than [`MAX_PRODUCTS`] are kept, so the item stays far below DynamoDB's 400 KB.
pub const MAX_PRODUCT_BYTES: usize = 96 * 1024;
/// Event fingerprints kept to recognise a stream record delivered again (Lambda re-sends the rest of a
/// batch after a reported failure): two full stream batches of 1,000.
pub const MAX_APPLIED: usize = 2048;

/// One product's popularity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductScore {
    /// Product id.
    pub id: String,
    /// Category, as last seen on an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Brand, as last seen on an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Decayed points as of [`Popularity::ref_ms`].
    pub score: f64,
}

/// The tenant's popularity table, most popular first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Popularity {
    /// Reference time of the scores, epoch ms.
    pub ref_ms: i64,
    /// Products, most popular first, at most [`MAX_PRODUCTS`] and [`MAX_PRODUCT_BYTES`].
    #[serde(default)]
    pub products: Vec<ProductScore>,
    /// Fingerprints of the last [`MAX_APPLIED`] events folded in ([`applied_fingerprint`]), newest
    /// last: one binary attribute of 8 bytes each.
    #[serde(default, with = "crate::profile::fingerprints")]
    pub applied: Vec<u64>,
}

/// The fingerprint of a stored event (its key: shopper and event id) in [`Popularity::applied`].
pub fn applied_fingerprint(shopper_id: &str, event_id: &str) -> u64 {
    crate::profile::event_fingerprint(&format!("{shopper_id}#{event_id}"))
}

impl Popularity {
    /// Adds the products of one event, weighted like profile affinities (a search adds nothing, a removal
    /// from the cart takes a point away, never below zero).
    pub fn add(&mut self, kind: EventType, products: &[&Product], at_ms: i64, decay: &Decay) {
        if at_ms > self.ref_ms {
            let f = if self.ref_ms == 0 {
                1.0
            } else {
                decay.factor(at_ms - self.ref_ms)
            };
            for p in &mut self.products {
                p.score *= f;
            }
            self.ref_ms = at_ms;
        }
        let w = decay.weights.of(kind);
        if w == 0.0 {
            return;
        }
        let points = w * decay.factor(self.ref_ms - at_ms);
        for p in products {
            match self.products.iter_mut().find(|s| s.id == p.id) {
                Some(s) => {
                    s.score = (s.score + points).max(0.0);
                    if p.category.is_some() {
                        s.category.clone_from(&p.category);
                    }
                    if p.brand.is_some() {
                        s.brand.clone_from(&p.brand);
                    }
                }
                None if points > 0.0 => self.products.push(ProductScore {
                    id: p.id.clone(),
                    category: p.category.clone(),
                    brand: p.brand.clone(),
                    score: points,
                }),
                None => {}
            }
        }
    }

    /// Sorts most popular first and keeps [`MAX_PRODUCTS`], fewer when they would pass
    /// [`MAX_PRODUCT_BYTES`]; keeps the last [`MAX_APPLIED`] fingerprints.
    pub fn trim(&mut self) {
        self.products.retain(|p| p.score > 0.0);
        self.products
            .sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        self.products.truncate(MAX_PRODUCTS);
        let mut bytes = 0;
        let fits = self
            .products
            .iter()
            .take_while(|p| {
                bytes += Self::product_bytes(p);
                bytes <= MAX_PRODUCT_BYTES
            })
            .count();
        self.products.truncate(fits);
        let excess = self.applied.len().saturating_sub(MAX_APPLIED);
        self.applied.drain(..excess);
    }

    /// An upper bound of one product's stored bytes: its JSON form (`{"id":"…","category":"…",
    /// "brand":"…","score":…},`, the score at 24 bytes, an f64's longest), which is larger than
    /// DynamoDB's count of the same map (attribute names and values, 3 bytes a map, 1 an element).
    fn product_bytes(p: &ProductScore) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 14);
        p.id.len() + 8 + opt(&p.category) + opt(&p.brand) + 9 + 24 + 2
    }

    /// An upper estimate of the stored item's bytes.
    pub fn approx_bytes(&self) -> usize {
        let products: usize = self.products.iter().map(Self::product_bytes).sum();
        128 + products + 8 * self.applied.len()
    }

    /// Whether the event with this fingerprint was folded in already.
    pub fn was_applied(&self, fingerprint: u64) -> bool {
        self.applied.contains(&fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod(id: &str, cat: &str) -> Product {
        Product {
            id: id.into(),
            category: Some(cat.into()),
            brand: None,
            price: None,
        }
    }

    #[test]
    fn purchases_outweigh_views_and_old_points_fade() {
        let d = Decay::default();
        let mut p = Popularity::default();
        let a = prod("a", "x");
        let b = prod("b", "y");
        let day = 86_400_000;
        for i in 0..5 {
            p.add(EventType::View, &[&a], 1_000 + i, &d);
        }
        p.add(EventType::Purchase, &[&b], 1_000 + 30 * day, &d);
        p.trim();
        assert_eq!(p.products[0].id, "b");
        assert!((p.products[0].score - 8.0).abs() < 1e-12);
        assert!((p.products[1].score - 2.5).abs() < 1e-6);
    }

    #[test]
    fn keeps_at_most_the_limit() {
        let d = Decay::default();
        let mut p = Popularity::default();
        let items: Vec<Product> = (0..MAX_PRODUCTS + 5)
            .map(|i| prod(&format!("p{i}"), "c"))
            .collect();
        for (i, it) in items.iter().enumerate() {
            p.add(EventType::View, &[it], 1_000 + i as i64, &d);
        }
        p.trim();
        assert_eq!(p.products.len(), MAX_PRODUCTS);
        // The newest events decayed least, so the oldest products fell off.
        assert!(p.products.iter().all(|s| s.id != "p0"));
    }

    #[test]
    fn long_names_keep_the_item_within_its_byte_bound() {
        let d = Decay::default();
        let mut p = Popularity::default();
        let long = "\u{1F6CB}".repeat(64); // 256 bytes of 4-byte characters
        let items: Vec<Product> = (0..MAX_PRODUCTS)
            .map(|i| Product {
                id: format!("{i:0>128}"),
                category: Some(long.clone()),
                brand: Some(long.clone()),
                price: None,
            })
            .collect();
        for (i, it) in items.iter().enumerate() {
            p.add(EventType::View, &[it], 1_000 + i as i64, &d);
        }
        p.applied = (0..3 * MAX_APPLIED as u64).collect();
        p.trim();
        assert!(p.products.len() < MAX_PRODUCTS && p.products.len() > 100);
        let stored = serde_json::to_string(&p.products).expect("json");
        assert!(stored.len() <= MAX_PRODUCT_BYTES, "{}", stored.len());
        assert_eq!(p.applied.len(), MAX_APPLIED);
        assert_eq!(p.applied[0], 2 * MAX_APPLIED as u64);
        assert!(p.approx_bytes() < 128 * 1024);
    }
}

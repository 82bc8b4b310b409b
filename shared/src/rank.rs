//! Ranking: a shopper's preferred categories and brands matched against the tenant's popular products.

use serde::Serialize;

use crate::popularity::Popularity;
use crate::profile::{Affinity, Decay, Profile};

/// Preferred categories and brands used for matching (the strongest few).
pub const MATCH_TOP: usize = 5;
/// Preferred categories and brands shown in an answer.
pub const SHOW_TOP: usize = 10;

/// Why an item was recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// In one of the shopper's preferred categories (the stronger match).
    PreferredCategory,
    /// Of one of the shopper's preferred brands (the stronger match).
    PreferredBrand,
    /// Popular in the store right now; for shoppers without history, and to fill the list.
    Trending,
    /// Other shoppers viewed it in the same sessions as a product of this session ("viewed with X").
    ViewedWith,
    /// The shopper viewed it earlier in this session ("you looked at this").
    ViewedBefore,
    /// Other shoppers put it in the cart or bought it with a product of the anchors ("bought with X").
    BoughtWith,
    /// Popular in the category of the product on screen ("also in sofas").
    SameCategory,
}

/// One recommended product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Product id.
    pub product_id: String,
    /// Category.
    pub category: Option<String>,
    /// Brand.
    pub brand: Option<String>,
    /// Popularity decayed to now times the match strength (0–2); trending items carry popularity alone.
    pub score: f64,
    /// Why.
    pub reason: Reason,
}

/// A scored name, as answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Category or brand.
    pub name: String,
    /// Affinity points decayed to now.
    pub score: f64,
}

/// The recommendation answer: `{"shopper_id", "preferred_categories", "preferred_brands", "items"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    /// The shopper asked about.
    pub shopper_id: String,
    /// Strongest categories first.
    pub preferred_categories: Vec<Scored>,
    /// Strongest brands first.
    pub preferred_brands: Vec<Scored>,
    /// At most `limit` items, best first.
    pub items: Vec<Item>,
}

/// Rounds to 6 significant digits, so answers stay readable and stable.
fn round6(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = x.abs().log10().floor() as i32;
    let f = 10f64.powi(5 - mag);
    (x * f).round() / f
}

fn weights(list: &[Affinity]) -> Vec<(&str, f64)> {
    let max = list.first().map_or(0.0, |a| a.score);
    if max <= 0.0 {
        return Vec::new();
    }
    list.iter()
        .take(MATCH_TOP)
        .map(|a| (a.name.as_str(), a.score / max))
        .collect()
}

/// Ranks `popularity` for the shopper of `profile` (none: an unknown shopper) at `now_ms`.
///
/// Items in the shopper's strongest categories and brands come first, scored by popularity times match
/// strength (the category's and the brand's affinity relative to the shopper's strongest, summed), then
/// trending products fill the list. Purchased products are never recommended.
pub fn recommend(
    shopper_id: &str,
    profile: Option<&Profile>,
    popularity: Option<&Popularity>,
    limit: usize,
    now_ms: i64,
    decay: &Decay,
) -> Recommendations {
    let empty = Profile::default();
    let profile = profile.unwrap_or(&empty);
    let cats = Profile::scores_at(&profile.categories, profile.ref_ms, now_ms, decay);
    let brands = Profile::scores_at(&profile.brands, profile.ref_ms, now_ms, decay);
    let cat_w = weights(&profile.categories);
    let brand_w = weights(&profile.brands);
    let mut items: Vec<Item> = Vec::new();
    if let Some(pop) = popularity {
        let f = decay.factor((now_ms - pop.ref_ms).max(0));
        let bought = |id: &str| profile.purchased.iter().any(|s| s.id == id);
        let lookup = |w: &[(&str, f64)], name: &Option<String>| {
            name.as_deref()
                .and_then(|n| w.iter().find(|(k, _)| *k == n))
                .map_or(0.0, |(_, x)| *x)
        };
        let mut matched: Vec<Item> = pop
            .products
            .iter()
            .filter(|p| !bought(&p.id))
            .filter_map(|p| {
                let c = lookup(&cat_w, &p.category);
                let b = lookup(&brand_w, &p.brand);
                (c + b > 0.0).then(|| Item {
                    product_id: p.id.clone(),
                    category: p.category.clone(),
                    brand: p.brand.clone(),
                    score: p.score * f * (c + b),
                    reason: if c >= b {
                        Reason::PreferredCategory
                    } else {
                        Reason::PreferredBrand
                    },
                })
            })
            .collect();
        matched.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.product_id.cmp(&b.product_id))
        });
        matched.truncate(limit);
        items = matched;
        for p in &pop.products {
            if items.len() >= limit {
                break;
            }
            if bought(&p.id) || items.iter().any(|i| i.product_id == p.id) {
                continue;
            }
            items.push(Item {
                product_id: p.id.clone(),
                category: p.category.clone(),
                brand: p.brand.clone(),
                score: p.score * f,
                reason: Reason::Trending,
            });
        }
    }
    for i in &mut items {
        i.score = round6(i.score);
    }
    let show = |l: Vec<Affinity>| {
        l.into_iter()
            .take(SHOW_TOP)
            .map(|a| Scored {
                name: a.name,
                score: round6(a.score),
            })
            .collect()
    };
    Recommendations {
        shopper_id: shopper_id.to_string(),
        preferred_categories: show(cats),
        preferred_brands: show(brands),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::popularity::ProductScore;
    use crate::profile::Seen;

    fn ps(id: &str, cat: &str, brand: &str, score: f64) -> ProductScore {
        ProductScore {
            id: id.into(),
            category: Some(cat.into()),
            brand: Some(brand.into()),
            score,
        }
    }

    fn pop() -> Popularity {
        Popularity {
            ref_ms: 1_000,
            applied: Vec::new(),
            products: vec![
                ps("tv1", "tv", "lg", 50.0),
                ps("shoe1", "shoes", "nike", 30.0),
                ps("shoe2", "shoes", "adidas", 20.0),
                ps("phone1", "phones", "apple", 10.0),
            ],
        }
    }

    #[test]
    fn unknown_shoppers_get_trending_products() {
        let r = recommend("g", None, Some(&pop()), 3, 1_000, &Decay::default());
        let ids: Vec<_> = r.items.iter().map(|i| i.product_id.as_str()).collect();
        assert_eq!(ids, ["tv1", "shoe1", "shoe2"]);
        assert!(r.items.iter().all(|i| i.reason == Reason::Trending));
        assert!(r.preferred_categories.is_empty());
    }

    #[test]
    fn preferred_categories_lead_and_purchases_are_excluded() {
        let p = Profile {
            ref_ms: 1_000,
            categories: vec![Affinity {
                name: "shoes".into(),
                score: 4.0,
            }],
            brands: vec![Affinity {
                name: "apple".into(),
                score: 1.0,
            }],
            purchased: vec![Seen {
                id: "shoe1".into(),
                at: 900,
            }],
            ..Profile::default()
        };
        let r = recommend("g", Some(&p), Some(&pop()), 3, 1_000, &Decay::default());
        let got: Vec<_> = r
            .items
            .iter()
            .map(|i| (i.product_id.as_str(), i.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("shoe2", Reason::PreferredCategory),
                ("phone1", Reason::PreferredBrand),
                ("tv1", Reason::Trending)
            ]
        );
        assert_eq!(r.items[0].score, 20.0);
        assert_eq!(r.preferred_categories[0].name, "shoes");
    }

    #[test]
    fn rounding_keeps_six_significant_digits() {
        assert_eq!(round6(1.23456789), 1.23457);
        assert_eq!(round6(0.000123456789), 0.000123457);
        assert_eq!(round6(0.0), 0.0);
    }
}

//! Shoppers' profiles in the evaluation: `affinity::profile::Profile` folded from their events so far,
//! across sessions (REES46 `user_id`; YOOCHOOSE has no shopper, so a session is its own shopper), and
//! the category preference measure: do the shopper's top-3 categories contain the next event's?

use std::collections::HashMap;

use affinity::event::{Event, EventType, PiiFields, Product};
use affinity::profile::{Decay, Profile};

use crate::{Ev, Split};

/// The event the ingest function would apply for `e`: a view of its product (every REES46 event type
/// counts as a view here, as in the next-item protocol).
pub fn view(split: &Split, e: &Ev) -> Event {
    Event {
        kind: EventType::View,
        shopper_id: format!("u{}", e.user),
        customer_id: None,
        session_id: None,
        event_id: format!("{}-{}-{}", e.user, e.item, e.ts),
        timestamp_ms: e.ts,
        query: None,
        product: Some(Product {
            id: split.items[e.item as usize].clone(),
            category: e.cat.map(|c| split.cats[c as usize].clone()),
            brand: e.brand.map(|b| split.brands[b as usize].clone()),
            price: None,
        }),
        items: Vec::new(),
        order_id: None,
        currency: None,
        cart: None,
        recommendation_id: None,
        country: None,
        pii: PiiFields::default(),
        identities: Vec::new(),
        claims: Vec::new(),
        identity_token: None,
    }
}

/// Applies `e` to `p` as the ingest function does (apply, then trim).
pub fn apply(p: &mut Profile, split: &Split, e: &Ev, decay: &Decay) {
    p.apply(&view(split, e), decay);
    p.trim();
}

/// Hit rates of the category preference measure.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct CategoryHits {
    /// Events measured: in a test session, with a category, by a shopper with a category affinity.
    pub events: usize,
    /// The shopper's top-3 categories (their profile before the event) contain the event's.
    pub profile: usize,
    /// The store's 3 most viewed categories before the event contain it.
    pub store: usize,
}

/// The top `k` of `scores`, strongest first (ties by name).
pub fn top_k(scores: &HashMap<u32, f64>, k: usize) -> Vec<u32> {
    let mut v: Vec<(u32, f64)> = scores.iter().map(|(c, s)| (*c, *s)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(k).map(|(c, _)| c).collect()
}

/// Replays every event of `split` (training and test) in time order; at each event of a test session
/// that has a category, compares the shopper's top-3 categories (`affinity::profile`, cross-session,
/// from their events so far) and the store's 3 most viewed categories so far with the event's.
pub fn category_preference(split: &Split) -> CategoryHits {
    let decay = Decay::default();
    let cat_index: HashMap<&str, u32> = split
        .cats
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut all: Vec<(&Ev, bool)> = split
        .train
        .iter()
        .flat_map(|s| s.events.iter().map(|e| (e, false)))
        .chain(
            split
                .test
                .iter()
                .flat_map(|s| s.events.iter().map(|e| (e, true))),
        )
        .collect();
    all.sort_by_key(|(e, _)| (e.ts, e.user, e.item));
    let mut profiles: HashMap<u32, Profile> = HashMap::new();
    let mut store: HashMap<u32, f64> = HashMap::new();
    let mut hits = CategoryHits::default();
    for (e, is_test) in all {
        if let (Some(c), true) = (e.cat, is_test) {
            let p = profiles.get(&e.user);
            let prefs: Vec<u32> = p
                .map(|p| {
                    Profile::scores_at(&p.categories, p.ref_ms, e.ts, &decay)
                        .iter()
                        .take(3)
                        .filter_map(|a| cat_index.get(a.name.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default();
            if !prefs.is_empty() {
                hits.events += 1;
                hits.profile += usize::from(prefs.contains(&c));
                hits.store += usize::from(top_k(&store, 3).contains(&c));
            }
        }
        if let Some(c) = e.cat {
            *store.entry(c).or_insert(0.0) += 1.0;
        }
        apply(profiles.entry(e.user).or_default(), split, e, &decay);
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Session;

    fn ev(item: u32, cat: u32, user: u32, ts: i64) -> Ev {
        Ev {
            item,
            cat: Some(cat),
            brand: None,
            user,
            ts,
        }
    }

    #[test]
    fn the_shoppers_own_categories_beat_the_stores_when_they_differ() {
        // Shopper 0 views category 5 only; the store's views are mostly categories 0-2 (shopper 1).
        let train = vec![
            Session {
                events: vec![
                    ev(0, 0, 1, 1),
                    ev(1, 1, 1, 2),
                    ev(2, 2, 1, 3),
                    ev(0, 0, 1, 4),
                ],
            },
            Session {
                events: vec![ev(3, 5, 0, 10), ev(4, 5, 0, 11)],
            },
        ];
        // Test: shopper 0 views category 5 again (profile hit, store miss), then category 0 (store
        // hit, profile miss); shopper 2 has no history (not measured).
        let test = vec![
            Session {
                events: vec![ev(3, 5, 0, 100), ev(0, 0, 0, 101)],
            },
            Session {
                events: vec![ev(1, 1, 2, 102), ev(2, 2, 2, 103)],
            },
        ];
        let split = Split {
            name: "t",
            items: (0..5).map(|i| format!("p{i}")).collect(),
            cats: (0..6).map(|i| format!("c{i}")).collect(),
            brands: Vec::new(),
            train,
            test,
        };
        let h = category_preference(&split);
        // Measured: shopper 0's two test events, and shopper 2's second (after its first).
        assert_eq!(h.events, 3);
        // 100: c5 in shopper 0's top 3 (only c5); 101: c0 not (c5 alone); 103: shopper 2's top is c1.
        assert_eq!(h.profile, 1);
        // Store top 3 before 100: c0 (2), c5 (2), then c1 (ties c1/c2 by index) -> c5 hit;
        // before 101: c5 (3), c0 (2), c1 -> c0 hit; before 103: c0 (3), c5 (3), c1 (2) -> c2 miss.
        assert_eq!(h.store, 2);
    }
}

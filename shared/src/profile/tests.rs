use super::*;
use crate::event::{validate, IngestMode};
use serde_json::json;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_700_000_000_000;

fn ev(v: serde_json::Value) -> Event {
    validate(&v, 0, T0 + 400 * DAY, IngestMode::Import).expect("valid")
}

fn score(list: &[Affinity], name: &str) -> f64 {
    list.iter()
        .find(|a| a.name == name)
        .map_or(0.0, |a| a.score)
}

#[test]
fn a_view_thirty_days_older_counts_half() {
    let d = Decay::default();
    let mut p = Profile::default();
    p.apply(&ev(json!({"type":"view","shopper_id":"g","timestamp":T0,"product":{"id":"1","category":"shoes"}})), &d);
    p.apply(&ev(json!({"type":"view","shopper_id":"g","timestamp":T0 + 30*DAY,"product":{"id":"2","category":"shoes","brand":"acme"}})), &d);
    assert!((score(&p.categories, "shoes") - 1.5).abs() < 1e-12);
    assert!((score(&p.brands, "acme") - 1.0).abs() < 1e-12);
    assert_eq!(p.ref_ms, T0 + 30 * DAY);
}

#[test]
fn order_of_arrival_does_not_change_scores() {
    let d = Decay::default();
    let events: Vec<Event> = (0..10)
        .map(|i| ev(json!({"type": if i % 3 == 0 {"cart_add"} else {"view"}, "shopper_id":"g",
            "timestamp": T0 + i * 3 * DAY, "product":{"id": format!("p{i}"), "category": format!("c{}", i % 2)}})))
        .collect();
    let mut a = Profile::default();
    events.iter().for_each(|e| a.apply(e, &d));
    let mut b = Profile::default();
    events.iter().rev().for_each(|e| b.apply(e, &d));
    for c in ["c0", "c1"] {
        assert!((score(&a.categories, c) - score(&b.categories, c)).abs() < 1e-9);
    }
    assert_eq!(a.recent_views, b.recent_views);
}

#[test]
fn a_cart_never_holds_more_than_its_bound_and_impressions_move_nothing() {
    let d = Decay::default();
    let mut p = Profile::default();
    for i in 0..(MAX_CART_LINES as i64 + 50) {
        p.apply(
            &ev(json!({"type":"cart_add","shopper_id":"g","timestamp":T0+i,"product":{"id":format!("p{i}")}})),
            &d,
        );
    }
    assert_eq!(p.cart.len(), MAX_CART_LINES);
    assert_eq!(p.cart[0].product.id, "p50", "the oldest lines went first");
    let before = (p.categories.clone(), p.recent_views.clone(), p.cart.clone());
    p.apply(
        &ev(
            json!({"type":"impression","shopper_id":"g","timestamp":T0+999,
            "product":{"id":"x","category":"sofas"},"recommendation_id":"r1"}),
        ),
        &d,
    );
    assert_eq!(
        (p.categories.clone(), p.recent_views.clone(), p.cart.clone()),
        before
    );
}

#[test]
fn cart_follows_adds_removals_and_purchases() {
    let d = Decay::default();
    let mut p = Profile::default();
    for (i, v) in [
        json!({"type":"cart_add","shopper_id":"g","timestamp":T0,"product":{"id":"a"}}),
        json!({"type":"cart_add","shopper_id":"g","timestamp":T0+1,"product":{"id":"b"}}),
        json!({"type":"cart_add","shopper_id":"g","timestamp":T0+2,"product":{"id":"a"}}),
        json!({"type":"cart_remove","shopper_id":"g","timestamp":T0+3,"product":{"id":"b"}}),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = i;
        p.apply(&ev(v), &d);
    }
    assert_eq!(p.cart.len(), 1);
    assert_eq!(
        (p.cart[0].product.id.as_str(), p.cart[0].quantity),
        ("a", 2)
    );
    p.apply(&ev(json!({"type":"purchase","shopper_id":"g","timestamp":T0+4,"items":[{"id":"a","quantity":2}]})), &d);
    assert!(p.cart.is_empty());
    assert_eq!(p.purchased[0].id, "a");
}

#[test]
fn merge_equals_applying_everything_to_one_profile() {
    let d = Decay::default();
    let guest: Vec<Event> = (0..5)
        .map(|i| ev(json!({"type":"view","shopper_id":"g1","timestamp":T0 + i * DAY,"product":{"id":"x","brand":"acme"}})))
        .collect();
    let customer: Vec<Event> = (0..5)
        .map(|i| ev(json!({"type":"click","shopper_id":"g2","customer_id":"c","timestamp":T0 + i * 5 * DAY,"product":{"id":"y","brand":"acme"}})))
        .collect();
    let mut all = Profile::default();
    guest.iter().chain(&customer).for_each(|e| all.apply(e, &d));
    let mut g = Profile::default();
    guest.iter().for_each(|e| g.apply(e, &d));
    let mut c = Profile::default();
    customer.iter().for_each(|e| c.apply(e, &d));
    c.merge(&g, &d);
    assert!((score(&c.brands, "acme") - score(&all.brands, "acme")).abs() < 1e-9);
    assert_eq!(c.guest_ids.len(), 2);
    assert!(c.has_seen(&guest[2].event_id));
}

/// `n` four-byte characters, the `i`-th distinct from the others (`i < 4096`).
fn wide(n: usize, i: usize) -> String {
    let base = char::from_u32(0x1F300 + i as u32 % 1024).expect("emoji");
    let tag = char::from_u32(0x20000 + i as u32).expect("cjk ext b");
    std::iter::once(tag)
        .chain(std::iter::repeat_n(base, n - 1))
        .collect()
}

/// A product with the longest id (128 bytes) and names (cut to 256 bytes), all 4-byte characters.
fn widest_product(i: usize) -> serde_json::Value {
    json!({"id": wide(32, i), "category": wide(100, i), "brand": wide(100, i + 2048),
           "price": 999_999_999_999.99})
}

#[test]
fn the_worst_case_profile_stays_under_its_bound() {
    let d = Decay::default();
    let mut p = Profile::default();
    let customer = "c".repeat(128);
    let mut t = T0;
    let mut next = |kind: &str, extra: serde_json::Value| {
        t += 1;
        // Every event from another 128-byte guest id, with another email and phone key: hundreds
        // of devices and addresses linked to one customer.
        let mut v = json!({"type": kind, "shopper_id": format!("{t:g>128}"), "customer_id": customer,
            "event_id": format!("{:0>128}", t), "timestamp": t});
        v.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let mut e = ev(v);
        e.identities = vec![format!("e:{t:0>64}")];
        e.claims = vec![format!("p:{t:0>64}")];
        e
    };
    let mut events = Vec::new();
    // More distinct categories and brands than any bound, in purchases of 100 items each.
    for batch in 0..3 {
        let items: Vec<_> = (0..100)
            .map(|i| {
                let mut l = widest_product(batch * 100 + i);
                l["quantity"] = json!(100_000);
                l
            })
            .collect();
        events.push(next(
            "purchase",
            json!({"items": items, "order_id": "o".repeat(128)}),
        ));
    }
    // More cart lines, views and seen ids than their bounds.
    for i in 0..(MAX_CART_LINES + 50) {
        events.push(next(
            "cart_add",
            json!({"product": widest_product(300 + i)}),
        ));
    }
    for i in 0..(MAX_RECENT_VIEWS + 10) {
        events.push(next("view", json!({"product": widest_product(500 + i)})));
    }
    for i in 0..MAX_SEEN {
        events.push(next(
            "click",
            json!({"product": widest_product(600 + i % 10)}),
        ));
    }
    for e in &events {
        p.apply(e, &d);
        p.trim();
    }
    assert_eq!(p.categories[0].name.len(), MAX_NAME_BYTES, "cut to bytes");
    assert_eq!(p.categories[0].name.chars().count(), MAX_NAME_BYTES / 4);
    assert!(p.categories.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
    assert!(p.brands.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
    assert!(p.cart.iter().map(line_bytes).sum::<usize>() <= MAX_CART_BYTES);
    assert_eq!(p.recent_views.len(), MAX_RECENT_VIEWS);
    assert_eq!(p.purchased.len(), MAX_PURCHASED);
    assert_eq!(p.seen.len(), MAX_SEEN);
    assert!(events.len() > 400, "{} guests and emails", events.len());
    assert_eq!(p.guest_ids.len(), MAX_GUEST_IDS);
    assert!(p.guest_ids.iter().all(|g| g.len() == 128));
    assert_eq!(
        p.guest_ids.last(),
        Some(&events[events.len() - 1].shopper_id)
    );
    assert_eq!(p.identity_keys.len(), MAX_IDENTITY_KEYS);
    // Each list is full up to its byte budget: the worst case is reached, not avoided.
    assert!(p.categories.len() * (MAX_NAME_BYTES + 40) > MAX_AFFINITY_BYTES - 300);
    assert!(p.cart.len() * (128 + 2 * MAX_NAME_BYTES + 64) > MAX_CART_BYTES - 700);

    // The item as the profile adapter stores it: the profile, its key, site id and version.
    let mut item: crate::store::dynamo::attrs::Item = serde_dynamo::to_item(&p).expect("item");
    let site = "s".repeat(128);
    item.insert(
        "pk".into(),
        crate::store::dynamo::attrs::s(format!("{site}#c:{customer}")),
    );
    item.insert("site_id".into(), crate::store::dynamo::attrs::s(site));
    item.insert("version".into(), crate::store::dynamo::attrs::n(u64::MAX));
    let size = crate::store::dynamo::item_size(&item);
    assert!(
        size <= MAX_PROFILE_ITEM_BYTES,
        "{size} bytes > {MAX_PROFILE_ITEM_BYTES}"
    );
    assert!(
        size > MAX_PROFILE_ITEM_BYTES * 3 / 4,
        "{size}: not the worst case"
    );
    // And it reads back as it was written.
    let back: Profile = serde_dynamo::from_item(item).expect("profile");
    assert_eq!(back, p);
}

#[test]
fn trim_brings_an_oversized_stored_profile_within_bounds() {
    let mut p = Profile {
        categories: (0..200)
            .map(|i| Affinity {
                name: wide(200, i),
                score: 1.0 + i as f64,
            })
            .collect(),
        cart: (0..300)
            .map(|i| Line {
                product: crate::event::Product {
                    id: format!("p{i}"),
                    category: Some(wide(64, i)),
                    brand: Some(wide(64, i)),
                    price: None,
                },
                quantity: 1,
            })
            .collect(),
        seen: (0..1000).collect(),
        ..Profile::default()
    };
    p.trim();
    assert!(p.categories.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
    assert_eq!(p.categories[0].score, 200.0, "the strongest stay");
    assert!(p.cart.len() < MAX_CART_LINES);
    assert!(p.cart.iter().map(line_bytes).sum::<usize>() <= MAX_CART_BYTES);
    assert_eq!(p.cart.last().map(|l| l.product.id.as_str()), Some("p299"));
    assert_eq!(p.seen.len(), MAX_SEEN);
    assert_eq!(p.seen.last(), Some(&999), "the newest seen ids stay");
}

#[test]
fn seen_list_is_bounded() {
    let d = Decay::default();
    let mut p = Profile::default();
    for i in 0..(MAX_SEEN + 10) {
        p.apply(&ev(json!({"type":"search","shopper_id":"g","query":"q","event_id": format!("e{i}"),"timestamp":T0})), &d);
    }
    assert_eq!(p.seen.len(), MAX_SEEN);
    assert!(!p.has_seen("e0"));
    assert!(p.has_seen(&format!("e{}", MAX_SEEN + 9)));
}

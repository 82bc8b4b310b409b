//! Unit tests of the parent module.

use super::*;
use serde_json::json;

const NOW: i64 = 1_764_432_000_000; // 2025-11-29T16:00:00Z

fn ok(v: Value) -> Event {
    validate(&v, 0, NOW, IngestMode::Live).expect("valid")
}
fn rejected(v: Value) -> (String, String) {
    let r = validate(&v, 3, NOW, IngestMode::Live).expect_err("invalid");
    assert_eq!(r.index, 3);
    (r.field, r.reason)
}

#[test]
fn a_view_with_rfc3339_time_is_accepted() {
    let e = ok(
        json!({"type":"view","shopper_id":"g-1-0123456789abcdef","timestamp":"2025-11-29T15:00:00Z",
        "product":{"id":"p1","category":"shoes","brand":"acme","price":"19.90"}}),
    );
    assert_eq!(e.kind, EventType::View);
    assert_eq!(e.timestamp_ms, NOW - 3_600_000);
    let p = e.product.expect("product");
    assert_eq!(p.price, Some(19.9));
    assert_eq!(p.category.as_deref(), Some("shoes"));
}

#[test]
fn epoch_ms_and_offsets_give_the_same_instant() {
    let a = ok(
        json!({"type":"search","shopper_id":"g-0123456789abcdef","query":"red shoes","timestamp": NOW - 1000}),
    );
    let b = ok(
        json!({"type":"search","shopper_id":"g-0123456789abcdef","query":"red shoes","timestamp":"2025-11-29T17:59:59+02:00"}),
    );
    assert_eq!(a.timestamp_ms, b.timestamp_ms);
}

#[test]
fn each_rule_names_its_field() {
    assert_eq!(
        rejected(json!({"shopper_id":"g-0123456789abcdef"})).0,
        "type"
    );
    assert_eq!(
        rejected(json!({"type":"like","shopper_id":"g-0123456789abcdef"})).0,
        "type"
    );
    assert_eq!(
        rejected(json!({"type":"view","product":{"id":"1"}})).0,
        "shopper_id"
    );
    assert_eq!(
        rejected(json!({"type":"view","shopper_id":"a#b","product":{"id":"1"}})).0,
        "shopper_id"
    );
    assert_eq!(
        rejected(json!({"type":"view","shopper_id":"x".repeat(129),"product":{"id":"1"}})).0,
        "shopper_id"
    );
    assert_eq!(
        rejected(json!({"type":"search","shopper_id":"g-0123456789abcdef"})).0,
        "query"
    );
    assert_eq!(
        rejected(json!({"type":"view","shopper_id":"g-0123456789abcdef"})).0,
        "product"
    );
    assert_eq!(
        rejected(json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{}})).0,
        "product.id"
    );
    assert_eq!(
        rejected(
            json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1","price":-2}})
        )
        .0,
        "product.price"
    );
    assert_eq!(
        rejected(json!({"type":"purchase","shopper_id":"g-0123456789abcdef","items":[]})).0,
        "items"
    );
    assert_eq!(
        rejected(
            json!({"type":"purchase","shopper_id":"g-0123456789abcdef","items":[{"id":"1"},{"id":"2","quantity":0}]})
        )
        .0,
        "items[1].quantity"
    );
    assert_eq!(
        rejected(
            json!({"type":"purchase","shopper_id":"g-0123456789abcdef","items":[{"id":"1"}],"currency":"EURO"})
        )
        .0,
        "currency"
    );
    assert_eq!(rejected(json!("view")).0, "event");
}

#[test]
fn timestamps_outside_the_live_window_are_refused_but_import_takes_history() {
    let old = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"timestamp":"2019-10-01T00:00:00Z"});
    let (field, reason) = rejected(old.clone());
    assert_eq!(field, "timestamp");
    assert!(reason.contains("7 days"), "{reason}");
    let e = validate(&old, 0, NOW, IngestMode::Import).expect("import accepts history");
    assert_eq!(e.timestamp_ms, 1_569_888_000_000);
    let future = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"timestamp": NOW + 6 * 60 * 1000});
    assert_eq!(
        validate(&future, 0, NOW, IngestMode::Import)
            .unwrap_err()
            .field,
        "timestamp"
    );
    let skew = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"timestamp": NOW + 4 * 60 * 1000});
    assert!(validate(&skew, 0, NOW, IngestMode::Live).is_ok());
}

#[test]
fn derived_event_ids_are_stable_for_the_same_bytes() {
    let v = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"}});
    let a = ok(v.clone());
    let b = ok(v);
    assert_eq!(a.event_id, b.event_id);
    let c = ok(json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"2"}}));
    assert_ne!(a.event_id, c.event_id);
}

#[test]
fn a_derived_event_id_is_no_digest_of_the_email_it_carried() {
    let plain = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"}});
    let mut with_email = plain.clone();
    with_email["email"] = json!("jane@example.com");
    assert_eq!(ok(with_email).event_id, ok(plain).event_id);
}

#[test]
fn recommendation_ids_are_kept_when_well_formed_and_refused_by_name_otherwise() {
    let e = ok(
        json!({"type":"click","shopper_id":"g-0123456789abcdef","product":{"id":"1"},
        "recommendation_id":"4f1c2e7a-9b3d-4c5e-8f6a-1b2c3d4e5f60"}),
    );
    assert_eq!(
        e.recommendation_id.as_deref(),
        Some("4f1c2e7a-9b3d-4c5e-8f6a-1b2c3d4e5f60")
    );
    let r = validate(
        &json!({"type":"click","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"recommendation_id":"a#b"}),
        3,
        NOW,
        IngestMode::Live,
    )
    .expect_err("refused");
    assert_eq!((r.index, r.field.as_str()), (3, "recommendation_id"));
}

#[test]
fn an_impression_needs_its_recommendation_id_and_product() {
    let e = ok(
        json!({"type":"impression","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"recommendation_id":"r1"}),
    );
    assert_eq!(e.kind, EventType::Impression);
    for (v, field) in [
        (
            json!({"type":"impression","shopper_id":"g-0123456789abcdef","product":{"id":"1"}}),
            "recommendation_id",
        ),
        (
            json!({"type":"impression","shopper_id":"g-0123456789abcdef","recommendation_id":"r1"}),
            "product",
        ),
    ] {
        let r = validate(&v, 0, NOW, IngestMode::Live).expect_err("refused");
        assert_eq!(r.field, field);
    }
}

#[test]
fn personal_values_never_appear_in_rejections_or_debug() {
    let v = json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"email":"jane@example.com"});
    let e = ok(v);
    assert!(!format!("{e:?}").contains("jane"));
    let r = validate(&json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"phone":"+1 555 0100".repeat(40)}), 0, NOW, IngestMode::Live)
        .expect_err("too long");
    assert!(!r.reason.contains("555"));
}

#[test]
fn prices_dynamodb_cannot_store_are_refused_or_rounded_not_failing_the_batch() {
    let price = |p: serde_json::Value| {
        validate(
            &json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1","price":p}}),
            0,
            NOW,
            IngestMode::Live,
        )
    };
    let r = price(json!(1e200)).expect_err("too large");
    assert_eq!(r.field, "product.price");
    assert_eq!(
        price(json!(5e-324))
            .expect("tiny")
            .product
            .and_then(|p| p.price),
        Some(0.0)
    );
    assert_eq!(
        price(json!("19.990000001"))
            .expect("string")
            .product
            .and_then(|p| p.price),
        Some(19.99)
    );
    assert!(price(json!(-1)).is_err());
}

#[test]
fn names_and_queries_are_cut_to_their_byte_limit_at_a_character_boundary() {
    let long = "\u{1F45F}".repeat(100); // 400 bytes of 4-byte characters
    let e = ok(json!({"type":"view","shopper_id":"g-0123456789abcdef",
        "product":{"id":"1","category": format!("a{long}"),"brand": long}}));
    let p = e.product.expect("product");
    let category = p.category.expect("category");
    // 1 + 4 * 63 = 253 bytes: a 64th character would cross 256.
    assert_eq!(category.len(), 253);
    assert!(category.starts_with('a') && category.ends_with('\u{1F45F}'));
    assert_eq!(p.brand.expect("brand").len(), MAX_NAME_BYTES);
    let q = ok(
        json!({"type":"search","shopper_id":"g-0123456789abcdef","query": "\u{e9}".repeat(300)}),
    );
    assert_eq!(q.query.expect("query").len(), MAX_QUERY_BYTES);
    assert_eq!(cut_to_bytes("ab\u{e9}", 3), "ab");
    assert_eq!(cut_to_bytes("ab", 3), "ab");
}

#[test]
fn an_event_may_name_its_country_and_a_bad_one_is_refused_by_name() {
    let e = ok(
        json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"country":"gb"}),
    );
    assert_eq!(e.country.as_deref(), Some("GB"));
    assert_eq!(e.phone_region(Some("US")), Some("GB"));
    let plain = ok(json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"}}));
    assert_eq!(plain.phone_region(Some("US")), Some("US"));
    assert_eq!(plain.phone_region(None), None);
    for bad in [json!("GBR"), json!("ZZ"), json!("1A"), json!(""), json!(44)] {
        let r = validate(
            &json!({"type":"view","shopper_id":"g-0123456789abcdef","product":{"id":"1"},"country": bad}),
            3,
            NOW,
            IngestMode::Live,
        )
        .expect_err("refused");
        assert_eq!((r.index, r.field.as_str()), (3, "country"), "{bad}");
    }
}

#[test]
fn a_short_guest_id_is_refused_on_the_live_route_only() {
    let short = json!({"type":"view","shopper_id":"0123456789abcde","product":{"id":"1"}});
    let (field, reason) = rejected(short.clone());
    assert_eq!(field, "shopper_id");
    assert_eq!(
        reason,
        "must be at least 16 characters: an unguessable id such as a UUID"
    );
    let e = validate(&short, 0, NOW, IngestMode::Import).expect("import keeps dataset ids");
    assert_eq!(e.shopper_id, "0123456789abcde");
    let sixteen = ok(json!({"type":"view","shopper_id":"0123456789abcdef","product":{"id":"1"}}));
    assert_eq!(sixteen.shopper_id, "0123456789abcdef");
    let uuid = ok(
        json!({"type":"view","shopper_id":"6f1c2a9e-3b7d-4e2a-9c1f-0a8b7c6d5e4f","product":{"id":"1"}}),
    );
    assert_eq!(uuid.shopper_id.len(), 36);
    assert_eq!(
        rejected(json!({"type":"view","shopper_id":"a","product":{"id":"1"}})).0,
        "shopper_id"
    );
}

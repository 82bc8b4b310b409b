//! The attacker who bloats one shopper's profile, against DynamoDB Local through the ingest handler:
//! hundreds of distinct cart lines and long multi-byte names sent to one shopper. Its next events
//! still answer 200, and the stored item stays within [`MAX_PROFILE_ITEM_BYTES`] (measured as
//! DynamoDB counts item size), far from DynamoDB's 400 KB item limit.

use affinity::event::MAX_NAME_BYTES;
use affinity::profile::{MAX_CART_LINES, MAX_PROFILE_ITEM_BYTES};
use affinity::store::dynamo::{item_size, profile_pk};
use affinity::store::{guest_key, ProfileStore};
use affinity_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

/// A 1,200-byte name of 4-byte characters, distinct per `i` (its first characters are `i`'s digits).
fn long_name(kind: &str, i: usize) -> String {
    format!("{kind}{i:05}{}", "\u{1F9F8}".repeat(300))
}

/// A product with the longest id (128 bytes) and names far over [`MAX_NAME_BYTES`].
fn bloated_product(i: usize) -> Value {
    json!({"id": format!("{i:0>128}"), "category": long_name("c", i), "brand": long_name("b", i),
           "price": 999_999.99})
}

async fn post_events(site: &str, events: Vec<Value>) -> (u16, Value) {
    let deps = ingest_deps().await;
    let body = json!({ "events": events }).to_string();
    let path = format!("/v1/sites/{site}/events");
    json_of(ingest::handle(&deps, request("POST", &path, Some("text/plain"), &body)).await)
}

async fn stored_size(site: &str, shopper: &str) -> (usize, Value) {
    let item = client()
        .await
        .get_item()
        .table_name(tables().profiles)
        .key(
            "pk",
            AttributeValue::S(profile_pk(site, &guest_key(shopper))),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the shopper's profile");
    let cart = match item.get("cart") {
        Some(AttributeValue::L(l)) => json!(l.len()),
        _ => Value::Null,
    };
    (item_size(&item), cart)
}

#[tokio::test]
async fn profile_bloat_hundreds_of_cart_lines_and_long_multibyte_names_stay_bounded_and_answer_200()
{
    let store = store().await;
    let site = unique_site("bloat");
    create_tenant(&store, &site).await;
    let shopper = "bloat-guest-3f9c2a7e41d8";
    let mut sent = 0;
    // 600 distinct cart lines, 100 per request.
    for batch in 0..6 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                json!({"type": "cart_add", "shopper_id": shopper, "event_id": format!("add-{n}"),
                       "product": bloated_product(n)})
            })
            .collect();
        let (status, body) = post_events(&site, events).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 100, "{body}");
        assert_eq!(body["rejected"], json!([]), "{body}");
        sent += 100;
    }
    // 300 distinct categories and brands, in purchases of 100 lines, and a whole cart of 100 lines.
    let purchases: Vec<Value> = (0..3)
        .map(|p| {
            let items: Vec<Value> = (0..100)
                .map(|i| bloated_product(1000 + p * 100 + i))
                .collect();
            json!({"type": "purchase", "shopper_id": shopper, "event_id": format!("order-{p}"),
                   "order_id": format!("o{p}"), "items": items})
        })
        .collect();
    let (status, body) = post_events(&site, purchases).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(3)), "{body}");
    let cart: Vec<Value> = (0..100).map(|i| bloated_product(2000 + i)).collect();
    let (status, body) = post_events(
        &site,
        vec![
            json!({"type": "view", "shopper_id": shopper, "event_id": "whole-cart",
                    "product": bloated_product(3000), "cart": cart}),
        ],
    )
    .await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    sent += 4;

    let (size, cart_lines) = stored_size(&site, shopper).await;
    assert!(
        size <= MAX_PROFILE_ITEM_BYTES,
        "{size} bytes stored, bound {MAX_PROFILE_ITEM_BYTES}"
    );
    let lines = cart_lines.as_u64().expect("a cart") as usize;
    assert!(
        lines > 0 && lines < MAX_CART_LINES,
        "{lines} lines: cut by bytes"
    );

    // The shopper's next events are still answered and stored.
    for n in 0..3 {
        let (status, body) = post_events(
            &site,
            vec![json!({"type": "cart_add", "shopper_id": shopper, "event_id": format!("next-{n}"),
                        "product": {"id": format!("plain-{n}"), "category": "mugs", "brand": "acme"}})],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }
    let (after, _) = stored_size(&site, shopper).await;
    assert!(after <= MAX_PROFILE_ITEM_BYTES, "{after} bytes after");

    // The stored names are cut at a character boundary to the byte limit.
    let profile = match store
        .profiles(&site, &[guest_key(shopper)])
        .await
        .expect("profiles")
        .remove(&guest_key(shopper))
    {
        Some(affinity::store::ProfileRecord::Profile { profile, .. }) => profile,
        other => panic!("not a profile: {other:?}"),
    };
    assert_eq!(profile.event_count, sent + 3);
    assert!(profile
        .categories
        .iter()
        .chain(&profile.brands)
        .all(|a| a.name.len() <= MAX_NAME_BYTES
            && (a.name.ends_with('\u{1F9F8}') || ["mugs", "acme"].contains(&a.name.as_str()))));
    assert_eq!(
        profile.cart.last().map(|l| l.product.id.as_str()),
        Some("plain-2")
    );
}

// One request may link more browsers to one customer than one TransactWriteItems holds (100
// actions): 150 devices log in as one customer, each with a valid identity token. Against DynamoDB
// Local, which refuses a transaction of 101 actions, every event is kept and folded once.
#[tokio::test]
async fn a_customer_on_150_devices_in_one_request_is_folded_in_parts_and_loses_nothing() {
    let store = store().await;
    let site = unique_site("parts");
    let (tenant, _) = create_tenant(&store, &site).await;
    let now = affinity::now_ms();
    let events: Vec<Value> = (0..150)
        .map(|n| {
            json!({"type": "view", "shopper_id": format!("device-{n:012}"), "customer_id": "c-150",
                   "event_id": format!("login-{n}"), "timestamp": now - 60_000 + n,
                   "product": {"id": format!("p{n}"), "category": "mugs", "brand": "acme"}})
        })
        .collect();
    let events = signed_logins(&tenant.tenant_id, &site, Value::Array(events));
    let events = events.as_array().cloned().unwrap_or_default();
    let (status, body) = post_events(&site, events).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(150)), "{body}");
    assert_eq!(body["identity_unverified"], 0, "{body}");
    let keys: Vec<String> = std::iter::once("c:c-150".to_string())
        .chain((0..150).map(|n| guest_key(&format!("device-{n:012}"))))
        .collect();
    let mut records = std::collections::HashMap::new();
    for chunk in keys.chunks(100) {
        records.extend(store.profiles(&site, chunk).await.expect("profiles"));
    }
    match records.get("c:c-150") {
        Some(affinity::store::ProfileRecord::Profile { profile, .. }) => {
            assert_eq!(profile.event_count, 150, "each event folded once");
        }
        other => panic!("no customer profile: {other:?}"),
    }
    let aliases = keys[1..]
        .iter()
        .filter(|k| {
            matches!(records.get(*k), Some(affinity::store::ProfileRecord::Alias { linked_to, .. }) if linked_to == "c:c-150")
        })
        .count();
    assert_eq!(aliases, 150, "every device is linked to the customer");
}

//! Handler tests against the memory doubles.

use super::*;
use affinity::store::memory::MemoryStore;
use affinity::store::ProfileRecord;
use affinity::tenant::Tenant;
use std::sync::atomic::Ordering;

const NOW: i64 = 1_795_968_000_000;

fn tenant(site: &str) -> Tenant {
    Tenant::demo(site)
}

fn deps() -> Deps<MemoryStore, affinity::pii::DerivedPeppers> {
    Deps {
        store: MemoryStore::with_tenants([tenant("s1")]),
        peppers: affinity::pii::DerivedPeppers,
        decay: Decay::default(),
        event_ttl_s: 86_400,
        clock: affinity::clock::ManualClock::at(NOW).shared(),
    }
}

/// [`deps`] for a store that granted Personalized Messaging consent.
fn deps_with_messaging_consent() -> Deps<MemoryStore, affinity::pii::DerivedPeppers> {
    let d = deps();
    d.store
        .tenants
        .lock()
        .expect("lock")
        .entry("s1".into())
        .and_modify(|t| t.messaging_consent = true);
    d
}

fn post(body: serde_json::Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/sites/s1/events")
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("request")
}

fn json(resp: Response<Body>) -> (u16, serde_json::Value) {
    let s = resp.status().as_u16();
    let Body::Text(t) = resp.body() else {
        panic!("text body")
    };
    (s, serde_json::from_str(t).expect("json"))
}

#[tokio::test]
async fn when_event_writes_fail_should_answer_503_naming_them_and_count_nothing() {
    let d = deps();
    d.store.fail_event_writes.store(true, Ordering::SeqCst);
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "guest-g-000000001", "product": {"id": "p"}},
        {"type": "bogus", "shopper_id": "guest-g-000000001"},
        {"type": "view", "shopper_id": "guest-h-000000002", "product": {"id": "q"}}
    ]});
    let (s, b) = json(handle(&d, post(body.clone())).await);
    assert_eq!(s, 503);
    assert_eq!(b["not_stored"], serde_json::json!([0, 2]));
    assert_eq!(b["rejected"][0]["index"], 1);
    assert_eq!(b["accepted"], 0);
    assert!(
        d.store.profiles.lock().expect("lock").is_empty(),
        "no profile counts an unstored event"
    );
    // The client retries once storage is back: everything lands, once.
    d.store.fail_event_writes.store(false, Ordering::SeqCst);
    let (s, b) = json(handle(&d, post(body)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(2)));
}

#[tokio::test]
async fn when_reads_fail_should_answer_503() {
    let d = deps();
    d.store.fail_reads.store(true, Ordering::SeqCst);
    let (s, b) = json(handle(&d, post(serde_json::json!({"events": []}))).await);
    assert_eq!((s, b["error"]["code"].as_str()), (503, Some("unavailable")));
}

/// A valid identity token of `customer` for site `s1` (the test doubles' secret).
fn token(customer: &str) -> String {
    let secret = affinity::identity::derived_identity_secret(&tenant("s1").tenant_id);
    affinity::identity::sign(
        &secret,
        "s1",
        &affinity::identity::Claims {
            customer_id: customer.into(),
            expires_s: NOW / 1000 + 600,
            email_sha256: None,
            phone_sha256: None,
        },
    )
}

/// The import route's request (server to server, trusted), with the API key.
fn post_import(body: serde_json::Value, key: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/sites/s1/events/import")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::Text(body.to_string()))
        .expect("request")
}

// Issue 10 changed this rule: an email links devices only when proven, so the devices' events now
// come through the import route (trusted); on the live route the same email stays a claim (see
// tests/tests/attacks_identity.rs).
#[tokio::test]
async fn two_devices_sending_one_email_in_one_request_are_linked_not_refused() {
    let d = deps_with_messaging_consent();
    let (key, hash) = affinity::tenant::new_api_key("s1").expect("random");
    d.store
        .tenants
        .lock()
        .expect("lock")
        .entry("s1".into())
        .and_modify(|t| t.api_key_sha256 = Some(hash));
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "phone-0000000000", "timestamp": NOW - 2000, "email": "a@example.com", "product": {"id": "p", "category": "c"}},
        {"type": "view", "shopper_id": "laptop-000000000", "timestamp": NOW - 1000, "email": "A@example.com", "product": {"id": "q", "category": "c"}}
    ]});
    let (s, b) = json(handle(&d, post_import(body, &key)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(2)), "{b}");
    let p = d.store.profiles.lock().expect("lock");
    let aliases: Vec<&String> = p
        .iter()
        .filter(|((_, k), _)| k.starts_with("e:"))
        .filter_map(|(_, r)| match r {
            ProfileRecord::Alias { linked_to, .. } => Some(linked_to),
            ProfileRecord::Profile { .. } | ProfileRecord::Claim { .. } => None,
        })
        .collect();
    assert_eq!(
        aliases,
        [&"g:phone-0000000000".to_string()],
        "the first device claims the email"
    );
    let Some(ProfileRecord::Profile { profile, .. }) =
        p.get(&("s1".to_string(), "g:phone-0000000000".to_string()))
    else {
        panic!("profile")
    };
    assert_eq!(
        profile.event_count, 2,
        "the laptop's event joined the person's profile"
    );
    assert!(
        matches!(p.get(&("s1".to_string(), "g:laptop-000000000".to_string())), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == "g:phone-0000000000")
    );
}

#[tokio::test]
async fn a_login_in_the_same_request_takes_the_sessions_anonymous_events_along() {
    let d = deps();
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "guest-g-000000001", "timestamp": NOW - 3000, "product": {"id": "p", "category": "c"}},
        {"type": "view", "shopper_id": "guest-g-000000001", "timestamp": NOW - 2000, "product": {"id": "q", "category": "c"}},
        {"type": "purchase", "shopper_id": "guest-g-000000001", "customer_id": "42", "identity_token": token("42"), "timestamp": NOW - 1000, "items": [{"id": "p", "category": "c"}]}
    ]});
    let (s, b) = json(handle(&d, post(body)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(3)), "{b}");
    let p = d.store.profiles.lock().expect("lock");
    let Some(ProfileRecord::Profile { profile, .. }) =
        p.get(&("s1".to_string(), "c:42".to_string()))
    else {
        panic!("customer profile")
    };
    assert_eq!(profile.event_count, 3);
    assert!(
        matches!(p.get(&("s1".to_string(), "g:guest-g-000000001".to_string())), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == "c:42")
    );
}

#[tokio::test]
async fn a_phone_that_cannot_be_read_is_dropped_and_named_and_the_view_is_kept() {
    let d = deps_with_messaging_consent();
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "guest-g-000000001", "phone": "650 253 0000", "product": {"id": "p", "category": "c"}}
    ]});
    let (s, b) = json(handle(&d, post(body)).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(1)), "{b}");
    assert_eq!(b["pii_unreadable"][0]["index"], 0);
    assert_eq!(b["pii_unreadable"][0]["field"], "phone");
    assert!(!b.to_string().contains("253"), "the value is never echoed");
    let p = d.store.profiles.lock().expect("lock");
    assert!(
        p.keys().all(|(_, k)| !k.starts_with("p:")),
        "no phone key was made"
    );
}

#[tokio::test]
async fn a_customer_id_without_a_valid_token_stays_with_the_guest_and_is_counted() {
    let d = deps();
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "guest-g-000000001", "customer_id": "42", "timestamp": NOW - 1000, "product": {"id": "p", "category": "c"}},
        {"type": "view", "shopper_id": "guest-h-000000002", "customer_id": "42", "identity_token": token("43"), "timestamp": NOW - 900, "product": {"id": "p", "category": "c"}}
    ]});
    let (s, b) = json(handle(&d, post(body)).await);
    assert_eq!(
        (s, b["accepted"].as_u64(), b["identity_unverified"].as_u64()),
        (200, Some(2), Some(2)),
        "{b}"
    );
    let p = d.store.profiles.lock().expect("lock");
    assert!(
        p.get(&("s1".to_string(), "c:42".to_string())).is_none(),
        "no customer profile"
    );
    for g in ["g:guest-g-000000001", "g:guest-h-000000002"] {
        assert!(
            matches!(p.get(&("s1".to_string(), g.to_string())), Some(ProfileRecord::Profile { profile, .. }) if profile.customer_id.is_none()),
            "{g} keeps its own history"
        );
    }
}

#[tokio::test]
async fn a_typed_email_is_a_claim_on_the_guest_never_a_link() {
    let d = deps_with_messaging_consent();
    let body = serde_json::json!({"events": [
        {"type": "view", "shopper_id": "phone-guest-000001", "timestamp": NOW - 2000, "email": "a@example.com", "product": {"id": "p", "category": "c"}},
        {"type": "view", "shopper_id": "laptop-guest-00001", "timestamp": NOW - 1000, "email": "A@example.com", "product": {"id": "q", "category": "c"}}
    ]});
    let (s, b) = json(handle(&d, post(body)).await);
    assert_eq!(
        (s, b["identity_unverified"].as_u64()),
        (200, Some(2)),
        "{b}"
    );
    let p = d.store.profiles.lock().expect("lock");
    let email: Vec<&ProfileRecord> = p
        .iter()
        .filter(|((_, k), _)| k.starts_with("e:"))
        .map(|(_, r)| r)
        .collect();
    assert!(
        matches!(email.as_slice(), [ProfileRecord::Claim { linked_to, .. }] if linked_to == "g:phone-guest-000001" || linked_to == "g:laptop-guest-00001"),
        "one claim, to a browser that sent it (kept for the lookup and erasure): {email:?}"
    );
    for g in ["g:phone-guest-000001", "g:laptop-guest-00001"] {
        assert!(
            matches!(p.get(&("s1".to_string(), g.to_string())), Some(ProfileRecord::Profile { profile, .. }) if profile.event_count == 1),
            "{g} is its own profile"
        );
    }
}

/// Profile items of site `s1` whose key starts with `prefix`, and how many of them alias `to`.
fn aliases_to(
    d: &Deps<MemoryStore, affinity::pii::DerivedPeppers>,
    prefix: &str,
    to: &str,
) -> usize {
    d.store
        .profiles
        .lock()
        .expect("lock")
        .iter()
        .filter(|((s, k), r)| {
            s == "s1"
                && k.starts_with(prefix)
                && matches!(r, ProfileRecord::Alias { linked_to, .. } | ProfileRecord::Claim { linked_to, .. } if linked_to == to)
        })
        .count()
}

// One transaction holds at most 100 writes (DynamoDB's TransactWriteItems, and the memory double
// refuses more): a customer who logs in on 150 browsers in one request is folded in parts.
#[tokio::test]
async fn a_group_linking_more_browsers_than_one_transaction_holds_is_folded_in_parts() {
    let d = deps();
    let events: Vec<serde_json::Value> = (0..150)
        .map(|n| {
            serde_json::json!({"type": "view", "shopper_id": format!("device-{n:011}"), "customer_id": "42",
                "identity_token": token("42"), "timestamp": NOW - 10_000 + n, "event_id": format!("e{n}"),
                "product": {"id": format!("p{n}"), "category": "c"}})
        })
        .collect();
    let (s, b) = json(handle(&d, post(serde_json::json!({ "events": events }))).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(150)), "{b}");
    assert_eq!(aliases_to(&d, "g:device-", "c:42"), 150);
    let p = d.store.profiles.lock().expect("lock");
    let Some(ProfileRecord::Profile { profile, .. }) =
        p.get(&("s1".to_string(), "c:42".to_string()))
    else {
        panic!("customer profile")
    };
    assert_eq!(
        profile.event_count, 150,
        "every part folded into the one profile, once"
    );
}

// The same for claims: 150 addresses typed into one browser under messaging consent.
#[tokio::test]
async fn more_claims_than_one_transaction_holds_are_all_kept() {
    let d = deps_with_messaging_consent();
    let events: Vec<serde_json::Value> = (0..150)
        .map(|n| {
            serde_json::json!({"type": "search", "shopper_id": "one-browser-00001", "query": "q",
                "email": format!("typed.{n}@example.com"), "timestamp": NOW - 10_000 + n})
        })
        .collect();
    let (s, b) = json(handle(&d, post(serde_json::json!({ "events": events }))).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(150)), "{b}");
    assert_eq!(
        aliases_to(&d, "e:", "g:one-browser-00001"),
        150,
        "each address's lookup finds the browser"
    );
}

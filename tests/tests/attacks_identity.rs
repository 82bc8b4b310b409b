//! The storefront routes played as an attacker would (issue 10, §1), against DynamoDB Local: a browser
//! that claims another shopper's customer id, email or phone, or brings an expired, forged or other
//! site's identity token, reads nothing of that shopper, becomes nobody's alias and moves no link. And
//! the positive case: a customer who logs in on a second device with a valid token gets
//! recommendations from their whole history.

use affinity::identity::{derived_identity_secret, sign, Claims, IdentitySecret};
use affinity::pii::DerivedPeppers;
use affinity::store::{customer_key, guest_key, ProfileRecord, ProfileStore};
use affinity::tenant::Tenant;
use affinity_tests::*;
use serde_json::{json, Value};

/// The victim's private interest, which no one else may read.
const SECRET_CATEGORY: &str = "health.intimate.pregnancy_test";
const VICTIM_EMAIL: &str = "victim@example.com";
const VICTIM_PHONE: &str = "+14155552671";

fn now_s() -> i64 {
    affinity::now_ms() / 1000
}

/// A tenant with messaging consent, its API key and its identity secret (the test doubles' secret).
async fn shop(prefix: &str) -> (Tenant, String, IdentitySecret) {
    let store = store().await;
    let (mut t, key) = create_tenant(&store, &unique_site(prefix)).await;
    t.messaging_consent = true;
    // A complete store has a pepper (the double derives the key; the ciphertext says there is one).
    t.pepper_ciphertext = Some(b"kms-ciphertext-of-the-pepper".to_vec());
    store.put_tenant(&t).await.expect("consent");
    let secret = derived_identity_secret(&t.tenant_id);
    (t, key, secret)
}

fn token(secret: &IdentitySecret, site: &str, customer: &str, expires_s: i64) -> String {
    sign(
        secret,
        site,
        &Claims {
            customer_id: customer.into(),
            expires_s,
            email_sha256: None,
            phone_sha256: None,
        },
    )
}

async fn post_live(site: &str, events: Value) -> Value {
    let deps = ingest_deps().await;
    let resp = ingest::handle(
        &deps,
        request(
            "POST",
            &format!("/v1/sites/{site}/events"),
            Some("application/json"),
            &json!({ "events": events }).to_string(),
        ),
    )
    .await;
    let (status, body) = json_of(resp);
    assert_eq!(status, 200, "{body}");
    body
}

async fn post_import(site: &str, api_key: &str, events: Value) {
    let deps = ingest_deps().await;
    let resp = ingest::handle(
        &deps,
        request_with(
            "POST",
            &format!("/v1/sites/{site}/events/import"),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {api_key}")),
            ],
            &json!({ "events": events }).to_string(),
        ),
    )
    .await;
    let (status, body) = json_of(resp);
    assert_eq!(status, 200, "{body}");
}

async fn recommendations(site: &str, guest: &str, token: Option<&str>) -> Value {
    let deps = recommend_deps().await;
    let q = token.map_or(String::new(), |t| format!("?identity_token={t}"));
    let (status, body) = json_of(
        recommend::handle(
            &deps,
            request(
                "GET",
                &format!("/v1/sites/{site}/shoppers/{guest}/recommendations{q}"),
                None,
                "",
            ),
        )
        .await,
    );
    assert_eq!(status, 200, "{body}");
    body
}

async fn record(site: &str, key: &str) -> Option<ProfileRecord> {
    store()
        .await
        .profiles(site, &[key.to_string()])
        .await
        .expect("read")
        .remove(key)
}

async fn event_count(site: &str, key: &str) -> u64 {
    match record(site, key).await {
        Some(ProfileRecord::Profile { profile, .. }) => profile.event_count,
        other => panic!("{key} is not a profile: {other:?}"),
    }
}

/// The victim: customer 77001 with a private purchase history, imported by the merchant's server
/// (trusted) with their email and phone.
async fn victim(site: &str, api_key: &str) {
    let ts = affinity::now_ms() - 60_000;
    post_import(
        site,
        api_key,
        json!([{"type":"purchase","shopper_id":"victim-laptop-0001","customer_id":"77001",
            "email": VICTIM_EMAIL, "phone": VICTIM_PHONE, "timestamp": ts,
            "items":[{"id":"test-kit","category": SECRET_CATEGORY, "brand":"clearblue"}]}]),
    )
    .await;
}

fn attacker_view(guest: &str) -> Value {
    json!({"type":"view","shopper_id": guest, "product":{"id":"socks","category":"apparel.socks"}})
}

#[tokio::test]
async fn a_claimed_customer_id_reads_nothing_links_nothing_and_is_counted() {
    let (t, key, _) = shop("atk-cust").await;
    victim(&t.site_id, &key).await;
    let before = event_count(&t.site_id, &customer_key("77001")).await;
    let attacker = "attacker-browser-0001";
    let mut e = attacker_view(attacker);
    e["customer_id"] = json!("77001");
    let answer = post_live(&t.site_id, json!([e])).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["identity_unverified"], 1, "{answer}");
    assert!(
        matches!(
            record(&t.site_id, &guest_key(attacker)).await,
            Some(ProfileRecord::Profile { .. })
        ),
        "the attacker's browser is its own profile, no alias of the customer"
    );
    assert_eq!(
        event_count(&t.site_id, &customer_key("77001")).await,
        before,
        "the customer's profile is not poisoned"
    );
    let stored = stored_events(&t.site_id).await;
    let mine: Vec<_> = stored.iter().filter(|e| e.shopper_id == attacker).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        mine[0].customer_id, None,
        "the claim is not stored as the event's customer"
    );
    let recs = recommendations(&t.site_id, attacker, None).await;
    assert!(!recs.to_string().contains(SECRET_CATEGORY), "{recs}");
    assert!(!recs.to_string().contains("clearblue"), "{recs}");
}

#[tokio::test]
async fn a_claimed_email_or_phone_reads_nothing_and_moves_no_link() {
    for (field, value, prefix) in [("email", VICTIM_EMAIL, "e:"), ("phone", VICTIM_PHONE, "p:")] {
        let (t, key, _) = shop("atk-pii").await;
        victim(&t.site_id, &key).await;
        let attacker = "attacker-browser-0002";
        let mut e = attacker_view(attacker);
        e[field] = json!(value);
        let answer = post_live(&t.site_id, json!([e])).await;
        assert_eq!(
            (
                answer["accepted"].clone(),
                answer["identity_unverified"].clone()
            ),
            (json!(1), json!(1)),
            "{field}: {answer}"
        );
        assert!(
            matches!(
                record(&t.site_id, &guest_key(attacker)).await,
                Some(ProfileRecord::Profile { .. })
            ),
            "{field}: the attacker is no alias"
        );
        // The victim's identity key still points at the victim, as a proven link.
        let items = items_of_site(&tables().profiles, &t.site_id).await;
        let links: Vec<(String, String, bool)> = items
            .iter()
            .filter_map(|i| {
                let pk = i.get("pk")?.as_s().ok()?;
                let k = pk.strip_prefix(&format!("{}#", t.site_id))?;
                k.starts_with(prefix).then(|| {
                    (
                        k.to_string(),
                        i.get("linked_to")
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default(),
                        i.get("claim").is_some(),
                    )
                })
            })
            .collect();
        assert_eq!(
            links.len(),
            1,
            "{field}: one key for the address: {links:?}"
        );
        assert_eq!(
            links[0].1,
            customer_key("77001"),
            "{field}: the link did not move"
        );
        assert!(!links[0].2, "{field}: still proven");
        let recs = recommendations(&t.site_id, attacker, None).await;
        assert!(
            !recs.to_string().contains(SECRET_CATEGORY),
            "{field}: {recs}"
        );
        // The merchant's messaging lookup by that address still finds the victim.
        let asked = Value::Object([(field.to_string(), json!(value))].into_iter().collect());
        let body = lookup(&t.site_id, &key, json!([asked])).await;
        assert_eq!(
            body["results"][0]["shopper_id"],
            customer_key("77001"),
            "{field}: {body}"
        );
    }
}

#[tokio::test]
async fn a_claim_made_first_is_replaced_by_the_proven_link() {
    let (t, key, _) = shop("atk-first").await;
    let attacker = "attacker-browser-0003";
    let mut e = attacker_view(attacker);
    e["email"] = json!(VICTIM_EMAIL);
    post_live(&t.site_id, json!([e])).await;
    let claims: Vec<_> = items_of_site(&tables().profiles, &t.site_id)
        .await
        .into_iter()
        .filter(|i| i.get("claim").is_some())
        .collect();
    assert_eq!(
        claims.len(),
        1,
        "the claim is kept, for the lookup and erasure"
    );
    victim(&t.site_id, &key).await;
    let body = lookup(&t.site_id, &key, json!([{"email": VICTIM_EMAIL}])).await;
    assert_eq!(
        body["results"][0]["shopper_id"],
        customer_key("77001"),
        "the proven link decides: {body}"
    );
}

#[tokio::test]
async fn expired_forged_and_other_site_tokens_prove_nothing() {
    let (t, key, secret) = shop("atk-tok").await;
    let (other, _, other_secret) = shop("atk-tok-other").await;
    victim(&t.site_id, &key).await;
    let cases = [
        ("expired", token(&secret, &t.site_id, "77001", now_s() - 1)),
        (
            "forged",
            token(
                &IdentitySecret::from_bytes(&[9; 32]),
                &t.site_id,
                "77001",
                now_s() + 600,
            ),
        ),
        (
            "other site",
            token(&other_secret, &other.site_id, "77001", now_s() + 600),
        ),
        (
            "other customer",
            token(&secret, &t.site_id, "77002", now_s() + 600),
        ),
        ("garbage", "v1.not-a-token".to_string()),
    ];
    for (i, (what, tok)) in cases.iter().enumerate() {
        let attacker = format!("attacker-browser-1{i:03}");
        let mut e = attacker_view(&attacker);
        e["customer_id"] = json!("77001");
        e["identity_token"] = json!(tok);
        let answer = post_live(&t.site_id, json!([e])).await;
        assert_eq!(answer["identity_unverified"], 1, "{what}: {answer}");
        assert!(
            matches!(
                record(&t.site_id, &guest_key(&attacker)).await,
                Some(ProfileRecord::Profile { .. })
            ),
            "{what}: no alias"
        );
        let recs = recommendations(&t.site_id, &attacker, Some(tok)).await;
        assert!(
            !recs.to_string().contains(SECRET_CATEGORY),
            "{what}: {recs}"
        );
    }
}

#[tokio::test]
async fn a_guest_linked_to_a_customer_reads_it_only_with_the_customers_token() {
    let (t, key, secret) = shop("atk-alias").await;
    victim(&t.site_id, &key).await;
    // The victim's own phone logs in (with a valid token): its guest id becomes an alias.
    let phone = "victim-phone-00000001";
    let good = token(&secret, &t.site_id, "77001", now_s() + 600);
    let mut login = attacker_view(phone);
    login["customer_id"] = json!("77001");
    login["identity_token"] = json!(good);
    let answer = post_live(&t.site_id, json!([login])).await;
    assert_eq!(answer["identity_unverified"], 0, "{answer}");
    assert!(matches!(
        record(&t.site_id, &guest_key(phone)).await,
        Some(ProfileRecord::Alias { .. })
    ));
    // Someone who learned the phone's guest id (not the token) reads nothing through it.
    let recs = recommendations(&t.site_id, phone, None).await;
    assert!(!recs.to_string().contains(SECRET_CATEGORY), "{recs}");
    let other = token(&secret, &t.site_id, "99999", now_s() + 600);
    let recs = recommendations(&t.site_id, phone, Some(&other)).await;
    assert!(
        !recs.to_string().contains(SECRET_CATEGORY),
        "another customer's token: {recs}"
    );
}

#[tokio::test]
async fn a_customer_on_a_second_device_with_a_valid_token_gets_the_whole_history() {
    let (t, _, secret) = shop("xdevice").await;
    let tok = token(&secret, &t.site_id, "c-5150", now_s() + 3600);
    let laptop = "laptop-guest-0000000001";
    let phone = "phone-guest-00000000002";
    let ts = affinity::now_ms() - 120_000;
    // On the laptop, logged in: sofas. Other shoppers make one lamp the store's trend, and view two
    // other sofas.
    let mut events = vec![
        json!({"type":"view","shopper_id": laptop, "customer_id":"c-5150",
        "identity_token": tok, "timestamp": ts, "product":{"id": "sofa-0", "category":"furniture.sofa"}}),
    ];
    for i in 0..6 {
        let crowd = format!("crowd-guest-{i:012}");
        events.push(
            json!({"type":"purchase","shopper_id": crowd, "timestamp": ts + 10 + i,
            "items":[{"id": "lamp-1", "category":"lighting.lamp"}]}),
        );
    }
    for i in 7..9 {
        events.push(json!({"type":"view","shopper_id": format!("crowd-guest-{i:012}"),
            "timestamp": ts + 20 + i, "product":{"id": format!("sofa-{i}"), "category":"furniture.sofa"}}));
    }
    let answer = post_live(&t.site_id, Value::Array(events)).await;
    assert_eq!(answer["identity_unverified"], 0, "{answer}");
    // On the phone, the customer logs in with the same proof (a search: no taste of its own).
    let login = json!({"type":"search","shopper_id": phone, "customer_id":"c-5150",
        "identity_token": tok, "query": "cushions"});
    let answer = post_live(&t.site_id, json!([login])).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    aggregate_site(&t.site_id).await;
    let with = recommendations(&t.site_id, phone, Some(&tok)).await;
    assert_eq!(
        with["items"][0]["category"], "furniture.sofa",
        "the laptop's history counts: {with}"
    );
    // The same phone without the token answers from its own (empty) history: trending lamps.
    let without = recommendations(&t.site_id, phone, None).await;
    assert_eq!(
        without["items"][0]["category"], "lighting.lamp",
        "{without}"
    );
}

/// A store installed before identity tokens has no identity secret: a token sent there proves
/// nothing (the event stays with its guest and is counted), and the batch is not refused for it.
/// Real KMS (moto) behind the function's own key source, as deployed.
#[tokio::test]
async fn a_token_sent_to_a_store_without_an_identity_secret_proves_nothing_and_loses_nothing() {
    use affinity::identity::TenantKeys;
    use affinity::kms::{Kms, PEPPER_TTL};
    let (t, key, secret) = shop("atk-nosecret").await;
    assert!(t.identity_secret_ciphertext.is_none());
    let kms_key = std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID: run through `make test`");
    let aws = affinity::config::aws().await;
    let deps = ingest::Deps {
        store: store().await,
        peppers: TenantKeys::new(
            Kms::new(aws_sdk_kms::Client::new(&aws), kms_key),
            PEPPER_TTL,
        ),
        decay: affinity::profile::Decay::default(),
        event_ttl_s: 90 * 86_400,
        clock: affinity::clock::system(),
    };
    let browser = "browser-without-secret-0001";
    let mut login = attacker_view(browser);
    login["customer_id"] = json!("88001");
    login["identity_token"] = json!(token(&secret, &t.site_id, "88001", now_s() + 600));
    let plain = attacker_view("another-browser-00000002");
    let (status, answer) = json_of(
        ingest::handle(
            &deps,
            request(
                "POST",
                &format!("/v1/sites/{}/events", t.site_id),
                Some("application/json"),
                &json!({ "events": [login, plain] }).to_string(),
            ),
        )
        .await,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["accepted"], &answer["identity_unverified"]),
        (&json!(2), &json!(1)),
        "{answer}"
    );
    assert!(record(&t.site_id, &customer_key("88001")).await.is_none());
    assert!(matches!(
        record(&t.site_id, &guest_key(browser)).await,
        Some(ProfileRecord::Profile { .. })
    ));
    // The recommendations route: a guest linked by the (trusted) import route, asked with a token,
    // answers from the guest's own history, not a 500.
    let linked = "browser-linked-by-import-01";
    let mut bought = attacker_view(linked);
    bought["customer_id"] = json!("88002");
    post_import(&t.site_id, &key, json!([bought])).await;
    assert!(matches!(
        record(&t.site_id, &guest_key(linked)).await,
        Some(ProfileRecord::Alias { .. })
    ));
    let recommend = recommend::Deps {
        store: store().await,
        peppers: TenantKeys::new(
            Kms::new(
                aws_sdk_kms::Client::new(&aws),
                std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID"),
            ),
            PEPPER_TTL,
        ),
        popularity: recommend::cache::PopularityCache::default(),
        decay: affinity::profile::Decay::default(),
        clock: affinity::clock::system(),
    };
    let path = format!(
        "/v1/sites/{}/shoppers/{linked}/recommendations?identity_token={}",
        t.site_id,
        token(&secret, &t.site_id, "88002", now_s() + 600)
    );
    let (status, answer) =
        json_of(recommend::handle(&recommend, request("GET", &path, None, "")).await);
    assert_eq!(status, 200, "{answer}");
}

/// The messaging lookup's answer for `shoppers`, as the merchant's server asks it (API key).
async fn lookup(site: &str, api_key: &str, shoppers: Value) -> Value {
    let deps = recommend_deps().await;
    let (status, body) = json_of(
        recommend::handle(
            &deps,
            lookup_request(site, api_key, &json!({ "shoppers": shoppers })),
        )
        .await,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// The profile the messaging lookup answers one email with.
async fn lookup_email(site: &str, api_key: &str, email: &str) -> Value {
    lookup(site, api_key, json!([{ "email": email }])).await["results"][0]["shopper_id"].clone()
}

/// Issue 10 §3: links live as their own items. 300 devices log in as one customer with valid tokens:
/// the profile item stays small (it lists only the most recent guest ids), export lists all 300, and
/// erasure deletes every one of them, found through the `by_link` index.
#[tokio::test]
async fn three_hundred_devices_of_one_customer_are_all_exported_and_erased_and_the_profile_stays_small(
) {
    use affinity::deletion::shopper;
    use affinity::profile::MAX_GUEST_IDS;
    let (t, _, secret) = shop("links300").await;
    let site = &t.site_id;
    let tok = token(&secret, site, "c-300", now_s() + 3600);
    let ts = affinity::now_ms() - 60_000;
    let device = |i: usize| format!("device-of-c300-{i:06}");
    for batch in 0..15 {
        let events: Vec<Value> = (batch * 20..batch * 20 + 20)
            .map(|i| {
                json!({"type":"view","shopper_id": device(i), "customer_id":"c-300",
                    "identity_token": tok, "timestamp": ts + i as i64,
                    "product":{"id": format!("p-{i}"), "category":"shoes"}})
            })
            .collect();
        let answer = post_live(site, Value::Array(events)).await;
        assert_eq!(
            (
                answer["accepted"].clone(),
                answer["identity_unverified"].clone()
            ),
            (json!(20), json!(0)),
            "{answer}"
        );
    }
    let items = items_of_site(&tables().profiles, site).await;
    let aliases = items
        .iter()
        .filter(|i| i.get("linked_to").and_then(|v| v.as_s().ok()) == Some(&customer_key("c-300")))
        .count();
    assert_eq!(aliases, 300, "one alias item per device");
    let profile = items
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("{site}#c:c-300")))
        .expect("the customer's profile");
    let size = affinity::store::dynamo::item_size(profile);
    assert!(size < 8 * 1024, "the profile item is {size} bytes");
    match record(site, &customer_key("c-300")).await {
        Some(ProfileRecord::Profile { profile, .. }) => {
            assert_eq!(profile.event_count, 300);
            assert_eq!(profile.guest_ids.len(), MAX_GUEST_IDS);
            assert_eq!(profile.guest_ids.last(), Some(&device(299)));
        }
        other => panic!("not a profile: {other:?}"),
    }

    let store = store().await;
    let export = shopper::export(&store, site, &guest_key(&device(7)), affinity::now_ms())
        .await
        .expect("export");
    let mut all: Vec<String> = (0..300).map(device).collect();
    all.sort();
    assert_eq!(export.linked_ids.guest_ids, all);
    assert_eq!(export.events.len(), 300);

    let report = shopper::erase(&store, site, &customer_key("c-300"))
        .await
        .expect("erase");
    assert_eq!(
        (report.profiles, report.events, report.guest_ids),
        (301, 300, 300)
    );
    assert!(items_of_site(&tables().profiles, site).await.is_empty());
    assert!(stored_events(site).await.is_empty());
}

/// Issue 10 §1: where a proven link and mere claims meet, the proven one decides; among claims only,
/// the most recent. An attacker claims the victim's email first; the victim's own browser claims it
/// later and takes the lookup; the merchant's import then proves it, and the attacker's new claim moves
/// nothing. Erasure by that email finds every browser that sent it, the attacker's too.
#[tokio::test]
async fn the_proven_link_decides_the_lookup_and_among_claims_the_most_recent() {
    use affinity::deletion::shopper::{self, Named};
    let (t, key, _) = shop("atk-recent").await;
    let site = &t.site_id;
    let attacker = "attacker-browser-0009";
    let victim_browser = "victim-browser-000009";
    let claim = |guest: &str| {
        let mut e = attacker_view(guest);
        e["email"] = json!(VICTIM_EMAIL);
        e
    };
    post_live(site, json!([claim(attacker)])).await;
    assert_eq!(
        lookup_email(site, &key, VICTIM_EMAIL).await,
        guest_key(attacker),
        "a claim alone"
    );
    post_live(site, json!([claim(victim_browser)])).await;
    assert_eq!(
        lookup_email(site, &key, VICTIM_EMAIL).await,
        guest_key(victim_browser),
        "among claims the most recent"
    );
    victim(site, &key).await;
    assert_eq!(
        lookup_email(site, &key, VICTIM_EMAIL).await,
        customer_key("77001"),
        "the proven link decides"
    );
    post_live(site, json!([claim(attacker)])).await;
    assert_eq!(
        lookup_email(site, &key, VICTIM_EMAIL).await,
        customer_key("77001"),
        "a claim never moves a proven link"
    );
    // Every browser that sent the address, and the customer it is proven for.
    let store = store().await;
    let subjects = shopper::subjects(
        &store,
        &DerivedPeppers,
        &t,
        Named {
            customer_id: "77001",
            email: Some(VICTIM_EMAIL),
            phone: None,
        },
    )
    .await
    .expect("subjects");
    let subjects: std::collections::BTreeSet<String> = subjects.into_iter().collect();
    assert_eq!(
        subjects,
        [
            customer_key("77001"),
            guest_key(attacker),
            guest_key(victim_browser)
        ]
        .into_iter()
        .collect()
    );
    // Erasing the attacker's browser removes its profile and its claim item, and nothing of the
    // victim's. Its two claims were the same body without an event id (the same derived id): the
    // second was a retry of the first, so one event is stored.
    let report = shopper::erase(&store, site, &guest_key(attacker))
        .await
        .expect("erase");
    assert_eq!((report.profiles, report.events), (2, 1), "{report:?}");
    assert_eq!(
        lookup_email(site, &key, VICTIM_EMAIL).await,
        customer_key("77001")
    );
    let left: Vec<String> = items_of_site(&tables().profiles, site)
        .await
        .iter()
        .filter_map(|i| i.get("pk")?.as_s().ok().cloned())
        .filter(|pk| pk.contains(attacker))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

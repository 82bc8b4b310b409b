//! Personal data end to end: keyed hashing, consent and GPC gating, identity links, the messaging lookup,
//! and proof that no plaintext reaches DynamoDB or the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use affinity::store::dynamo::DynamoStore;
use affinity_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

/// Every plaintext these tests send, in the forms a leak could take.
const PLAINTEXTS: &[&str] = &[
    "jane.doe@example.com",
    "Jane.Doe@Example.com",
    "jane.doe",
    "no.consent@example.com",
    "gpc.shopper@example.com",
    "shared.person@example.com",
    "not-an-email@@example",
    "6502530000",
    "650-253-0000",
    "650) 253-0000",
];

/// Log lines of this test process (every test here logs through it, at debug level).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Writer(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn tenant(consent: bool, region: Option<&str>) -> (String, String, DynamoStore) {
    logs();
    let store = store().await;
    let site = unique_site("pii");
    let (mut t, key) = create_tenant(&store, &site).await;
    t.messaging_consent = consent;
    t.default_region = region.map(str::to_string);
    store.put_tenant(&t).await.expect("tenant");
    (site, key, store)
}

async fn ingest_with(site: &str, headers: &[(&str, &str)], events: Value) -> Value {
    let deps = ingest_deps().await;
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    let (s, b) = json_of(
        ingest::handle(
            &deps,
            request_with(
                "POST",
                &format!("/v1/sites/{site}/events"),
                &h,
                &json!({"events": events}).to_string(),
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    b
}

/// The import route (API key, trusted): where an email links devices since issue 10 (on the live
/// route a typed email is a claim; tests/tests/attacks_identity.rs).
async fn import_with(site: &str, key: &str, events: Value) -> Value {
    let deps = ingest_deps().await;
    let auth = format!("Bearer {key}");
    let (s, b) = json_of(
        ingest::handle(
            &deps,
            request_with(
                "POST",
                &format!("/v1/sites/{site}/events/import"),
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                &json!({"events": events}).to_string(),
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    b
}

async fn lookup(site: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let deps = recommend_deps().await;
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        h.push(("authorization", a.as_str()));
    }
    json_of(
        recommend::handle(
            &deps,
            request_with(
                "POST",
                &format!("/v1/sites/{site}/recommendations/lookup"),
                &h,
                &body.to_string(),
            ),
        )
        .await,
    )
}

fn identity_keys(items: &[Item], site: &str) -> Vec<String> {
    let mut keys: Vec<String> = items
        .iter()
        .filter_map(|i| match i.get("pk") {
            Some(AttributeValue::S(pk)) => pk.strip_prefix(&format!("{site}#")).map(str::to_string),
            _ => None,
        })
        .filter(|k| k.starts_with("e:") || k.starts_with("p:"))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn with_consent_one_person_is_found_by_any_of_their_identities() {
    with_consent_one_person_is_found_by_any_of_their_identities_flow().await;
}

async fn with_consent_one_person_is_found_by_any_of_their_identities_flow() {
    let (site, key, _) = tenant(true, Some("US")).await;
    let now = affinity::now_ms();
    // Phone browser: an email in mixed case with spaces, and a phone number in national form.
    let b = import_with(&site, &key, json!([{"type": "view", "shopper_id": "g1-0000000000000", "timestamp": now - 5000,
        "email": " Jane.Doe@Example.com ", "phone": "(650) 253-0000", "product": {"id": "p1", "category": "shoes"}}])).await;
    assert_eq!(
        (b["accepted"].as_u64(), b["pii_dropped"].as_u64()),
        (Some(1), Some(0)),
        "{b}"
    );
    // Laptop: the same address, normalized.
    import_with(
        &site,
        &key,
        json!([{"type": "click", "shopper_id": "g2-0000000000000", "timestamp": now - 4000,
        "email": "jane.doe@example.com", "product": {"id": "p2", "category": "bags"}}]),
    )
    .await;
    // An email tool that holds only the SHA-256 of the address.
    let real_sha = {
        use sha2::{Digest, Sha256};
        hex_lower(&Sha256::digest(b"jane.doe@example.com"))
    };
    import_with(
        &site,
        &key,
        json!([{"type": "cart_add", "shopper_id": "g3-0000000000000", "timestamp": now - 3000,
        "email_sha256": real_sha.to_uppercase(), "product": {"id": "p3", "category": "bags"}}]),
    )
    .await;
    // An invalid address is dropped and named, without its value; the view is kept.
    let b = import_with(&site, &key, json!([{"type": "view", "shopper_id": "g4-0000000000000", "email": "not-an-email@@example", "product": {"id": "p"}}])).await;
    assert_eq!(b["pii_unreadable"][0]["field"], "email");
    assert_eq!(
        (
            b["accepted"].as_u64(),
            b["rejected"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    assert!(!b.to_string().contains("not-an-email"));

    let items = items_of_site(&tables().profiles, &site).await;
    assert_eq!(
        identity_keys(&items, &site).len(),
        2,
        "one email key and one phone key"
    );

    let (s, r) = lookup(&site, Some(&key), json!({"shoppers": [
        {"email": "JANE.DOE@example.com"}, {"email_sha256": real_sha}, {"phone": "+1 650 253 0000"},
        {"customer_id": "nobody"}, {"email": "someone.else@example.com"}, {"email": "bad@@"}, {"shopper_id": "g2-0000000000000"}
    ], "limit": 3})).await;
    assert_eq!(s, 200, "{r}");
    let res = r["results"].as_array().expect("results");
    assert_eq!(res.len(), 7);
    for i in [0, 1, 2, 6] {
        assert_eq!(res[i]["matched"], true, "{i}: {}", res[i]);
        assert_eq!(res[i]["shopper_id"], "g:g1-0000000000000", "{i}");
        assert_eq!(
            res[i]["preferred_categories"],
            res[0]["preferred_categories"]
        );
    }
    // 1 view of shoes, then a click (2) and a cart add (4) of bags, all on one profile now.
    assert_eq!(res[0]["preferred_categories"][0]["name"], "bags");
    assert_eq!(res[0]["preferred_categories"][1]["name"], "shoes");
    assert_eq!(
        (res[3]["matched"].as_bool(), res[4]["matched"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(res[5]["error"]["field"], "email");
    assert!(
        !r.to_string().to_lowercase().contains("jane"),
        "the answer never echoes an email"
    );
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn without_consent_nothing_personal_is_stored_or_looked_up() {
    without_consent_nothing_personal_is_stored_or_looked_up_flow().await;
}

async fn without_consent_nothing_personal_is_stored_or_looked_up_flow() {
    let (site, key, _) = tenant(false, None).await;
    let b = ingest_with(&site, &[], json!([
        {"type": "view", "shopper_id": "g1-0000000000000", "email": "no.consent@example.com", "product": {"id": "p1"}},
        {"type": "view", "shopper_id": "g1-0000000000000", "phone": "+1 650 253 0000", "product": {"id": "p2"}},
        {"type": "view", "shopper_id": "g1-0000000000000", "product": {"id": "p3"}}
    ])).await;
    assert_eq!(
        (b["accepted"].as_u64(), b["pii_dropped"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(identity_keys(&items_of_site(&tables().profiles, &site).await, &site).is_empty());
    let (s, e) = lookup(
        &site,
        Some(&key),
        json!({"shoppers": [{"email": "no.consent@example.com"}]}),
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")));
    // Lookups by customer id need no consent.
    let (s, _) = lookup(
        &site,
        Some(&key),
        json!({"shoppers": [{"customer_id": "7"}]}),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn global_privacy_control_links_nothing() {
    global_privacy_control_links_nothing_flow().await;
}

async fn global_privacy_control_links_nothing_flow() {
    let (site, _, _) = tenant(true, None).await;
    let b = ingest_with(&site, &[("sec-gpc", "1")], json!([
        {"type": "view", "shopper_id": "g1-0000000000000", "email": "gpc.shopper@example.com", "product": {"id": "p1"}}
    ])).await;
    assert_eq!(
        (b["accepted"].as_u64(), b["pii_dropped"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(identity_keys(&items_of_site(&tables().profiles, &site).await, &site).is_empty());
}

#[tokio::test]
async fn two_tenants_never_share_a_key() {
    let (a, _, _) = tenant(true, None).await;
    let (b, _, _) = tenant(true, None).await;
    for site in [&a, &b] {
        ingest_with(site, &[], json!([{"type": "view", "shopper_id": "g-00000000000000", "email": "shared.person@example.com", "product": {"id": "p"}}])).await;
    }
    let ka = identity_keys(&items_of_site(&tables().profiles, &a).await, &a);
    let kb = identity_keys(&items_of_site(&tables().profiles, &b).await, &b);
    assert_eq!((ka.len(), kb.len()), (1, 1));
    assert_ne!(ka, kb);
}

#[tokio::test]
async fn lookups_need_the_stores_own_key_and_a_bounded_body() {
    let (site, key, _) = tenant(true, None).await;
    let (other, other_key, _) = tenant(true, None).await;
    let body = json!({"shoppers": [{"customer_id": "1"}]});
    assert_eq!(lookup(&site, None, body.clone()).await.0, 401);
    assert_eq!(lookup(&site, Some(&other_key), body.clone()).await.0, 403);
    assert_eq!(lookup(&other, Some(&key), body.clone()).await.0, 403);
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"customer_id": i.to_string()}))
        .collect();
    let (s, e) = lookup(&site, Some(&key), json!({"shoppers": many})).await;
    assert_eq!((s, e["error"]["field"].as_str()), (413, Some("shoppers")));
    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"customer_id": i.to_string()}))
        .collect();
    let (s, r) = lookup(&site, Some(&key), json!({"shoppers": hundred, "limit": 1})).await;
    assert_eq!((s, r["results"].as_array().map(Vec::len)), (200, Some(100)));
    assert_eq!(lookup("no-such-site", Some(&key), body).await.0, 404);
}

/// Test order is not guaranteed, so this runs the personal-data flows itself, then scans every table
/// and every log line of this process.
#[tokio::test]
async fn no_plaintext_reaches_any_table_or_log_line() {
    with_consent_one_person_is_found_by_any_of_their_identities_flow().await;
    without_consent_nothing_personal_is_stored_or_looked_up_flow().await;
    global_privacy_control_links_nothing_flow().await;
    let t = tables();
    let mut scanned = 0;
    for table in [&t.tenants, &t.events, &t.profiles, &t.popularity] {
        for item in scan_all(table).await {
            let text = format!("{item:?}");
            for p in PLAINTEXTS {
                assert!(!text.contains(p), "{p} found in {table}");
            }
            scanned += 1;
        }
    }
    assert!(scanned > 10);
    let logged = String::from_utf8_lossy(
        &logs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .to_string();
    assert!(
        logged.contains("\"ingest\""),
        "the handlers' log lines were captured"
    );
    for p in PLAINTEXTS {
        assert!(!logged.contains(p), "{p} found in the logs");
    }
}

#[tokio::test]
async fn the_pepper_is_the_tenants_kms_data_key_and_only_its_ciphertext_is_stored() {
    use affinity::identity::TenantKeys;
    use affinity::kms::{Kms, PEPPER_TTL};
    let kms_key = std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID: run through `make test`");
    let aws = affinity::config::aws().await;
    let kms = Kms::new(aws_sdk_kms::Client::new(&aws), kms_key);
    let (site, key, store) = tenant(true, None).await;
    let mut t = affinity::store::TenantLookup::tenant_by_site(&store, &site)
        .await
        .expect("read")
        .expect("tenant");
    t.pepper_ciphertext = Some(kms.new_pepper(&t.tenant_id).await.expect("GenerateDataKey"));
    store.put_tenant(&t).await.expect("tenant");
    let ingest = ingest::Deps {
        store: store.clone(),
        peppers: TenantKeys::new(kms.clone(), PEPPER_TTL),
        decay: affinity::profile::Decay::default(),
        event_ttl_s: 86_400,
        clock: affinity::clock::system(),
    };
    let body = json!({"events": [{"type": "view", "shopper_id": "g1-0000000000000", "email": "jane.doe@example.com", "product": {"id": "p", "category": "c"}}]});
    let (s, b) = json_of(
        ingest::handle(
            &ingest,
            request(
                "POST",
                &format!("/v1/sites/{site}/events"),
                None,
                &body.to_string(),
            ),
        )
        .await,
    );
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(1)), "{b}");
    // The stored key is the HMAC under the decrypted data key, not under the test double's key.
    let pepper = kms
        .open_pepper(&t.tenant_id, t.pepper_ciphertext.as_deref().expect("ct"))
        .await
        .expect("decrypt");
    let want = format!(
        "e:{}",
        affinity::pii::email_key(&pepper, "jane.doe@example.com")
            .expect("email")
            .0
    );
    assert_eq!(
        identity_keys(&items_of_site(&tables().profiles, &site).await, &site),
        [want]
    );
    // The tenant item holds only the ciphertext: 32 plaintext bytes never appear in it.
    let item = items_of_site(&tables().tenants, &site).await.remove(0);
    let Some(AttributeValue::B(ct)) = item.get("pepper_ciphertext") else {
        panic!("ciphertext attribute")
    };
    assert!(ct.as_ref().len() > 32);
    // The messaging lookup meets the same key through the same KMS path.
    let recommend = recommend::Deps {
        popularity: recommend::cache::PopularityCache::default(),
        store,
        peppers: TenantKeys::new(kms, PEPPER_TTL),
        decay: affinity::profile::Decay::default(),
        clock: affinity::clock::system(),
    };
    let h = [("authorization", format!("Bearer {key}"))];
    let req = request_with(
        "POST",
        &format!("/v1/sites/{site}/recommendations/lookup"),
        &[(h[0].0, h[0].1.as_str())],
        &json!({"shoppers": [{"email": " JANE.DOE@example.com"}]}).to_string(),
    );
    let (s, r) = json_of(recommend::handle(&recommend, req).await);
    assert_eq!(
        (s, r["results"][0]["shopper_id"].as_str()),
        (200, Some("g:g1-0000000000000")),
        "{r}"
    );
}

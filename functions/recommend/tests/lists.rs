//! The storefront route's list types on the memory doubles, through the handler.

use std::sync::Arc;

use affinity::clock::ManualClock;
use affinity::event::{Line, Product};
use affinity::pii::DerivedPeppers;
use affinity::popularity::{Popularity, ProductScore};
use affinity::profile::{Affinity, Decay, Profile, Seen};
use affinity::recommender::neighbours::{Builder, CoVisitWeights, ListKey, SessionEvent};
use affinity::store::memory::MemoryStore;
use affinity::store::{guest_key, ProfileRecord};
use affinity::tenant::Tenant;
use recommend::{cache::PopularityCache, handle, Deps};
use serde_json::Value;

const NOW: i64 = 1_795_968_000_000;
const MIN: i64 = 60_000;

fn ev(id: &str, at: i64) -> SessionEvent<'_> {
    SessionEvent {
        id,
        category: Some(if id.starts_with("tv") { "tvs" } else { "sofas" }),
        brand: (id == "sofa").then_some("Acme"),
        at_ms: NOW - 60 * MIN + at,
    }
}

fn ps(id: &str, cat: &str, score: f64) -> ProductScore {
    ProductScore {
        id: id.into(),
        category: Some(cat.into()),
        brand: (id == "cushion").then(|| "Softco".to_string()),
        score,
    }
}

fn store() -> MemoryStore {
    let s = MemoryStore::with_tenants([Tenant::demo("s1")]);
    let mut b = Builder::new(CoVisitWeights::default());
    b.add_session(&[ev("sofa", 1), ev("cushion", 2), ev("throw", 3)]);
    b.add_session(&[ev("sofa", 4), ev("cushion", 5)]);
    b.add_session(&[ev("sofa", 6), ev("tv1", 7)]);
    let mut stored = s.neighbours.lock().expect("lock");
    for (id, l) in b.finish() {
        stored.insert(("s1".into(), ListKey::viewed(&id)), (l, 1));
    }
    let mut bought = Builder::new(CoVisitWeights::default());
    bought.add_session(&[ev("printer", 1), ev("ink", 2)]);
    for (id, l) in bought.finish() {
        stored.insert(("s1".into(), ListKey::bought(&id)), (l, 1));
    }
    drop(stored);
    s.popularity.lock().expect("lock").insert(
        "s1".into(),
        (
            Popularity {
                ref_ms: NOW,
                products: vec![
                    ps("tv9", "tvs", 50.0),
                    ps("armchair", "sofas", 30.0),
                    ps("cushion", "sofas", 20.0),
                ],
                applied: Vec::new(),
            },
            1,
        ),
    );
    let profile = Profile {
        ref_ms: NOW,
        categories: vec![Affinity {
            name: "sofas".into(),
            score: 5.0,
        }],
        recent_views: vec![Seen {
            id: "sofa".into(),
            at: NOW - MIN,
        }],
        purchased: vec![Seen {
            id: "throw".into(),
            at: NOW - 10 * MIN,
        }],
        cart: vec![Line {
            product: Product {
                id: "printer".into(),
                category: None,
                brand: None,
                price: None,
            },
            quantity: 1,
        }],
        ..Profile::default()
    };
    s.profiles.lock().expect("lock").insert(
        ("s1".into(), guest_key("guest-0123456789abcdef")),
        ProfileRecord::Profile {
            profile: Box::new(profile),
            version: 1,
        },
    );
    s
}

fn deps() -> Deps<MemoryStore, DerivedPeppers> {
    Deps {
        store: store(),
        peppers: DerivedPeppers,
        popularity: PopularityCache::default(),
        decay: Decay::default(),
        clock: Arc::new(ManualClock::at(NOW)),
    }
}

async fn get(d: &Deps<MemoryStore, DerivedPeppers>, query: &str) -> (u16, Value) {
    let path = format!("/v1/sites/s1/shoppers/guest-0123456789abcdef/recommendations?{query}");
    let req = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("https://api.example{path}"))
        .body(lambda_http::Body::Empty)
        .expect("request");
    let resp = handle(d, req).await;
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("json"),
        _ => Value::Null,
    };
    (status, body)
}

fn ids(b: &Value) -> Vec<String> {
    b["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["product_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn for_you_is_the_default_and_leads_with_the_sessions_neighbours() {
    let d = deps();
    let (status, b) = get(&d, "limit=3").await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["type"], "for_you");
    assert_eq!(ids(&b)[0], "cushion");
    assert_eq!(b["items"][0]["reason"], "viewed_with");
    assert_eq!(b["items"][0]["reason_text"], "viewed with sofa");
    // The purchased throw is left out; the answer carries no scores and no preferences.
    assert!(!ids(&b).contains(&"throw".to_string()));
    assert!(b.get("preferred_categories").is_none());
    assert!(b["items"][0].get("score").is_none());
    assert!(b["recommendation_id"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

#[tokio::test]
async fn also_viewed_and_similar_answer_for_a_product_page() {
    let d = deps();
    let (_, also) = get(&d, "type=also_viewed&product_id=sofa&limit=5").await;
    let got = ids(&also);
    assert!(got.contains(&"tv1".to_string()) && got.contains(&"cushion".to_string()));
    assert!(!got.contains(&"sofa".to_string()) && !got.contains(&"throw".to_string()));
    let (_, similar) = get(&d, "type=similar&product_id=sofa&limit=3").await;
    // tv1 is co-viewed but not a sofa; the category's popular armchair fills in.
    assert_eq!(ids(&similar), ["cushion", "armchair"]);
    assert_eq!(similar["items"][1]["reason"], "same_category");
    assert_eq!(similar["items"][1]["reason_text"], "also in sofas");
    let (status, missing) = get(&d, "type=similar").await;
    assert_eq!(
        (status, missing["error"]["field"].as_str()),
        (400, Some("product_id")),
        "{missing}"
    );
}

#[tokio::test]
async fn bought_together_uses_the_cart_without_anchors() {
    let d = deps();
    let (_, b) = get(&d, "type=bought_together").await;
    assert_eq!(ids(&b)[0], "ink");
    assert_eq!(b["items"][0]["reason_text"], "bought with printer");
    assert!(!ids(&b).contains(&"printer".to_string()));
}

#[tokio::test]
async fn recently_viewed_and_trending_in_a_category() {
    let d = deps();
    let (_, r) = get(&d, "type=recently_viewed").await;
    assert_eq!(ids(&r), ["sofa"]);
    assert_eq!(r["items"][0]["reason_text"], "you viewed this");
    let (_, t) = get(&d, "type=trending&category=sofas").await;
    assert_eq!(ids(&t), ["armchair", "cushion"]);
    assert_eq!(t["items"][0]["reason_text"], "trending in sofas");
    let (_, all) = get(&d, "type=trending&limit=1").await;
    assert_eq!(ids(&all), ["tv9"]);
}

fn described(b: &Value, id: &str) -> (Value, Value) {
    let item = b["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["product_id"] == id)
        .unwrap_or_else(|| panic!("{id} in {b}"));
    (item["category"].clone(), item["brand"].clone())
}

#[tokio::test]
async fn every_list_gives_a_products_known_category_and_brand() {
    let d = deps();
    // The viewed product: category and brand from its own list (read with the session's).
    let (_, recent) = get(&d, "type=recently_viewed").await;
    assert_eq!(
        described(&recent, "sofa"),
        (Value::from("sofas"), Value::from("Acme"))
    );
    // A neighbour outside the lists read and the popularity: a neighbour entry names its category,
    // not its brand (the limit `described` states).
    let (_, also) = get(&d, "type=also_viewed&product_id=tv1").await;
    assert_eq!(
        described(&also, "sofa"),
        (Value::from("sofas"), Value::Null)
    );
    // A neighbour: its category from the neighbour entry, its brand from the popularity.
    let (_, for_you) = get(&d, "").await;
    assert_eq!(
        described(&for_you, "cushion"),
        (Value::from("sofas"), Value::from("Softco"))
    );
    let (_, similar) = get(&d, "type=similar&product_id=sofa").await;
    assert_eq!(
        described(&similar, "cushion"),
        described(&for_you, "cushion")
    );
    let (_, trending) = get(&d, "type=trending").await;
    assert_eq!(
        described(&trending, "cushion"),
        described(&for_you, "cushion")
    );
}

#[tokio::test]
async fn an_unknown_type_or_bad_product_id_names_the_field() {
    let d = deps();
    let (s, b) = get(&d, "type=best").await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("type")),
        "{b}"
    );
    let (s, b) = get(&d, "type=also_viewed&product_id=a%23b").await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("product_id")),
        "{b}"
    );
    // The contract's bound on the token (openapi.yaml: 512): one byte more is refused, not ignored.
    let long = "v".repeat(affinity::identity::MAX_TOKEN_BYTES + 1);
    let (s, b) = get(&d, &format!("identity_token={long}")).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("identity_token")),
        "{b}"
    );
    let (s, _) = get(&d, &format!("identity_token={}", &long[1..])).await;
    assert_eq!(s, 200);
}

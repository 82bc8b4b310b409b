//! The aggregate function on the memory doubles: neighbour lists from sessions, per-record failures,
//! and no double count when Lambda delivers records again.

use std::sync::atomic::Ordering;

use affinity::event::{EventType, Line, Product};
use affinity::profile::{Decay, Profile, Seen};
use affinity::recommender::neighbours::ListKey;
use affinity::store::memory::MemoryStore;
use affinity::store::{guest_key, ProfileRecord, StoredEvent};
use affinity::tenant::Tenant;
use aggregate::{aggregate_records, Deps, Record};

const T0: i64 = 1_795_968_000_000;
const MIN: i64 = 60_000;

fn tenant(site: &str) -> Tenant {
    Tenant::demo(site)
}

fn product(id: &str) -> Product {
    Product {
        id: id.into(),
        category: Some("sofas".into()),
        brand: None,
        price: None,
    }
}

fn event(site: &str, shopper: &str, id: &str, kind: EventType, p: &str, ts: i64) -> StoredEvent {
    StoredEvent {
        site_id: site.into(),
        shopper_id: shopper.into(),
        event_id: id.into(),
        kind,
        ts,
        received_ms: ts,
        expires_at: ts / 1000 + 86_400,
        customer_id: None,
        session_id: None,
        query: None,
        product: (kind != EventType::Purchase).then(|| product(p)),
        items: Vec::new(),
        order_id: None,
        currency: None,
        cart: None,
        recommendation_id: None,
    }
}

fn view(site: &str, shopper: &str, id: &str, p: &str, ts: i64) -> StoredEvent {
    event(site, shopper, id, EventType::View, p, ts)
}

fn record(seq: &str, e: StoredEvent) -> Record {
    Record {
        seq: Some(seq.into()),
        event: e,
    }
}

fn deps(store: MemoryStore) -> Deps<MemoryStore> {
    Deps {
        store,
        decay: Decay::default(),
    }
}

fn weight(store: &MemoryStore, site: &str, key: ListKey, of: &str) -> Option<f64> {
    let lists = store.neighbours.lock().expect("lock");
    lists
        .get(&(site.to_string(), key))
        .and_then(|(l, _)| l.neighbours.iter().find(|n| n.id == of).map(|n| n.w))
}

#[tokio::test]
async fn views_in_one_session_become_each_others_neighbours_with_the_profiles_earlier_views() {
    let store = MemoryStore::with_tenants([tenant("s1")]);
    // The profile (written by ingest) remembers a view from an earlier batch, 5 minutes before.
    store.profiles.lock().expect("lock").insert(
        ("s1".into(), guest_key("g1")),
        ProfileRecord::Profile {
            profile: Box::new(Profile {
                recent_views: vec![Seen {
                    id: "sofa".into(),
                    at: T0 - 5 * MIN,
                }],
                ..Profile::default()
            }),
            version: 1,
        },
    );
    let d = deps(store);
    let (report, err) = aggregate_records(
        &d,
        vec![
            record("1", view("s1", "g1", "e1", "cushion", T0)),
            record("2", view("s1", "g1", "e2", "lamp", T0 + MIN)),
            // Two hours later: a new session, no co-visit with the others.
            record("3", view("s1", "g1", "e3", "rug", T0 + 120 * MIN)),
        ],
    )
    .await;
    assert!(err.is_none());
    assert_eq!((report.applied, report.tenants, report.failed), (3, 1, 0));
    let s = &d.store;
    // cushion right after sofa: forward 1; lamp two after sofa: 0.5; lamp right after cushion: 1.
    let close = |w: Option<f64>, want: f64| w.is_some_and(|w| (w - want).abs() < 1e-3);
    assert!(close(
        weight(s, "s1", ListKey::viewed("sofa"), "cushion"),
        1.0
    ));
    assert!(close(weight(s, "s1", ListKey::viewed("sofa"), "lamp"), 0.5));
    assert!(close(
        weight(s, "s1", ListKey::viewed("cushion"), "lamp"),
        1.0
    ));
    assert!(close(
        weight(s, "s1", ListKey::viewed("lamp"), "cushion"),
        0.5
    ));
    assert_eq!(weight(s, "s1", ListKey::viewed("lamp"), "rug"), None);
    assert_eq!(weight(s, "s1", ListKey::viewed("rug"), "lamp"), None);
    // Every product has its list, even the lone rug (its session count is the similarity's norm).
    assert!(s
        .neighbours
        .lock()
        .expect("lock")
        .contains_key(&("s1".to_string(), ListKey::viewed("rug"))));
}

#[tokio::test]
async fn an_order_makes_its_products_bought_together() {
    let d = deps(MemoryStore::with_tenants([tenant("s1")]));
    let mut order = event("s1", "g1", "o1", EventType::Purchase, "", T0);
    order.items = ["ink", "printer"]
        .iter()
        .map(|p| Line {
            product: product(p),
            quantity: 1,
        })
        .collect();
    let mut add = event("s1", "g2", "c1", EventType::CartAdd, "paper", T0);
    add.cart = Some(vec![Line {
        product: product("printer"),
        quantity: 1,
    }]);
    let (report, err) = aggregate_records(&d, vec![record("1", order), record("2", add)]).await;
    assert!(err.is_none());
    assert_eq!(report.applied, 2);
    assert!(weight(&d.store, "s1", ListKey::bought("ink"), "printer").is_some());
    assert!(weight(&d.store, "s1", ListKey::bought("printer"), "ink").is_some());
    assert!(weight(&d.store, "s1", ListKey::bought("printer"), "paper").is_some());
    // An order is not a view.
    assert_eq!(
        weight(&d.store, "s1", ListKey::viewed("ink"), "printer"),
        None
    );
}

#[tokio::test]
async fn one_tenants_failure_is_reported_alone_and_a_redelivery_counts_nobody_twice() {
    let d = deps(MemoryStore::with_tenants([tenant("good"), tenant("bad")]));
    *d.store.fail_popularity_of.lock().expect("lock") = Some("bad".into());
    let batch = || {
        vec![
            record("100", view("good", "g1", "e1", "sofa", T0)),
            record("101", view("bad", "g9", "e1", "tv", T0)),
            record("102", view("good", "g1", "e2", "lamp", T0 + MIN)),
            record("103", view("bad", "g9", "e2", "radio", T0 + MIN)),
        ]
    };
    let (report, err) = aggregate_records(&d, batch()).await;
    assert!(err.is_some());
    assert_eq!(report.failed_records, ["101", "103"]);
    let answer = serde_json::to_value(report.response()).expect("json");
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "101"}, {"itemIdentifier": "103"}]})
    );
    let score = |site: &str, id: &str| {
        d.store
            .popularity
            .lock()
            .expect("lock")
            .get(site)
            .and_then(|(p, _)| p.products.iter().find(|x| x.id == id).map(|x| x.score))
    };
    let sofa = score("good", "sofa").expect("good tenant written");
    let lamp_w = weight(&d.store, "good", ListKey::viewed("sofa"), "lamp").expect("list");
    assert_eq!(score("bad", "tv"), None);
    // Lambda delivers again from the first failed record (101): 102 comes again, and 100 too when
    // the batch is bisected. The good tenant's counts do not move; the bad tenant's now land once.
    *d.store.fail_popularity_of.lock().expect("lock") = None;
    let (again, err) = aggregate_records(&d, batch()).await;
    assert!(err.is_none());
    assert_eq!((again.duplicates, again.applied), (2, 2));
    assert_eq!(score("good", "sofa"), Some(sofa));
    assert_eq!(
        weight(&d.store, "good", ListKey::viewed("sofa"), "lamp"),
        Some(lamp_w)
    );
    assert!(score("bad", "tv").is_some());
    assert!(again.response().batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_list_write_failure_loses_only_the_lists_and_is_not_retried_into_a_double_count() {
    let d = deps(MemoryStore::with_tenants([tenant("s1")]));
    d.store.fail_list_writes.store(true, Ordering::SeqCst);
    let (report, err) = aggregate_records(
        &d,
        vec![
            record("1", view("s1", "g1", "e1", "sofa", T0)),
            record("2", view("s1", "g1", "e2", "lamp", T0 + MIN)),
        ],
    )
    .await;
    assert!(err.is_none());
    assert_eq!((report.applied, report.lists_lost), (2, 1));
    assert!(report.failed_records.is_empty());
}

#[tokio::test]
async fn a_deleted_tenant_gets_no_lists() {
    let mut t = tenant("s1");
    t.status = affinity::tenant::TenantStatus::Deleting;
    let d = deps(MemoryStore::with_tenants([t]));
    let (report, _) =
        aggregate_records(&d, vec![record("1", view("s1", "g1", "e1", "sofa", T0))]).await;
    assert_eq!((report.inactive, report.applied), (1, 0));
    assert!(d.store.neighbours.lock().expect("lock").is_empty());
}

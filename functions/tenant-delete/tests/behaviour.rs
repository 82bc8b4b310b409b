//! Tenant deletion and shopper erasure as behaviour, against the memory doubles of the ports and a
//! manual clock that the tests move (no sleeps, no wall clock, no DynamoDB). The DynamoDB adapter is held
//! to the same behaviour by `tests/tests/deletion.rs`.

use affinity::clock::ManualClock;
use affinity::deletion::shopper;
use affinity::deletion::{self, Begin, DeletionSettings, DeletionState, RunOutcome, Trigger};
use affinity::oauth::Secret;
use affinity::pii::DerivedPeppers;
use affinity::store::memory::MemoryStore;
use affinity::store::{ProfileRecord, StoredEvent};
use affinity::tenant::{Tenant, TenantStatus};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use std::sync::atomic::Ordering;

const T0: i64 = 1_764_600_000_000;
const SITE: &str = "s_shop";
const TENANT: &str = "shopify-shop";

fn tenant(site_id: &str, tenant_id: &str) -> Tenant {
    Tenant {
        tenant_id: tenant_id.into(),
        site_id: site_id.into(),
        platform: affinity::tenant::Platform::Shopify,
        shop_domain: format!("{site_id}.myshopify.com"),
        status: TenantStatus::Active,
        scopes: vec!["read_customers".into()],
        consent_granted_at: Some("2026-12-01T00:00:00Z".into()),
        messaging_consent: true,
        messaging_consent_at: Some("2026-12-01T00:00:00Z".into()),
        access_token_ciphertext: Some(b"sealed token".to_vec()),
        pepper_ciphertext: Some(b"sealed pepper".to_vec()),
        identity_secret_ciphertext: None,
        api_key_sha256: None,
        default_region: None,
        created_at: "2026-12-01T00:00:00Z".into(),
    }
}

fn event(site_id: &str, guest: &str, id: &str, customer: Option<&str>) -> StoredEvent {
    serde_json::from_value(
        json!({"site_id": site_id, "shopper_id": guest, "event_id": id,
        "type": "view", "ts": T0, "received_ms": T0, "expires_at": T0 / 1000 + 86_400,
        "customer_id": customer, "product": {"id": "p1"}}),
    )
    .expect("stored event")
}

fn put_profile(store: &MemoryStore, site_id: &str, key: &str, record: ProfileRecord) {
    let mut p = store.profiles.lock().expect("lock");
    p.insert((site_id.to_string(), key.to_string()), record);
}

fn alias(to: &str) -> ProfileRecord {
    ProfileRecord::Alias {
        linked_to: to.into(),
        version: 1,
    }
}

fn profile(guests: &[&str], customer: Option<&str>) -> ProfileRecord {
    let p = affinity::profile::Profile {
        guest_ids: guests.iter().map(|g| (*g).to_string()).collect(),
        customer_id: customer.map(str::to_string),
        ..Default::default()
    };
    ProfileRecord::Profile {
        profile: Box::new(p),
        version: 1,
    }
}

/// Our tenant with `events` events and three profile items, and a neighbour tenant with one of each.
fn store_with_data(events: usize) -> MemoryStore {
    let store =
        MemoryStore::with_tenants([tenant(SITE, TENANT), tenant("s_other", "shopify-other")]);
    {
        let mut e = store.events.lock().expect("lock");
        e.extend((0..events).map(|i| event(SITE, &format!("g{}", i % 3), &format!("e{i}"), None)));
        e.push(event("s_other", "g0", "e0", None));
    }
    put_profile(&store, SITE, "c:42", profile(&["g0", "g1"], Some("42")));
    put_profile(&store, SITE, "g:g0", alias("c:42"));
    put_profile(&store, SITE, "g:g2", profile(&["g2"], None));
    put_profile(&store, "s_other", "g:g0", profile(&["g0"], None));
    {
        let mut p = store.popularity.lock().expect("lock");
        p.insert(SITE.into(), (Default::default(), 1));
        p.insert("s_other".into(), (Default::default(), 1));
    }
    store
}

fn settings() -> DeletionSettings {
    DeletionSettings {
        page_size: 4,
        ..DeletionSettings::default()
    }
}

/// A run's deadline that no wait fits in (the margin is 5 s, the re-check 5 s, the grace period 15 s).
fn soon(clock: &ManualClock) -> i64 {
    use affinity::clock::Clock;
    clock.now_ms() + 8_000
}

async fn run(store: &MemoryStore, clock: &ManualClock, settings: &DeletionSettings) -> RunOutcome {
    deletion::run(store, TENANT, settings, clock, soon(clock))
        .await
        .expect("run")
}

fn left_of(store: &MemoryStore, site_id: &str) -> (usize, usize, bool) {
    let events = store.events.lock().expect("lock");
    let profiles = store.profiles.lock().expect("lock");
    (
        events.iter().filter(|e| e.site_id == site_id).count(),
        profiles.keys().filter(|(s, _)| s == site_id).count(),
        store.popularity.lock().expect("lock").contains_key(site_id),
    )
}

#[tokio::test]
async fn when_a_deletion_begins_the_secrets_are_destroyed_at_once_and_the_job_is_queued() {
    let store = store_with_data(5);
    let begun = deletion::begin(&store, TENANT, Trigger::Operator, T0)
        .await
        .expect("begin");
    let Begin::Started(job) = begun else {
        panic!("a new job: {begun:?}")
    };
    assert_eq!(
        job.secrets_destroyed_at.as_deref(),
        Some("2025-12-01T14:40:00Z")
    );
    let record = store.tenants.lock().expect("lock")[SITE].clone();
    assert_eq!(record.status, TenantStatus::Deleting);
    assert_eq!(
        (
            record.access_token_ciphertext,
            record.pepper_ciphertext,
            record.messaging_consent
        ),
        (None, None, false)
    );
    assert!(store.deletion_queue.lock().expect("lock").contains(TENANT));
    // Asking again reports the same job.
    let again = deletion::begin(&store, TENANT, Trigger::ShopifyShopRedact, T0 + 1)
        .await
        .expect("again");
    assert_eq!(again, Begin::Existing(job));
}

/// Ten events of `SITE` and a deletion of `TENANT` begun by the operator at `T0`; a clock at `T0` and
/// the test settings.
async fn begun_by_the_operator() -> (MemoryStore, ManualClock, DeletionSettings) {
    let store = store_with_data(10);
    deletion::begin(&store, TENANT, Trigger::Operator, T0)
        .await
        .expect("begin");
    (store, ManualClock::at(T0), settings())
}

#[tokio::test]
async fn a_clean_pass_counts_only_after_the_grace_period_and_two_must_agree() {
    let (store, clock, s) = begun_by_the_operator().await;
    // The first pass deletes everything, then the job waits for the grace period.
    let RunOutcome::Paused(job) = run(&store, &clock, &s).await else {
        panic!("waits for the grace period")
    };
    assert_eq!((job.passes, job.clean_passes), (1, 0));
    assert_eq!(job.phase(), "waiting to verify (grace period or re-check)");
    assert_eq!(left_of(&store, SITE), (0, 0, false));
    // A request that read the tenant before the mark still writes.
    store
        .events
        .lock()
        .expect("lock")
        .push(event(SITE, "late", "late-1", None));
    // Inside the grace period nothing more happens.
    clock.advance(5_000);
    let RunOutcome::Paused(job) = run(&store, &clock, &s).await else {
        panic!("still waiting")
    };
    assert_eq!(job.passes, 1);
    // After it, a pass finds the late event (not clean), the next is clean, then the re-check.
    clock.advance(10_000);
    let RunOutcome::Paused(job) = run(&store, &clock, &s).await else {
        panic!("waits for the re-check")
    };
    assert_eq!((job.passes, job.clean_passes), (3, 1));
    assert_eq!(left_of(&store, SITE).0, 0);
    clock.advance(s.recheck_ms);
    let RunOutcome::Completed(tomb) = run(&store, &clock, &s).await else {
        panic!("two clean passes complete it")
    };
    assert_eq!((tomb.passes, tomb.clean_passes), (4, 2));
    assert_eq!(tomb.deleted.events, 11, "the late event is counted once");
    assert_eq!(tomb.deleted.profiles, 3);
    assert_eq!((tomb.deleted.popularity, tomb.deleted.tenants), (1, 2));
    assert_eq!(tomb.site_id, None);
    assert_eq!(tomb.lease_owner, None);
    // What remains: a site tombstone that keeps the site id switched off, and the other tenant.
    let record = store.tenants.lock().expect("lock")[SITE].clone();
    assert_eq!(record, deletion::site_tombstone(&record, clock_now(&clock)));
    assert_eq!(store.tenant_pointers.site_of(TENANT), None);
    assert!(store.deletion_queue.lock().expect("lock").is_empty());
    assert_eq!(left_of(&store, "s_other"), (1, 1, true));
}

fn clock_now(clock: &ManualClock) -> i64 {
    use affinity::clock::Clock;
    clock.now_ms()
}

#[tokio::test]
async fn when_a_pass_is_interrupted_it_resumes_at_the_checkpoint_with_exact_counts() {
    let (store, clock, s) = begun_by_the_operator().await;
    // The run dies after saving its first checkpoint: the page is counted and kept in flight.
    store.fail_deletes.store(true, Ordering::SeqCst);
    let died = deletion::run(&store, TENANT, &s, &clock, soon(&clock)).await;
    assert!(died.is_err());
    let job = store.deletions.lock().expect("lock")[TENANT].clone();
    assert_eq!(job.deleted.events, 4);
    assert_eq!(
        job.in_flight().expect("parses").map(|p| p.keys.len()),
        Some(4)
    );
    assert_eq!(left_of(&store, SITE).0, 10, "nothing deleted yet");
    // Until its lease expires (at its deadline) no other run works on it.
    store.fail_deletes.store(false, Ordering::SeqCst);
    let RunOutcome::Busy(_) = run(&store, &clock, &s).await else {
        panic!("the dead run's lease holds")
    };
    clock.advance(8_001);
    let RunOutcome::Paused(job) = run(&store, &clock, &s).await else {
        panic!("resumes, then waits for the grace period")
    };
    assert_eq!(
        job.deleted.events, 10,
        "the in-flight page is not counted twice"
    );
    assert_eq!(left_of(&store, SITE), (0, 0, false));
    assert_eq!(job.runs, 2);
}

#[tokio::test]
async fn the_schedule_with_cargo_lambdas_600000_deadline_works_instead_of_pausing() {
    let store = store_with_data(6);
    let clock = ManualClock::at(T0);
    deletion::begin(&store, TENANT, Trigger::ShopifyShopRedact, T0)
        .await
        .expect("begin");
    clock.advance(60_000); // past the grace period
    let deps = tenant_delete::Deps {
        store,
        peppers: DerivedPeppers,
        settings: DeletionSettings {
            recheck_ms: 0,
            ..settings()
        },
        request_budget_ms: 3_000,
        shopify_secret: Secret::new("secret"),
        platform: affinity::oauth::client::PlatformClient::new(std::time::Duration::from_secs(1))
            .expect("client"),
        shopify_base_url: "http://127.0.0.1:9".into(),
        clock: clock.shared(),
    };
    let mut ctx = Context::default();
    ctx.deadline = 600_000; // what `cargo lambda invoke` sends: a duration, not an instant
    let schedule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = tenant_delete::invoke(&deps, LambdaEvent::new(schedule, ctx))
        .await
        .expect("tick");
    assert_eq!(report["completed"], json!([TENANT]), "{report}");
    assert_eq!(report["paused"], json!([]));
    let tomb = deps.store.deletions.lock().expect("lock")[TENANT].clone();
    assert_eq!(tomb.state, DeletionState::Completed);
    assert_eq!(tomb.deleted.events, 6);
}

#[tokio::test]
async fn erasing_a_customer_removes_their_devices_and_leaves_other_shoppers() {
    let store = store_with_data(0);
    {
        let mut e = store.events.lock().expect("lock");
        e.push(event(SITE, "g0", "a", None));
        e.push(event(SITE, "g1", "b", Some("42")));
        // A shared computer that customer 99 logged in on afterwards: only 42's event is 42's.
        e.push(event(SITE, "gs", "c", Some("42")));
        e.push(event(SITE, "gs", "d", Some("99")));
        e.push(event(SITE, "g2", "e", None));
    }
    put_profile(
        &store,
        SITE,
        "c:42",
        profile(&["g0", "g1", "gs"], Some("42")),
    );
    put_profile(&store, SITE, "g:g1", alias("c:42"));
    put_profile(&store, SITE, "g:gs", alias("c:99"));
    put_profile(&store, SITE, "c:99", profile(&["gs"], Some("99")));

    let export = shopper::export(&store, SITE, "g:g1", T0)
        .await
        .expect("export");
    assert_eq!(export.linked_ids.canonical, "c:42");
    assert_eq!(export.linked_ids.guest_ids, ["g0", "g1"]);
    assert_eq!(export.linked_ids.shared_guest_ids, ["gs"]);
    let ids: Vec<&str> = export.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);

    let report = shopper::erase(&store, SITE, "c:42").await.expect("erase");
    assert_eq!(
        (report.profiles, report.events, report.guest_ids),
        (3, 3, 2)
    );
    let left: Vec<String> = store
        .events
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| e.site_id == SITE)
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(left, ["d", "e"]);
    let profiles = store.profiles.lock().expect("lock");
    let mut keys: Vec<&str> = profiles
        .keys()
        .filter(|(s, _)| s == SITE)
        .map(|(_, k)| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["c:99", "g:g2", "g:gs"]);
}

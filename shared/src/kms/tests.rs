use super::*;
use crate::clock::ManualClock;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;
const FIVE_MIN_MS: i64 = 300_000;

fn cache(ttl: Duration) -> (ManualClock, PepperCache) {
    let clock = ManualClock::at(T0);
    let cache = PepperCache::new(ttl, clock.shared());
    (clock, cache)
}

fn pepper(b: u8) -> Arc<Pepper> {
    Arc::new(Pepper::new([b; 32]))
}

#[test]
fn a_pepper_is_served_for_its_ttl_and_evicted_on_the_first_read_after() {
    let (clock, c) = cache(PEPPER_TTL);
    c.put("t1", b"ct1", pepper(1));
    clock.advance(FIVE_MIN_MS - 1);
    assert!(c.get("t1", b"ct1").is_some());
    clock.advance(1);
    assert!(c.get("t1", b"ct1").is_none());
    assert_eq!(c.len(), 0, "evicted, not just hidden");
}

#[test]
fn any_read_sweeps_out_an_idle_tenants_expired_pepper() {
    let (clock, c) = cache(PEPPER_TTL);
    c.put("idle", b"ct-idle", pepper(1));
    clock.advance(FIVE_MIN_MS - 10);
    c.put("busy", b"ct-busy", pepper(2));
    clock.advance(10);
    assert!(c.get("busy", b"ct-busy").is_some());
    assert_eq!(
        c.len(),
        1,
        "the idle tenant's pepper left on another tenant's read"
    );
}

#[test]
fn a_ttl_longer_than_five_minutes_is_cut_to_five() {
    let (clock, c) = cache(Duration::from_secs(3600));
    c.put("t1", b"ct1", pepper(1));
    clock.advance(FIVE_MIN_MS);
    assert!(c.get("t1", b"ct1").is_none());
}

#[test]
fn a_reinstalled_tenant_never_gets_its_old_pepper() {
    let (_clock, c) = cache(PEPPER_TTL);
    c.put("t1", b"old-ciphertext", pepper(1));
    assert!(c.get("t1", b"new-ciphertext").is_none());
    assert!(
        c.get("t1", b"old-ciphertext").is_none(),
        "the old entry is gone"
    );
}

#[test]
fn forget_evicts_at_once_and_a_full_cache_drops_its_oldest() {
    let (clock, c) = cache(PEPPER_TTL);
    c.put("t1", b"ct1", pepper(1));
    c.forget("t1");
    assert!(c.is_empty());
    for i in 0..PEPPER_CACHE_MAX {
        c.put(&format!("t{i}"), b"ct", pepper(1));
        clock.advance(1);
    }
    c.put("newest", b"ct", pepper(2));
    assert_eq!(c.len(), PEPPER_CACHE_MAX);
    assert!(c.get("t0", b"ct").is_none(), "the oldest went");
    assert!(c.get("t1", b"ct").is_some());
    assert!(c.get("newest", b"ct").is_some());
}

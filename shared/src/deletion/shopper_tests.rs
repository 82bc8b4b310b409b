//! Who a shopper is and what erasing them removes: the rules on records, and over the memory doubles.

use super::*;
use crate::profile::Profile;

fn alias(to: &str) -> ProfileRecord {
    ProfileRecord::Alias {
        linked_to: to.into(),
        version: 1,
    }
}

fn profile() -> ProfileRecord {
    ProfileRecord::Profile {
        profile: Box::default(),
        version: 1,
    }
}

#[test]
fn a_guest_that_logged_in_as_someone_else_since_is_a_shared_device() {
    let records = BTreeMap::from([
        ("c:42".to_string(), profile()),
        ("g:g1".to_string(), alias("c:42")),
        ("g:gs".to_string(), alias("c:99")),
        ("e:moved".to_string(), alias("c:99")),
        ("e:own".to_string(), alias("c:42")),
    ]);
    let guests = BTreeSet::from(["g1".to_string(), "gs".to_string()]);
    let s = person("g:g1", "c:42".into(), Some("42".into()), guests, records);
    assert_eq!(s.ids.guest_ids, ["g1"]);
    assert_eq!(s.ids.shared_guest_ids, ["gs"]);
    assert_eq!(s.ids.identity_keys, ["e:own"]);
    assert_eq!(
        s.records.keys().collect::<Vec<_>>(),
        ["c:42", "e:own", "g:g1"]
    );
    assert_eq!(
        s.event_sources(),
        [
            ("g1".to_string(), None),
            ("gs".to_string(), Some("42".to_string()))
        ]
    );
    assert_eq!(s.erasure_keys("g:g1"), ["c:42", "e:own", "g:g1"]);
}

#[test]
fn the_export_shows_event_fingerprints_in_hex_and_names_the_kind() {
    let mut p = Profile::default();
    p.seen.push(255);
    let record = ProfileRecord::Profile {
        profile: Box::new(p),
        version: 3,
    };
    let v = profile_json("g:g1", &record);
    assert_eq!(v["seen"], serde_json::json!(["00000000000000ff"]));
    assert_eq!(
        (v["key"].as_str(), v["kind"].as_str()),
        (Some("g:g1"), Some("profile"))
    );
    let v = profile_json("g:g2", &alias("c:1"));
    assert_eq!(
        v,
        serde_json::json!({"key": "g:g2", "kind": "alias", "linked_to": "c:1"})
    );
}

/// Over the memory doubles of the ports: links found through `links_to` and `claimants`, however many.
#[cfg(feature = "test-doubles")]
mod memory_tests {
    use super::super::*;
    use crate::profile::{Profile, MAX_GUEST_IDS};
    use crate::store::memory::MemoryStore;
    use crate::store::{claimant_key, ProfileStore, ProfileWrite};

    const SITE: &str = "links-site";

    fn write(key: &str, record: ProfileRecord) -> ProfileWrite {
        ProfileWrite {
            key: key.into(),
            record,
            expected: None,
            overwrite: key.starts_with("claim:"),
        }
    }

    fn link(to: &str) -> ProfileRecord {
        ProfileRecord::Alias {
            linked_to: to.into(),
            version: 0,
        }
    }

    fn claim(to: &str) -> ProfileRecord {
        ProfileRecord::Claim {
            linked_to: to.into(),
            version: 0,
        }
    }

    fn device(i: usize) -> String {
        format!("device-of-42-{i:06}")
    }

    /// Customer 42 with 300 devices, an email one device claimed before it logged in, another email
    /// proven for them that a stranger also claimed, and a shared computer now customer 99's.
    async fn store() -> MemoryStore {
        let store = MemoryStore::default();
        let mut guest_ids: Vec<String> = (290..300).map(device).collect();
        guest_ids.push("shared-computer-0001".into());
        let profile = Profile {
            guest_ids,
            ..Profile::default()
        };
        assert!(profile.guest_ids.len() <= MAX_GUEST_IDS);
        let mut writes = vec![write(
            "c:42",
            ProfileRecord::Profile {
                profile: Box::new(profile),
                version: 0,
            },
        )];
        writes.extend((0..300).map(|i| write(&guest_key(&device(i)), link("c:42"))));
        writes.push(write("e:before-login", claim(&guest_key(&device(5)))));
        writes.push(write("e:proven", link("c:42")));
        let stranger = guest_key("stranger-browser-01");
        writes.push(write(
            &claimant_key("e:proven", &stranger),
            claim(&stranger),
        ));
        writes.push(write("g:shared-computer-0001", link("c:99")));
        writes.push(write(
            "c:99",
            ProfileRecord::Profile {
                profile: Box::default(),
                version: 0,
            },
        ));
        // As ingest writes them: at most one transaction's worth at a time.
        for part in writes.chunks(crate::store::MAX_TRANSACT_ACTIONS) {
            store.save_profiles(SITE, part.to_vec()).await.expect("saved");
        }
        store
    }

    #[tokio::test]
    async fn every_linked_device_and_claim_is_found_without_a_list_in_the_profile() {
        let store = store().await;
        let shopper = resolve(&store, SITE, &guest_key(&device(3)))
            .await
            .expect("resolve");
        let mut all: Vec<String> = (0..300).map(device).collect();
        all.sort();
        assert_eq!(shopper.ids.guest_ids, all);
        assert_eq!(shopper.ids.shared_guest_ids, ["shared-computer-0001"]);
        assert_eq!(shopper.ids.identity_keys, ["e:before-login", "e:proven"]);
        assert_eq!(
            store.claimants(SITE, "e:proven").await.expect("claimants"),
            BTreeSet::from(["g:stranger-browser-01".to_string()])
        );
        let report = erase(&store, SITE, "c:42").await.expect("erase");
        // The profile, 300 aliases, the two email items; the stranger's claim and customer 99 stay.
        assert_eq!((report.profiles, report.guest_ids), (303, 300));
        let mut left: Vec<String> = store
            .profiles
            .lock()
            .expect("unpoisoned")
            .keys()
            .filter(|(s, _)| s == SITE)
            .map(|(_, k)| k.clone())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "c:99",
                "claim:e:proven#g:stranger-browser-01",
                "g:shared-computer-0001"
            ]
        );
    }

    #[tokio::test]
    async fn a_claimant_item_is_written_blind_and_found_from_both_ends() {
        let store = MemoryStore::default();
        let key = claimant_key("e:x", "g:browser-000000001");
        for _ in 0..2 {
            store
                .save_profiles(SITE, vec![write(&key, claim("g:browser-000000001"))])
                .await
                .expect("written again without a read");
        }
        let found = store
            .links_to(SITE, "g:browser-000000001")
            .await
            .expect("links");
        assert_eq!(found.keys().collect::<Vec<_>>(), [&key]);
        assert_eq!(
            store.claimants(SITE, "e:x").await.expect("claimants"),
            BTreeSet::from(["g:browser-000000001".to_string()])
        );
        assert!(store.claimants(SITE, "e:y").await.expect("none").is_empty());
    }
}

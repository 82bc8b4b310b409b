use super::*;
use crate::event::{validate, IngestMode};
use serde_json::json;

const NOW: i64 = 1_795_968_000_000;

// The events are parsed as the import route does (which keeps short ids such as "a"): these tests
// are about linking; the live route's guest id rule has its own test in `event`.
fn ev(v: serde_json::Value, identities: &[&str]) -> Event {
    let mut e = validate(&v, 0, NOW, IngestMode::Import).expect("valid event");
    e.identities = identities.iter().map(|s| s.to_string()).collect();
    e
}

fn alias(to: &str) -> ProfileRecord {
    ProfileRecord::Alias {
        linked_to: to.into(),
        version: 3,
    }
}

#[test]
fn an_event_follows_customer_then_identity_then_login_then_alias() {
    let view =
        |g: &str| json!({"type":"view","shopper_id":g,"product":{"id":"p"},"timestamp":NOW-10});
    let events = vec![
        (
            0,
            ev(
                json!({"type":"view","shopper_id":"a","customer_id":"42","product":{"id":"p"},"timestamp":NOW-5}),
                &[],
            ),
        ),
        (1, ev(view("a"), &[])),
        (2, ev(view("b"), &["e:known"])),
        (3, ev(view("c"), &[])),
        (4, ev(view("d"), &[])),
    ];
    let records: Records = [
        ("e:known".to_string(), alias("c:7")),
        ("g:c".to_string(), alias("c:9")),
    ]
    .into();
    let l = Linking::new(&events, &records);
    let of = |i: usize| l.canonical_of(&events[i].1, &records);
    assert_eq!(of(0), "c:42", "a customer id decides");
    assert_eq!(of(1), "c:42", "the guest logs in within the request");
    assert_eq!(of(2), "c:7", "a linked email decides");
    assert_eq!(of(3), "c:9", "a guest alias is followed");
    assert_eq!(of(4), "g:d", "otherwise the guest's own profile");
}

#[test]
fn a_new_email_belongs_to_the_first_event_that_carries_it() {
    let events = vec![
        (
            0,
            ev(
                json!({"type":"view","shopper_id":"laptop","product":{"id":"p"},"timestamp":NOW-1}),
                &["e:x"],
            ),
        ),
        (
            1,
            ev(
                json!({"type":"view","shopper_id":"phone","product":{"id":"p"},"timestamp":NOW-2}),
                &["e:x"],
            ),
        ),
    ];
    let records = Records::new();
    let l = Linking::new(&events, &records);
    assert_eq!(l.canonical_of(&events[0].1, &records), "g:phone");
}

#[test]
fn folding_a_login_merges_the_guest_and_aliases_it_and_its_email() {
    let group = vec![(
        0,
        ev(
            json!({"type":"purchase","shopper_id":"g","customer_id":"42","items":[{"id":"p","category":"c"}],"timestamp":NOW-1}),
            &["e:x"],
        ),
    )];
    let mut guest = Profile::default();
    guest.apply(
        &ev(json!({"type":"view","shopper_id":"g","product":{"id":"q","category":"c"},"timestamp":NOW-9}), &[]),
        &Decay::default(),
    );
    let records: Records = [(
        "g:g".to_string(),
        ProfileRecord::Profile {
            profile: Box::new(guest),
            version: 5,
        },
    )]
    .into();
    let plan = plan_group("c:42", &group, &records, &Decay::default()).expect("plan");
    assert_eq!((plan.applied, plan.duplicates), (1, 0));
    let keys: Vec<(&str, Option<u64>)> = plan
        .writes
        .iter()
        .map(|w| (w.key.as_str(), w.expected))
        .collect();
    assert_eq!(keys, [("c:42", None), ("g:g", Some(5)), ("e:x", None)]);
    let ProfileRecord::Profile { profile, .. } = &plan.writes[0].record else {
        panic!("the profile first")
    };
    assert_eq!(
        profile.event_count, 2,
        "the guest's view merged, the purchase applied"
    );
    // Planned again on what it wrote: nothing left to do.
    let after: Records = plan
        .writes
        .iter()
        .map(|w| (w.key.clone(), w.record.clone()))
        .collect();
    let again = plan_group("c:42", &group, &after, &Decay::default()).expect("plan");
    assert_eq!(
        (again.writes.len(), again.applied, again.duplicates),
        (0, 0, 1)
    );
}

#[test]
fn a_canonical_item_that_became_an_alias_is_a_conflict() {
    let group = vec![(
        0,
        ev(
            json!({"type":"view","shopper_id":"g","product":{"id":"p"}}),
            &[],
        ),
    )];
    let records: Records = [("g:g".to_string(), alias("c:1"))].into();
    assert!(matches!(
        plan_group("g:g", &group, &records, &Decay::default()),
        Err(StoreError::Conflict)
    ));
}

#[test]
fn a_claim_never_decides_nor_moves_a_link_and_fills_only_an_empty_key() {
    let mut claimer = ev(
        json!({"type":"view","shopper_id":"x","product":{"id":"p"},"timestamp":NOW-1}),
        &[],
    );
    claimer.claims = vec!["e:owned".into(), "e:new".into()];
    let events = vec![(0, claimer)];
    let records: Records = [("e:owned".to_string(), alias("c:7"))].into();
    let l = Linking::new(&events, &records);
    assert_eq!(
        l.canonical_of(&events[0].1, &records),
        "g:x",
        "the claim decides nothing"
    );
    let plan = plan_group("g:x", &events, &records, &Decay::default()).expect("plan");
    let (claimants, writes): (Vec<&ProfileWrite>, Vec<&ProfileWrite>) = plan
        .writes
        .iter()
        .partition(|w| w.key.starts_with("claim:"));
    // The claim of the proven key, as an item of its own (for erasure), written blind.
    let claimants: Vec<(&str, bool)> = claimants
        .iter()
        .map(|w| (w.key.as_str(), w.overwrite))
        .collect();
    assert_eq!(claimants, [("claim:e:owned#g:x", true)]);
    let writes: Vec<(&str, &ProfileRecord)> =
        writes.iter().map(|w| (w.key.as_str(), &w.record)).collect();
    assert_eq!(writes.len(), 2, "the profile and one claim: {writes:?}");
    assert_eq!(writes[0].0, "g:x");
    assert_eq!(
        writes[1],
        (
            "e:new",
            &ProfileRecord::Claim {
                linked_to: "g:x".into(),
                version: 0
            }
        ),
        "the proven e:owned is left alone"
    );
}

#[test]
fn among_claims_the_most_recent_takes_the_lookup_but_never_from_a_proven_link() {
    let mut claimer = ev(
        json!({"type":"view","shopper_id":"victim-browser-0001","product":{"id":"p"},"timestamp":NOW-1}),
        &[],
    );
    claimer.claims = vec!["e:claimed".into(), "e:proven".into()];
    let events = vec![(0, claimer)];
    let records: Records = [
        (
            "e:claimed".to_string(),
            ProfileRecord::Claim {
                linked_to: "g:attacker-browser-01".into(),
                version: 4,
            },
        ),
        ("e:proven".to_string(), alias("c:7")),
    ]
    .into();
    let plan = plan_group(
        "g:victim-browser-0001",
        &events,
        &records,
        &Decay::default(),
    )
    .expect("plan");
    let heads: Vec<(&str, Option<u64>, &ProfileRecord)> = plan
        .writes
        .iter()
        .filter(|w| w.key.starts_with("e:"))
        .map(|w| (w.key.as_str(), w.expected, &w.record))
        .collect();
    assert_eq!(
        heads,
        [(
            "e:claimed",
            Some(4),
            &ProfileRecord::Claim {
                linked_to: "g:victim-browser-0001".into(),
                version: 0
            }
        )],
        "the newer claim moves the older one, on its version; the proven e:proven is left alone"
    );
    let claimants: Vec<(&str, &ProfileRecord)> = plan
        .writes
        .iter()
        .filter(|w| w.overwrite)
        .map(|w| (w.key.as_str(), &w.record))
        .collect();
    assert_eq!(
        claimants,
        [
            (
                "claim:e:claimed#g:attacker-browser-01",
                &ProfileRecord::Claim {
                    linked_to: "g:attacker-browser-01".into(),
                    version: 0
                }
            ),
            (
                "claim:e:proven#g:victim-browser-0001",
                &ProfileRecord::Claim {
                    linked_to: "g:victim-browser-0001".into(),
                    version: 0
                }
            )
        ],
        "the displaced claim and the claim of the proven key are kept for erasure"
    );
    // Planned again on what it wrote: the claimant items are not written twice.
    let ProfileRecord::Profile { profile, .. } = &plan.writes[0].record else {
        panic!("the profile first")
    };
    let mut after = records.clone();
    after.insert(
        "g:victim-browser-0001".into(),
        ProfileRecord::Profile {
            profile: profile.clone(),
            version: 1,
        },
    );
    after.insert("e:claimed".into(), heads[0].2.clone());
    let mut again = events[0].1.clone();
    again.event_id = "another-event-id-1".into();
    let plan = plan_group(
        "g:victim-browser-0001",
        &[(0, again)],
        &after,
        &Decay::default(),
    )
    .expect("plan");
    let keys: Vec<&str> = plan.writes.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["g:victim-browser-0001"]);
}

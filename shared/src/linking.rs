//! Identity linking: which profile each event of an ingest request belongs to, and the writes that
//! fold a group of events into it. Pure: the ingest function reads the records, asks this module,
//! and writes what it plans.
//!
//! Only proven identities link: a customer id and email/phone keys that the ingest function kept in
//! [`Event::customer_id`] and [`Event::identities`] (the import route, or an identity token on the live
//! route). An event belongs to (in this order) its customer's profile when it carries a customer id;
//! else the profile its proven email or phone key is linked to (an email or phone new in the request
//! belongs to the profile of the first event that carries it, so two devices sending one address are
//! linked); else the customer its guest id logs in as within the request (so a session's anonymous
//! events and its login land together); else where its guest id points (an alias), or the guest's own
//! profile.
//!
//! Claims ([`Event::claims`]: an email or phone typed into a storefront form) never decide where an
//! event goes. A claim takes the identity key's own item, the messaging lookup's, as a
//! [`ProfileRecord::Claim`] to the event's profile when that key holds nothing or another profile's
//! claim (among claims the most recent decides); a claim never moves a proven link
//! ([`ProfileRecord::Alias`]), which replaces any claim. Every claim that does not hold the key (it
//! met a proven link, or a newer claim or a proven link displaced it) is kept as a claimant item
//! ([`claimant_key`]), so erasure finds every browser that sent an address.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::event::Event;
use crate::profile::{Decay, Profile};
use crate::store::{
    claimant_key, customer_key, guest_key, ProfileRecord, ProfileWrite, StoreError,
};

/// Profile records by shopper key, as read for one request.
pub type Records = HashMap<String, ProfileRecord>;

/// The profile of a record that is one (not an alias).
pub fn profile_of(r: Option<&ProfileRecord>) -> Option<&Profile> {
    match r {
        Some(ProfileRecord::Profile { profile, .. }) => Some(profile),
        _ => None,
    }
}

/// The profile keys a request's events name before any personal data is hashed: guest and customer.
pub fn base_keys(events: &[(usize, Event)]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (_, e) in events {
        keys.insert(guest_key(&e.shopper_id));
        if let Some(c) = &e.customer_id {
            keys.insert(customer_key(c));
        }
    }
    keys
}

/// Every key the events touch: [`base_keys`] and their email and phone identity keys.
pub fn keys_touched(events: &[(usize, Event)]) -> BTreeSet<String> {
    let mut keys = base_keys(events);
    keys.extend(
        events
            .iter()
            .flat_map(|(_, e)| e.identities.iter().chain(&e.claims).cloned()),
    );
    keys
}

/// The profiles that aliases among `records` point to and that were not read yet.
pub fn alias_targets_missing(records: &Records) -> Vec<String> {
    records
        .values()
        .filter_map(|r| match r {
            ProfileRecord::Alias { linked_to, .. } if !records.contains_key(linked_to) => {
                Some(linked_to.clone())
            }
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Who is who in one request: the logins it contains and the emails/phones it introduces.
#[derive(Debug, Default)]
pub struct Linking {
    /// Guest id to customer id, for the guests that log in within this request (the latest wins).
    logins: HashMap<String, String>,
    /// Identity key to the profile of the first event that carries it.
    claims: HashMap<String, String>,
}

impl Linking {
    /// The links of `events`, given the profile records read for them.
    pub fn new(events: &[(usize, Event)], records: &Records) -> Self {
        let mut by_time: Vec<&Event> = events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.customer_id.is_some())
            .collect();
        by_time.sort_by_key(|e| e.timestamp_ms);
        let logins = by_time
            .into_iter()
            .filter_map(|e| e.customer_id.clone().map(|c| (e.shopper_id.clone(), c)))
            .collect();
        let mut linking = Self {
            logins,
            claims: HashMap::new(),
        };
        let mut identified: Vec<&Event> = events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| !e.identities.is_empty())
            .collect();
        identified.sort_by_key(|e| e.timestamp_ms);
        for e in identified {
            let target = linking.canonical_of(e, records);
            for k in &e.identities {
                linking
                    .claims
                    .entry(k.clone())
                    .or_insert_with(|| target.clone());
            }
        }
        linking
    }

    /// The key of the profile `e` belongs to (see the module's rules).
    pub fn canonical_of(&self, e: &Event, records: &Records) -> String {
        if let Some(c) = &e.customer_id {
            return customer_key(c);
        }
        let known_identity = e.identities.iter().find_map(|k| match records.get(k) {
            Some(ProfileRecord::Alias { linked_to, .. }) => Some(linked_to.clone()),
            _ => None,
        });
        if let Some(target) = known_identity.or_else(|| {
            e.identities
                .iter()
                .find_map(|k| self.claims.get(k).cloned())
        }) {
            return target;
        }
        if let Some(c) = self.logins.get(&e.shopper_id) {
            return customer_key(c);
        }
        match records.get(&guest_key(&e.shopper_id)) {
            Some(ProfileRecord::Alias { linked_to, .. }) => linked_to.clone(),
            _ => guest_key(&e.shopper_id),
        }
    }

    /// Splits `events` into the new ones and the number of duplicates: events that their profile (or
    /// their guest's own) already applied, or that repeat an event id of the same guest in the request.
    pub fn fresh(
        &self,
        events: Vec<(usize, Event)>,
        records: &Records,
    ) -> (Vec<(usize, Event)>, usize) {
        let mut in_request: HashSet<(String, String)> = HashSet::new();
        let mut fresh = Vec::with_capacity(events.len());
        let mut duplicates = 0;
        for (i, e) in events {
            let canonical = self.canonical_of(&e, records);
            let seen = [
                records.get(&canonical),
                records.get(&guest_key(&e.shopper_id)),
            ]
            .into_iter()
            .filter_map(profile_of)
            .any(|p| p.has_seen(&e.event_id));
            if seen || !in_request.insert((e.shopper_id.clone(), e.event_id.clone())) {
                duplicates += 1;
            } else {
                fresh.push((i, e));
            }
        }
        (fresh, duplicates)
    }
}

/// What folding a group of events into its profile takes.
#[derive(Debug, Default, PartialEq)]
pub struct GroupPlan {
    /// The conditional writes, the profile first (empty: nothing to write).
    pub writes: Vec<ProfileWrite>,
    /// Events applied to the profile.
    pub applied: usize,
    /// Events the profile had already applied.
    pub duplicates: usize,
}

/// The writes that fold `group` into the profile at `canonical`: the profile itself, an alias for
/// each guest id newly linked to it by a proven identity (whose own profile, if any, is merged first)
/// and for each proven email or phone key (pointing at the profile it was last seen with), and a
/// claim for each claimed email or phone key: at the key itself when it holds nothing or another
/// profile's claim (never a proven link), else a claimant item (once per profile); a claim displaced
/// from a key becomes its profile's claimant item.
///
/// # Errors
/// [`StoreError::Conflict`] when the canonical item became an alias since it was read: re-read, plan
/// again.
pub fn plan_group(
    canonical: &str,
    group: &[(usize, Event)],
    records: &Records,
    decay: &Decay,
) -> Result<GroupPlan, StoreError> {
    let (mut profile, expected) = match records.get(canonical) {
        Some(ProfileRecord::Profile { profile, version }) => ((**profile).clone(), Some(*version)),
        Some(ProfileRecord::Alias { .. } | ProfileRecord::Claim { .. }) => {
            return Err(StoreError::Conflict)
        }
        None => (Profile::default(), None),
    };
    let alias = |key: &str| ProfileWrite {
        key: key.to_string(),
        record: ProfileRecord::Alias {
            linked_to: canonical.to_string(),
            version: 0,
        },
        expected: records.get(key).map(ProfileRecord::version),
        overwrite: false,
    };
    let claim = |key: String, expected: Option<u64>| ProfileWrite {
        key,
        record: ProfileRecord::Claim {
            linked_to: canonical.to_string(),
            version: 0,
        },
        expected,
        overwrite: false,
    };
    // That `profile`'s browser claimed `identity`: an item of its own, written blind.
    let claimant = |identity: &str, profile: &str| ProfileWrite {
        key: claimant_key(identity, profile),
        record: ProfileRecord::Claim {
            linked_to: profile.to_string(),
            version: 0,
        },
        expected: None,
        overwrite: true,
    };
    let links_here = |key: &str| matches!(records.get(key), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == canonical);
    let mut writes = Vec::new();
    let guests: BTreeSet<&str> = group.iter().map(|(_, e)| e.shopper_id.as_str()).collect();
    for g in guests {
        let gk = guest_key(g);
        let identified = group.iter().any(|(_, e)| {
            e.shopper_id == g && (e.customer_id.is_some() || !e.identities.is_empty())
        });
        if gk == canonical || links_here(&gk) || !identified {
            continue;
        }
        if let Some(guest) = profile_of(records.get(&gk)) {
            profile.merge(guest, decay);
        }
        writes.push(alias(&gk));
    }
    let identities: BTreeSet<&String> = group
        .iter()
        .flat_map(|(_, e)| e.identities.iter())
        .collect();
    let claims: BTreeSet<&String> = group
        .iter()
        .flat_map(|(_, e)| e.claims.iter())
        .filter(|k| !identities.contains(k))
        .collect();
    // A claim an identity key held, that a write here displaces: kept as the claimant's own item.
    let displaced = |k: &str| match records.get(k) {
        Some(ProfileRecord::Claim { linked_to, .. }) if linked_to != canonical => {
            Some(claimant(k, linked_to))
        }
        _ => None,
    };
    for k in identities.into_iter().filter(|k| !links_here(k)) {
        writes.extend(displaced(k));
        writes.push(alias(k));
    }
    for k in claims {
        match records.get(k.as_str()) {
            // The lookup's item is free: this claim holds it.
            None => writes.push(claim(k.clone(), None)),
            // Among claims the most recent holds it; the one it displaces keeps its own item.
            Some(ProfileRecord::Claim {
                linked_to, version, ..
            }) if linked_to != canonical => {
                writes.extend(displaced(k));
                writes.push(claim(k.clone(), Some(*version)));
            }
            // A proven link keeps it; this claim is kept as an item of its own, once per profile
            // (its recent identity keys say it was written).
            Some(ProfileRecord::Alias { linked_to, .. })
                if linked_to != canonical && !profile.identity_keys.contains(k) =>
            {
                writes.push(claimant(k, canonical));
            }
            Some(_) => {}
        }
    }
    let mut ordered: Vec<&Event> = group.iter().map(|(_, e)| e).collect();
    ordered.sort_by_key(|e| e.timestamp_ms);
    let mut plan = GroupPlan::default();
    for e in ordered {
        if profile.has_seen(&e.event_id) {
            plan.duplicates += 1;
        } else {
            profile.apply(e, decay);
            plan.applied += 1;
        }
    }
    if plan.applied == 0 && writes.is_empty() {
        return Ok(plan);
    }
    profile.trim();
    writes.insert(
        0,
        ProfileWrite {
            key: canonical.to_string(),
            record: ProfileRecord::Profile {
                profile: Box::new(profile),
                version: 0,
            },
            expected,
            overwrite: false,
        },
    );
    plan.writes = writes;
    Ok(plan)
}

#[cfg(test)]
mod tests {
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
}

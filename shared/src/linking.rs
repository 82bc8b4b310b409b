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
    MAX_TRANSACT_ACTIONS,
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

/// How many of `group`'s first events fold into `canonical` in one transaction: the longest prefix
/// whose [`plan_group`] has at most [`MAX_TRANSACT_ACTIONS`] writes (at least 1; `group.len()` when
/// the whole group fits). A group that links more guest ids, emails or phones than one transaction
/// holds (a request carries up to 500 events) is folded in parts, each part read and planned on the
/// records the one before it wrote. One event plans at most a few writes (its profile, its guest's
/// alias, an email and a phone key with a displaced claim each), so a part is never empty.
///
/// # Errors
/// As [`plan_group`].
pub fn fitting_prefix(
    canonical: &str,
    group: &[(usize, Event)],
    records: &Records,
    decay: &Decay,
) -> Result<usize, StoreError> {
    let fits = |k: usize| -> Result<bool, StoreError> {
        Ok(plan_group(canonical, &group[..k], records, decay)?
            .writes
            .len()
            <= MAX_TRANSACT_ACTIONS)
    };
    if group.len() <= 1 || fits(group.len())? {
        return Ok(group.len());
    }
    // Writes grow with the prefix: the largest k that fits, by bisection (fits(lo), !fits(hi)).
    let (mut lo, mut hi) = (1, group.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

#[cfg(test)]
#[path = "linking_tests.rs"]
mod tests;

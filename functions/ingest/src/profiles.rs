//! Storing a request's events and folding them into profiles: reads, the writes the linking rules
//! plan ([`affinity::linking`]), and the retries when a concurrent request wrote first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use affinity::event::Event;
use affinity::linking::{self, plan_group, GroupPlan, Linking, Records};
use affinity::store::{EventSink, ProfileRecord, ProfileStore, StoreError, StoredEvent};

use crate::{Deps, IngestSummary, PROFILE_ATTEMPTS};

/// Profile items already read with the tenant: the keys asked for, and what was found.
pub(crate) type Preloaded = (BTreeSet<String>, HashMap<String, ProfileRecord>);

/// Reads the profile items the events touch, following guest aliases to their customer profiles.
async fn load<S: ProfileStore>(
    store: &S,
    site_id: &str,
    events: &[(usize, Event)],
    preloaded: Option<Preloaded>,
) -> Result<Records, StoreError> {
    let keys = linking::keys_touched(events);
    let (requested, mut records) = preloaded.unwrap_or_default();
    let missing: Vec<String> = keys.difference(&requested).cloned().collect();
    if !missing.is_empty() {
        records.extend(store.profiles(site_id, &missing).await?);
    }
    let targets = linking::alias_targets_missing(&records);
    if !targets.is_empty() {
        records.extend(store.profiles(site_id, &targets).await?);
    }
    Ok(records)
}

/// Stores the new events and updates profiles. Returns the request indices of events not stored.
pub(crate) async fn apply<S, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    events: Vec<(usize, Event)>,
    now: i64,
    summary: &mut IngestSummary,
    preloaded: Option<Preloaded>,
) -> Vec<usize>
where
    S: ProfileStore + EventSink,
{
    if events.is_empty() {
        return Vec::new();
    }
    let mut records = match load(&deps.store, site_id, &events, preloaded).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "profile read failed");
            return events.iter().map(|(i, _)| *i).collect();
        }
    };
    let links = Linking::new(&events, &records);
    let (fresh, duplicates) = links.fresh(events, &records);
    summary.duplicates += duplicates;
    // Raw events first: a profile never counts an event that is not stored.
    let stored: Vec<StoredEvent> = fresh
        .iter()
        .map(|(_, e)| StoredEvent::from_event(site_id, e, now, deps.event_ttl_s))
        .collect();
    let failed: HashSet<usize> = deps.store.put_events(stored).await.into_iter().collect();
    let mut not_stored: Vec<usize> = Vec::new();
    let mut groups: BTreeMap<String, Vec<(usize, Event)>> = BTreeMap::new();
    for (pos, (i, e)) in fresh.into_iter().enumerate() {
        if failed.contains(&pos) {
            not_stored.push(i);
        } else {
            groups
                .entry(links.canonical_of(&e, &records))
                .or_default()
                .push((i, e));
        }
    }
    for (canonical, mut group) in groups {
        // In time order, so that a group folded in parts folds its older events first.
        group.sort_by_key(|(_, e)| e.timestamp_ms);
        let mut rest = group.as_slice();
        while !rest.is_empty() {
            let part = match linking::fitting_prefix(&canonical, rest, &records, &deps.decay) {
                Ok(k) => k,
                // The canonical item became an alias: save_group re-reads and plans again.
                Err(_) => rest.len(),
            };
            let (now_part, later) = rest.split_at(part);
            match save_group(deps, site_id, &canonical, now_part, &mut records).await {
                Ok(plan) => {
                    summary.accepted += plan.applied;
                    summary.duplicates += plan.duplicates;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = now_part.len(), "profile write failed");
                    not_stored.extend(now_part.iter().map(|(i, _)| *i));
                }
            }
            // The next part plans on what this one wrote.
            if !later.is_empty() {
                if let Err(e) = refresh(deps, site_id, &canonical, later, &mut records).await {
                    tracing::error!(error = %e, events = later.len(), "profile read failed");
                    not_stored.extend(later.iter().map(|(i, _)| *i));
                    break;
                }
            }
            rest = later;
        }
    }
    not_stored.sort_unstable();
    not_stored
}

/// Writes one group's plan, re-reading and planning again (up to [`PROFILE_ATTEMPTS`] times) when a
/// concurrent request changed a record first.
async fn save_group<S: ProfileStore, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    canonical: &str,
    group: &[(usize, Event)],
    records: &mut Records,
) -> Result<GroupPlan, StoreError> {
    let mut last = StoreError::Conflict;
    for _ in 0..PROFILE_ATTEMPTS {
        match plan_group(canonical, group, records, &deps.decay) {
            Ok(mut plan) => {
                if plan.writes.is_empty() {
                    return Ok(plan);
                }
                match deps
                    .store
                    .save_profiles(site_id, std::mem::take(&mut plan.writes))
                    .await
                {
                    Ok(()) => return Ok(plan),
                    Err(StoreError::Conflict) => last = StoreError::Conflict,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => last = e,
        }
        // Someone else wrote first: read again what this group touches, and plan again.
        refresh(deps, site_id, canonical, group, records).await?;
    }
    Err(last)
}

/// Reads again the records `group` and `canonical` touch (and where their aliases point) into
/// `records`, dropping those that are gone.
async fn refresh<S: ProfileStore, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    canonical: &str,
    group: &[(usize, Event)],
    records: &mut Records,
) -> Result<(), StoreError> {
    let mut fresh = load(&deps.store, site_id, group, None).await?;
    let mut keys = linking::keys_touched(group);
    keys.insert(canonical.to_string());
    for k in keys {
        match fresh.remove(&k) {
            Some(r) => records.insert(k, r),
            None => records.remove(&k),
        };
    }
    // What the aliases point to now.
    records.extend(fresh);
    Ok(())
}

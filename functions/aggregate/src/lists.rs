//! Neighbour lists from the events stream: each new view (or click) becomes a co-visit with the
//! shopper's earlier products of the same session, each cart addition or purchase a co-buy with the
//! other products of that cart or order ([`affinity::recommender::neighbours::fold_event`], the code the
//! evaluation trains with).
//!
//! The session's earlier products come from the shopper's profile (its last 20 views, written by the
//! ingest function before the event reached the stream) and from the batch itself; a gap of more than
//! [`affinity::recommender::neighbours::SESSION_GAP_MS`] ends a session. Lists are read, folded and written back with one conditional
//! write each; a list another batch wrote meanwhile is read and folded again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use affinity::event::EventType;
use affinity::profile::Seen;
use affinity::recommender::neighbours::{
    fold_event, session_before, CoVisitWeights, ListKey, ListKind, NeighbourList, SessionEvent,
    SESSION_WINDOW,
};
use affinity::store::{
    guest_key, ListWrite, NeighbourStore, ProfileRecord, ProfileStore, StoreError, StoredEvent,
};

/// Attempts for a list another batch wrote first.
pub const LIST_ATTEMPTS: usize = 5;

/// One fold: a product event and the products before it in its session (oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Which lists it changes.
    pub kind: ListKind,
    /// The session's earlier products (co-viewed or co-bought), oldest first.
    pub before: Vec<String>,
    /// The product.
    pub id: String,
    /// Its category.
    pub category: Option<String>,
    /// Its brand.
    pub brand: Option<String>,
    /// Epoch ms.
    pub at_ms: i64,
}

impl Step {
    /// The keys of the lists this step changes: the product's and the window's.
    fn keys(&self) -> impl Iterator<Item = ListKey> + '_ {
        let window = &self.before[self.before.len().saturating_sub(SESSION_WINDOW)..];
        std::iter::once(self.id.as_str())
            .chain(window.iter().map(String::as_str))
            .map(|id| ListKey {
                kind: self.kind,
                product_id: id.to_string(),
            })
    }
}

/// The folds of `events` (one tenant's, any order), given each shopper's earlier views from their
/// profile (`history`, any order).
pub fn plan(events: &[StoredEvent], history: &HashMap<String, Vec<Seen>>) -> Vec<Step> {
    let mut events: Vec<&StoredEvent> = events.iter().collect();
    events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
    let mut views: HashMap<&str, Vec<(String, i64)>> = HashMap::new();
    for (shopper, seen) in history {
        views
            .entry(shopper.as_str())
            .or_default()
            .extend(seen.iter().map(|s| (s.id.clone(), s.at)));
    }
    let mut steps = Vec::new();
    for e in events {
        let step = |kind, before: Vec<String>, p: &affinity::event::Product| Step {
            kind,
            before,
            id: p.id.clone(),
            category: p.category.clone(),
            brand: p.brand.clone(),
            at_ms: e.ts,
        };
        match (e.kind, &e.product) {
            (EventType::View | EventType::Click, Some(p)) => {
                let seen = views.entry(e.shopper_id.as_str()).or_default();
                steps.push(step(ListKind::Viewed, session_before(seen, e.ts), p));
                seen.push((p.id.clone(), e.ts));
            }
            (EventType::CartAdd, Some(p)) => {
                let before = e
                    .cart
                    .iter()
                    .flatten()
                    .map(|l| l.product.id.clone())
                    .filter(|id| *id != p.id)
                    .collect();
                steps.push(step(ListKind::Bought, before, p));
            }
            (EventType::Purchase, _) => {
                let mut before: Vec<String> = Vec::new();
                for l in &e.items {
                    if before.contains(&l.product.id) {
                        continue;
                    }
                    steps.push(step(ListKind::Bought, before.clone(), &l.product));
                    before.push(l.product.id.clone());
                }
            }
            _ => {}
        }
    }
    steps
}

/// The earlier views of the shoppers of `events` who viewed something: their profiles' recent views
/// (a guest linked to a customer: the customer profile's).
///
/// # Errors
/// A storage failure.
pub async fn histories<S: ProfileStore>(
    store: &S,
    site_id: &str,
    events: &[StoredEvent],
) -> Result<HashMap<String, Vec<Seen>>, StoreError> {
    let shoppers: BTreeSet<&str> = events
        .iter()
        .filter(|e| matches!(e.kind, EventType::View | EventType::Click))
        .map(|e| e.shopper_id.as_str())
        .collect();
    let keys: Vec<String> = shoppers.iter().map(|s| guest_key(s)).collect();
    let found = store.profiles(site_id, &keys).await?;
    let mut out = HashMap::new();
    let mut aliased: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (shopper, key) in shoppers.iter().zip(&keys) {
        match found.get(key) {
            Some(ProfileRecord::Profile { profile, .. }) => {
                out.insert((*shopper).to_string(), profile.recent_views.clone());
            }
            Some(ProfileRecord::Alias { linked_to, .. }) => {
                aliased.entry(linked_to.clone()).or_default().push(shopper);
            }
            // Guest keys are never claims (those are email/phone keys).
            Some(ProfileRecord::Claim { .. }) | None => {}
        }
    }
    if !aliased.is_empty() {
        let keys: Vec<String> = aliased.keys().cloned().collect();
        let linked = store.profiles(site_id, &keys).await?;
        for (key, guests) in aliased {
            if let Some(ProfileRecord::Profile { profile, .. }) = linked.get(&key) {
                for g in guests {
                    out.insert(g.to_string(), profile.recent_views.clone());
                }
            }
        }
    }
    Ok(out)
}

/// What writing one tenant's lists did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ListsWritten {
    /// Lists written.
    pub written: usize,
    /// Lists still conflicting after [`LIST_ATTEMPTS`] (their batch's share is lost).
    pub gave_up: usize,
}

/// Folds `steps` into the tenant's stored lists.
///
/// # Errors
/// A storage failure (lists written before it stand).
pub async fn fold_lists<S: NeighbourStore>(
    store: &S,
    site_id: &str,
    steps: &[Step],
    cw: &CoVisitWeights,
) -> Result<ListsWritten, StoreError> {
    let keys: BTreeSet<ListKey> = steps.iter().flat_map(Step::keys).collect();
    let all: Vec<ListKey> = keys.into_iter().collect();
    let mut pending: BTreeSet<ListKey> = all.iter().cloned().collect();
    let mut out = ListsWritten::default();
    for _ in 0..LIST_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        // Every list the steps touch is read (a fold reads its neighbours' session counts), only the
        // pending ones are written.
        let stored = store.neighbour_lists(site_id, &all).await?;
        let mut maps: HashMap<ListKind, HashMap<String, NeighbourList>> = HashMap::new();
        let mut versions: HashMap<&ListKey, u64> = HashMap::new();
        for k in &all {
            let (list, version) = stored.get(k).cloned().unwrap_or_default();
            maps.entry(k.kind)
                .or_default()
                .insert(k.product_id.clone(), list);
            versions.insert(k, version);
        }
        for s in steps {
            let before: Vec<&str> = s.before.iter().map(String::as_str).collect();
            let e = SessionEvent {
                id: &s.id,
                category: s.category.as_deref(),
                brand: s.brand.as_deref(),
                at_ms: s.at_ms,
            };
            fold_event(maps.entry(s.kind).or_default(), &before, e, cw);
        }
        let writes: Vec<ListWrite> = pending
            .iter()
            .filter_map(|k| {
                let mut list = maps.get_mut(&k.kind)?.remove(&k.product_id)?;
                list.bound();
                Some(ListWrite {
                    key: k.clone(),
                    list,
                    expected: versions.get(k).copied().unwrap_or(0),
                })
            })
            .collect();
        let tried = writes.len();
        let conflicts = store.save_neighbour_lists(site_id, writes).await?;
        out.written += tried - conflicts.len();
        pending = conflicts.into_iter().collect();
    }
    out.gave_up = pending.len();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_session_ends_at_a_gap_of_more_than_thirty_minutes() {
        let seen = vec![
            ("old".to_string(), 0),
            ("a".to_string(), 40 * MIN),
            ("b".to_string(), 50 * MIN),
            ("a".to_string(), 55 * MIN),
            ("later".to_string(), 90 * MIN),
        ];
        // At 60 min: a (latest 55) and b (50) are the session; old is 40 min before a's first view.
        assert_eq!(session_before(&seen, 60 * MIN), ["b", "a"]);
        assert_eq!(session_before(&seen, 200 * MIN), Vec::<String>::new());
    }
}

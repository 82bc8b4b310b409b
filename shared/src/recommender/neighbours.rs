//! Co-visitation neighbour lists: for every product, the products viewed in the same sessions, weighted
//! the way session kNN weights neighbours (closer in the session counts more, the next product most)
//! and decayed in time like popularity.
//!
//! A list is built incrementally, one event at a time, from the product's session so far
//! ([`Builder::add_event`]): the new product becomes a forward neighbour of each earlier product of the
//! session and they become its backward neighbours. The same code folds the events stream into stored
//! lists (the aggregate function) and the evaluation's training sessions into lists in memory
//! (`tools/eval`), so the evaluation measures what is served.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Most neighbours kept per product after a trim (the strongest).
pub const MAX_NEIGHBOURS: usize = 100;
/// A list is trimmed back to [`MAX_NEIGHBOURS`] once it holds this many, so that a neighbour that is
/// just emerging is not dropped at its first appearance.
pub const TRIM_AT: usize = 2 * MAX_NEIGHBOURS;
/// Earlier products of a session a new event is paired with (the profile keeps the last 20 views).
pub const SESSION_WINDOW: usize = 20;

/// Most bytes a stored list may take (DynamoDB bills writes per KB, and an item is capped at 400 KB):
/// the weakest neighbours are dropped until [`NeighbourList::approx_bytes`] fits.
pub const MAX_LIST_BYTES: usize = 8 * 1024;
/// Products viewed within this long of each other, by one shopper, are one session (the field's usual
/// 30-minute gap).
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// Which co-occurrence a list counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListKind {
    /// Products viewed in the same sessions (`also_viewed`, `similar`, `for_you`).
    Viewed,
    /// Products added to the cart or bought in the same sessions (`bought_together`).
    Bought,
}

impl ListKind {
    /// The one-letter tag stored in the item key (`v`, `b`).
    pub fn tag(self) -> char {
        match self {
            Self::Viewed => 'v',
            Self::Bought => 'b',
        }
    }
}

/// The key of one stored list: its kind and product.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListKey {
    /// What the list counts.
    pub kind: ListKind,
    /// The product whose neighbours it holds.
    pub product_id: String,
}

impl ListKey {
    /// The co-viewed list of `product_id`.
    pub fn viewed(product_id: &str) -> Self {
        Self {
            kind: ListKind::Viewed,
            product_id: product_id.to_string(),
        }
    }

    /// The co-bought list of `product_id`.
    pub fn bought(product_id: &str) -> Self {
        Self {
            kind: ListKind::Bought,
            product_id: product_id.to_string(),
        }
    }
}

/// One neighbour of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Product id.
    pub id: String,
    /// Decayed co-visitation weight as of the list's `ref_ms`.
    pub w: f64,
    /// The neighbour's own session count ([`NeighbourList::sessions`]) when last co-visited.
    pub n: f64,
    /// The neighbour's category, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
}

/// The neighbours of one product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NeighbourList {
    /// Reference time of the weights, epoch ms.
    pub ref_ms: i64,
    /// Decayed number of sessions the product appeared in, as of `ref_ms` (its popularity among
    /// sessions; the similarity divides by it).
    pub sessions: f64,
    /// The product's category, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The product's brand, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Neighbours, strongest first after a trim; at most [`TRIM_AT`].
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
}

/// How co-visits are weighted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoVisitWeights {
    /// Weight of a product viewed right after (gap 1); a gap of `g` gets `forward / g^gap_power`.
    pub forward: f64,
    /// Weight of a product viewed right before; `backward / g^gap_power` at gap `g`.
    pub backward: f64,
    /// How fast the weight falls with the distance in the session.
    pub gap_power: f64,
    /// Half-life of a co-visit, ms.
    pub half_life_ms: f64,
}

impl Default for CoVisitWeights {
    fn default() -> Self {
        Self {
            forward: 1.0,
            backward: 0.5,
            gap_power: 1.0,
            half_life_ms: 7.0 * 86_400_000.0,
        }
    }
}

impl CoVisitWeights {
    fn decay(&self, dt_ms: i64) -> f64 {
        (-(dt_ms as f64) / self.half_life_ms).exp2()
    }
}

impl NeighbourList {
    /// Moves the reference time forward to `t_ms`, decaying every weight.
    fn advance(&mut self, t_ms: i64, cw: &CoVisitWeights) {
        if t_ms > self.ref_ms {
            if self.ref_ms != 0 {
                let f = cw.decay(t_ms - self.ref_ms);
                self.sessions *= f;
                for n in &mut self.neighbours {
                    n.w *= f;
                }
            }
            self.ref_ms = t_ms;
        }
    }

    /// Adds `w` (as of `at_ms`) to neighbour `id`, whose own session count is `sessions` and category
    /// `category`.
    pub fn add(
        &mut self,
        id: &str,
        w: f64,
        sessions: f64,
        category: Option<&str>,
        at_ms: i64,
        cw: &CoVisitWeights,
    ) {
        self.advance(at_ms, cw);
        let w = w * cw.decay(self.ref_ms - at_ms);
        match self.neighbours.iter_mut().find(|n| n.id == id) {
            Some(n) => {
                n.w += w;
                n.n = sessions;
                if category.is_some() {
                    n.c = category.map(str::to_string);
                }
            }
            None => self.neighbours.push(Neighbour {
                id: id.to_string(),
                w,
                n: sessions,
                c: category.map(str::to_string),
            }),
        }
        if self.neighbours.len() >= TRIM_AT {
            self.trim();
        }
    }

    /// Counts one more session of this product (as of `at_ms`).
    pub fn add_session(&mut self, at_ms: i64, cw: &CoVisitWeights) {
        self.advance(at_ms, cw);
        self.sessions += cw.decay(self.ref_ms - at_ms);
    }

    /// Sorts strongest first and keeps [`MAX_NEIGHBOURS`].
    pub fn trim(&mut self) {
        self.neighbours
            .sort_by(|a, b| b.w.total_cmp(&a.w).then_with(|| a.id.cmp(&b.id)));
        self.neighbours.truncate(MAX_NEIGHBOURS);
    }

    /// An upper estimate of the list's stored size in bytes (attribute names, values and DynamoDB's
    /// per-element overhead; numbers counted at 21 bytes, their maximum).
    pub fn approx_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 12);
        let entries: usize = self
            .neighbours
            .iter()
            .map(|n| n.id.len() + opt(&n.c) + 2 * 21 + 16)
            .sum();
        160 + opt(&self.category) + opt(&self.brand) + entries
    }

    /// The stored form: trimmed to [`MAX_NEIGHBOURS`], then the weakest dropped until the list fits
    /// [`MAX_LIST_BYTES`].
    pub fn bound(&mut self) {
        self.trim();
        while self.approx_bytes() > MAX_LIST_BYTES && self.neighbours.pop().is_some() {}
    }

    /// The weights decayed to `now_ms` are `w * factor`: this factor (1 when `now_ms <= ref_ms`).
    pub fn factor_at(&self, now_ms: i64, cw: &CoVisitWeights) -> f64 {
        cw.decay((now_ms - self.ref_ms).max(0))
    }
}

/// One product event of a session, as the builder needs it.
#[derive(Debug, Clone, Copy)]
pub struct SessionEvent<'a> {
    /// Product id.
    pub id: &'a str,
    /// Category, if known.
    pub category: Option<&'a str>,
    /// Brand, if known.
    pub brand: Option<&'a str>,
    /// Epoch ms.
    pub at_ms: i64,
}

/// Folds one product event `e` into `lists`, given the session's earlier products `before` (oldest
/// first, consecutive repeats collapsed; only the last [`SESSION_WINDOW`] are used). `lists` must hold
/// (or will get, empty) the lists of `e` and of the window's products: the aggregate function reads
/// those, folds, and writes the changed ones back.
///
/// A repeat of the last product changes nothing. Each earlier product at distance `g` gets `e` as a
/// forward neighbour of weight `forward / g^gap_power`, and `e` gets it as a backward neighbour of weight
/// `backward / g^gap_power`; a product seen twice in the window counts at its nearest distance. Each
/// entry also records the neighbour's session count at that moment (for the similarity's
/// normalisation without reading the neighbour's own list). Returns the ids of the lists changed.
pub fn fold_event(
    lists: &mut HashMap<String, NeighbourList>,
    before: &[&str],
    e: SessionEvent<'_>,
    cw: &CoVisitWeights,
) -> Vec<String> {
    if before.last() == Some(&e.id) {
        return Vec::new();
    }
    let window = &before[before.len().saturating_sub(SESSION_WINDOW)..];
    let mut prevs: Vec<(&str, f64)> = Vec::new();
    for (k, prev) in window.iter().rev().enumerate() {
        if *prev == e.id || prevs.iter().any(|(id, _)| id == prev) {
            continue;
        }
        prevs.push((prev, ((k + 1) as f64).powf(cw.gap_power)));
    }
    let own = lists.entry(e.id.to_string()).or_default();
    if !before.contains(&e.id) {
        own.add_session(e.at_ms, cw);
    }
    if e.category.is_some() {
        own.category = e.category.map(str::to_string);
    }
    if e.brand.is_some() {
        own.brand = e.brand.map(str::to_string);
    }
    let own_sessions = own.sessions;
    let own_category = own.category.clone();
    let mut changed = vec![e.id.to_string()];
    let mut backward: Vec<(String, f64, f64, Option<String>)> = Vec::new();
    for (prev, d) in prevs {
        let l = lists.entry(prev.to_string()).or_default();
        l.add(
            e.id,
            cw.forward / d,
            own_sessions,
            own_category.as_deref(),
            e.at_ms,
            cw,
        );
        backward.push((
            prev.to_string(),
            cw.backward / d,
            l.sessions,
            l.category.clone(),
        ));
        changed.push(prev.to_string());
    }
    if let Some(own) = lists.get_mut(e.id) {
        for (id, w, n, c) in backward {
            own.add(&id, w, n, c.as_deref(), e.at_ms, cw);
        }
    }
    changed
}

/// The products viewed in the session that `at_ms` continues, oldest first, distinct: from `seen`
/// (each product at its latest view before `at_ms`), walking back while gaps stay within
/// [`SESSION_GAP_MS`]. The aggregate function reads `seen` from the shopper's profile (its last views)
/// and the batch; the evaluation from the session's earlier events.
pub fn session_before(seen: &[(String, i64)], at_ms: i64) -> Vec<String> {
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (id, t) in seen {
        if *t < at_ms {
            let e = latest.entry(id.as_str()).or_insert(*t);
            *e = (*e).max(*t);
        }
    }
    let mut by_time: Vec<(&str, i64)> = latest.into_iter().collect();
    by_time.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut out = Vec::new();
    let mut edge = at_ms;
    for (id, t) in by_time {
        if edge - t > SESSION_GAP_MS {
            break;
        }
        out.push(id.to_string());
        edge = t;
    }
    out.reverse();
    out
}

/// How the aggregate function's event source batches the stream (`template.yaml`: `BatchSize: 1000`,
/// `MaximumBatchingWindowInSeconds: 30`): each batch reads the lists it touches, folds its events and
/// writes every touched list back [`NeighbourList::bound`]ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most events per batch.
    pub max_events: usize,
    /// Longest span of a batch's event times, ms (the batching window, read as event time).
    pub window_ms: i64,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_events: 1000,
            window_ms: 30_000,
        }
    }
}

/// Neighbour lists in memory, folded from events the way the aggregate function folds the stream:
/// [`fold_event`] per event, and every list a batch touched [`NeighbourList::bound`]ed at the batch's
/// end (its stored form), so the evaluation reads the lists production stores.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    /// The weighting.
    pub weights: CoVisitWeights,
    /// Lists by product id.
    pub lists: HashMap<String, NeighbourList>,
    /// The stream's batching.
    pub batching: Batching,
    touched: HashSet<String>,
    batch_events: usize,
    batch_start_ms: Option<i64>,
}

impl Builder {
    /// An empty builder, batched like the aggregate function's event source.
    pub fn new(weights: CoVisitWeights) -> Self {
        Self {
            weights,
            ..Self::default()
        }
    }

    /// Folds one event whose session's earlier products are `before` (oldest first, as
    /// [`session_before`] gives them); events come in time order. Ends the current batch first when
    /// `e` falls outside it.
    pub fn add_event(&mut self, before: &[&str], e: SessionEvent<'_>) {
        let start = *self.batch_start_ms.get_or_insert(e.at_ms);
        if self.batch_events >= self.batching.max_events
            || e.at_ms - start >= self.batching.window_ms
        {
            self.flush();
            self.batch_start_ms = Some(e.at_ms);
        }
        self.batch_events += 1;
        self.touched
            .extend(fold_event(&mut self.lists, before, e, &self.weights));
    }

    /// Folds a whole session, events in time order (one batch per session when sessions are folded
    /// one after another within the window).
    pub fn add_session(&mut self, events: &[SessionEvent<'_>]) {
        let mut before: Vec<&str> = Vec::with_capacity(events.len());
        for e in events {
            self.add_event(&before, *e);
            if before.last() != Some(&e.id) {
                before.push(e.id);
            }
        }
    }

    /// Ends the batch: every list it touched takes its stored form ([`NeighbourList::bound`]).
    pub fn flush(&mut self) {
        for id in self.touched.drain() {
            if let Some(l) = self.lists.get_mut(&id) {
                l.bound();
            }
        }
        self.batch_events = 0;
        self.batch_start_ms = None;
    }

    /// Ends the last batch: the lists as stored.
    pub fn finish(mut self) -> HashMap<String, NeighbourList> {
        self.flush();
        self.lists
    }
}

/// A test event `at` ms after 1,000,000: events within a second, no decay to speak of (a co-visit
/// halves in 7 days).
#[cfg(test)]
pub(crate) fn test_event<'a>(id: &'a str, at: i64, category: Option<&'a str>) -> SessionEvent<'a> {
    SessionEvent {
        id,
        category,
        brand: None,
        at_ms: 1_000_000 + at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, at: i64) -> SessionEvent<'_> {
        test_event(id, at, Some("c"))
    }

    #[test]
    fn forward_neighbours_weigh_more_and_fall_with_distance() {
        let cw = CoVisitWeights::default();
        let mut b = Builder::new(cw);
        b.add_session(&[ev("a", 1), ev("b", 2), ev("b", 3), ev("c", 4)]);
        let l = b.finish();
        let a = &l["a"];
        assert!((a.sessions - 1.0).abs() < 1e-6);
        let w = |l: &NeighbourList, id: &str| l.neighbours.iter().find(|n| n.id == id).map(|n| n.w);
        // b right after a (the repeat of b collapsed), c two steps after.
        assert!((w(a, "b").unwrap() - 1.0).abs() < 1e-6);
        assert!((w(a, "c").unwrap() - 0.5).abs() < 1e-6);
        // c sees b right before (0.5) and a two before (0.25).
        assert!((w(&l["c"], "b").unwrap() - 0.5).abs() < 1e-6);
        assert!((w(&l["c"], "a").unwrap() - 0.25).abs() < 1e-6);
        assert_eq!(l["c"].category.as_deref(), Some("c"));
    }

    #[test]
    fn a_product_seen_again_counts_its_session_once() {
        let mut b = Builder::new(CoVisitWeights::default());
        b.add_session(&[ev("a", 1), ev("b", 2), ev("a", 3)]);
        let l = b.finish();
        assert!((l["a"].sessions - 1.0).abs() < 1e-6);
        // b after a: a gains b forward (1.0), b gains a backward (0.5); a after b: b gains a forward
        // (1.0), a gains b backward (0.5).
        assert_eq!(l["a"].neighbours.len(), 1);
        assert_eq!(l["a"].neighbours[0].id, "b");
        assert!((l["a"].neighbours[0].w - 1.5).abs() < 1e-6);
        assert!((l["a"].neighbours[0].n - 1.0).abs() < 1e-6);
        assert!((l["b"].neighbours[0].w - 1.5).abs() < 1e-6);
    }

    #[test]
    fn a_stored_list_fits_its_byte_bound_whatever_the_names() {
        let cw = CoVisitWeights::default();
        let mut l = NeighbourList::default();
        let long = "\u{00e9}".repeat(128);
        for i in 0..150 {
            l.add(
                &format!("{i:0>120}"),
                1.0 + f64::from(i),
                1.0,
                Some(&long),
                1_000,
                &cw,
            );
        }
        l.bound();
        assert!(l.approx_bytes() <= MAX_LIST_BYTES);
        assert!(l.neighbours.len() >= 10 && l.neighbours.len() < MAX_NEIGHBOURS);
        // The strongest survive.
        assert_eq!(l.neighbours[0].id, format!("{:0>120}", 149));
        let item = serde_json::to_string(&l).expect("json");
        assert!(item.len() <= MAX_LIST_BYTES, "{}", item.len());
    }

    #[test]
    fn old_co_visits_fade_and_lists_stay_bounded() {
        let cw = CoVisitWeights::default();
        let day = 86_400_000;
        let mut l = NeighbourList::default();
        l.add("old", 1.0, 1.0, None, 1_000, &cw);
        l.add("new", 1.0, 1.0, None, 1_000 + 7 * day, &cw);
        assert!((l.neighbours[0].w - 0.5).abs() < 1e-6);
        for i in 0..(3 * TRIM_AT) {
            l.add(
                &format!("n{i}"),
                1.0 + i as f64,
                1.0,
                None,
                1_000 + 7 * day,
                &cw,
            );
        }
        assert!(l.neighbours.len() < TRIM_AT);
        l.trim();
        assert_eq!(l.neighbours.len(), MAX_NEIGHBOURS);
        assert_eq!(l.neighbours[0].id, format!("n{}", 3 * TRIM_AT - 1));
    }

    #[test]
    fn a_batch_stores_its_lists_bounded_as_the_aggregate_function_writes_them() {
        let mut b = Builder::new(CoVisitWeights::default());
        // 150 sessions of "hub" then another product, within the batch window: hub's list passes
        // MAX_NEIGHBOURS (and stays under TRIM_AT, where a fold trims it).
        for s in 0..(MAX_NEIGHBOURS as i64 + 50) {
            let other = format!("p{s}");
            b.add_session(&[ev("hub", 2 * s), ev(&other, 2 * s + 1)]);
        }
        // Still in one batch (under a second, under 1,000 events): the list holds them all.
        assert_eq!(b.lists["hub"].neighbours.len(), MAX_NEIGHBOURS + 50);
        // An event past the batching window ends the batch: the lists it touched are bounded.
        b.add_session(&[ev("x", 60_000), ev("y", 60_001)]);
        assert_eq!(b.lists["hub"].neighbours.len(), MAX_NEIGHBOURS);
        let l = b.finish();
        assert!(l.values().all(|l| l.neighbours.len() <= MAX_NEIGHBOURS));
        assert_eq!(l["x"].neighbours.len(), 1);
    }
}

//! Shopper profiles: time-decayed category and brand affinities, recent views, the cart and purchases.
//!
//! Scores decay exponentially: an event of weight `w` at time `t` is worth `w * 2^(-(T - t) / h)` at a
//! later time `T`, with `h` the half-life (default 30 days). A profile stores every score as of its
//! reference time `ref_ms` (the newest event it has seen), so events may arrive in any order (imports
//! replay history) and the result is the same sum.

use serde::{Deserialize, Serialize};

use crate::event::{cut_to_bytes, Event, EventType, Line, MAX_NAME_BYTES};

/// Most categories and brands kept per profile (the strongest by score).
pub const MAX_AFFINITIES: usize = 50;
/// Most bytes of category (and, apart, of brand) affinities kept per profile, as
/// [`affinity_bytes`] counts them: the weakest go first once the strongest fill it. 50 names of 100
/// bytes fit; 50 of the longest names ([`MAX_NAME_BYTES`]) do not.
pub const MAX_AFFINITY_BYTES: usize = 8 * 1024;
/// Most recently viewed products kept.
pub const MAX_RECENT_VIEWS: usize = 20;
/// Most purchased product ids kept.
pub const MAX_PURCHASED: usize = 100;
/// Most distinct lines kept in the cart (a client adding more drops the oldest line).
pub const MAX_CART_LINES: usize = 100;
/// Most bytes of cart lines kept, as [`line_bytes`] counts them (the oldest lines go first): 100 lines
/// of typical product facts fit; 100 lines of the longest ids and names do not.
pub const MAX_CART_BYTES: usize = 32 * 1024;
/// Event ids remembered for de-duplication of retried batches.
pub const MAX_SEEN: usize = 256;

/// The largest DynamoDB item a profile can become, in bytes as DynamoDB sizes items (attribute names
/// and values, UTF-8), keys included, whatever clients send. The worst case measures 67,085 bytes, a
/// sixth of DynamoDB's 400 KB item limit.
///
/// The sum of the bounds: categories and brands [`MAX_AFFINITY_BYTES`] each (plus one name that
/// crosses the budget), the cart [`MAX_CART_BYTES`], [`MAX_RECENT_VIEWS`] and [`MAX_PURCHASED`]
/// product ids of at most 128 bytes, [`MAX_SEEN`] 8-byte fingerprints, a 128-byte customer id. The
/// test `the_worst_case_profile_stays_under_its_bound` builds it (the longest ids and names, in 4-byte
/// characters, through [`Profile::apply`]) and measures the item. `guest_ids` and `identity_keys`
/// are not counted here: their bounds belong to the identity-linking rules.
pub const MAX_PROFILE_ITEM_BYTES: usize = 72 * 1024;

/// What an affinity costs in a stored profile, over-estimated: its name's UTF-8 bytes plus 40 (the
/// attribute names `name` and `score`, a number of up to 21 bytes, the map's overhead).
pub fn affinity_bytes(a: &Affinity) -> usize {
    a.name.len() + 40
}

/// What a cart line costs in a stored profile, over-estimated: the UTF-8 bytes of its product id,
/// category and brand plus 64 (attribute names, price and quantity, the map's overhead).
pub fn line_bytes(l: &Line) -> usize {
    let p = &l.product;
    p.id.len()
        + p.category.as_ref().map_or(0, String::len)
        + p.brand.as_ref().map_or(0, String::len)
        + 64
}

/// How much each behaviour says about a shopper's taste, in affinity points per product.
///
/// A search names no product, so it adds no category or brand. A removal from the cart is a mild
/// negative signal; scores never go below zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Product page view.
    pub view: f64,
    /// Item clicked in a list.
    pub click: f64,
    /// Product put in the cart.
    pub cart_add: f64,
    /// Product taken out of the cart.
    pub cart_remove: f64,
    /// Each purchased line.
    pub purchase: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            view: 1.0,
            click: 2.0,
            cart_add: 4.0,
            cart_remove: -1.0,
            purchase: 8.0,
        }
    }
}

impl Weights {
    /// The weight of one product of an event of this type.
    pub fn of(&self, kind: EventType) -> f64 {
        match kind {
            EventType::Search | EventType::Impression => 0.0,
            EventType::View => self.view,
            EventType::Click => self.click,
            EventType::CartAdd => self.cart_add,
            EventType::CartRemove => self.cart_remove,
            EventType::Purchase => self.purchase,
        }
    }
}

/// The decay settings: half-life in ms and the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    /// Half-life, in ms (default 30 days).
    pub half_life_ms: f64,
    /// Per-behaviour weights.
    pub weights: Weights,
}

impl Default for Decay {
    fn default() -> Self {
        Self {
            half_life_ms: 30.0 * 86_400_000.0,
            weights: Weights::default(),
        }
    }
}

impl Decay {
    /// The factor `2^(-dt / half_life)` for `dt_ms >= 0`.
    pub fn factor(&self, dt_ms: i64) -> f64 {
        (-(dt_ms as f64) / self.half_life_ms).exp2()
    }
}

/// A named score: a category or a brand and the shopper's affinity for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affinity {
    /// Category or brand name.
    pub name: String,
    /// Decayed points as of the owner's reference time.
    pub score: f64,
}

/// A product and when it was seen, epoch ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Product id.
    pub id: String,
    /// Epoch ms.
    pub at: i64,
}

/// Everything Affinity knows about one shopper of one tenant. No personal data: ids and product facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Reference time of the scores, epoch ms (the newest event applied).
    pub ref_ms: i64,
    /// Category affinities, strongest first, at most [`MAX_AFFINITIES`].
    #[serde(default)]
    pub categories: Vec<Affinity>,
    /// Brand affinities, strongest first, at most [`MAX_AFFINITIES`].
    #[serde(default)]
    pub brands: Vec<Affinity>,
    /// Last viewed products, newest first, distinct, at most [`MAX_RECENT_VIEWS`].
    #[serde(default)]
    pub recent_views: Vec<Seen>,
    /// The current cart.
    #[serde(default)]
    pub cart: Vec<Line>,
    /// Time of the last cart change, epoch ms.
    #[serde(default)]
    pub cart_ms: i64,
    /// Purchased products, newest first, distinct, at most [`MAX_PURCHASED`].
    #[serde(default)]
    pub purchased: Vec<Seen>,
    /// The guest ids whose history this profile holds.
    #[serde(default)]
    pub guest_ids: Vec<String>,
    /// The customer id, once the shopper logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Identity keys (keyed hashes of email and phone, `e:{hex}` / `p:{hex}`) linked to this profile, or
    /// claimed by its browsers (see [`crate::store::ProfileRecord::Claim`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_keys: Vec<String>,
    /// Fingerprints (first 8 bytes of SHA-256) of the last [`MAX_SEEN`] event ids applied, newest last.
    #[serde(default, with = "fingerprints")]
    pub seen: Vec<u64>,
    /// Events applied, in all.
    #[serde(default)]
    pub event_count: u64,
}

/// Stores the seen list as one binary attribute (8 bytes per id) instead of a list of numbers: a
/// quarter of the item size, and DynamoDB bills writes by item size.
pub(crate) mod fingerprints {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Vec<u64>, E> {
                Ok(b.chunks_exact(8)
                    .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Vec<u64>, E> {
                self.visit_bytes(&b)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u64>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                self.visit_bytes(&out)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The fingerprint of an event id kept in [`Profile::seen`].
pub fn event_fingerprint(event_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(event_id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn add_score(list: &mut Vec<Affinity>, name: &str, points: f64) {
    // Names are cut by the event parser already; profiles stored before that rule are cut here.
    let name = cut_to_bytes(name, MAX_NAME_BYTES);
    match list.iter_mut().find(|a| a.name == name) {
        Some(a) => a.score = (a.score + points).max(0.0),
        None if points > 0.0 => list.push(Affinity {
            name: name.to_string(),
            score: points,
        }),
        None => {}
    }
}

fn scale(list: &mut [Affinity], f: f64) {
    for a in list {
        a.score *= f;
    }
}

fn top(list: &mut Vec<Affinity>) {
    list.retain(|a| a.score > 0.0);
    list.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.name.cmp(&b.name))
    });
    list.truncate(MAX_AFFINITIES);
    let mut total = 0;
    let within = list
        .iter()
        .take_while(|a| {
            total += affinity_bytes(a);
            total <= MAX_AFFINITY_BYTES
        })
        .count();
    list.truncate(within);
}

/// Drops the oldest cart lines (the front) until the cart is within [`MAX_CART_LINES`] and
/// [`MAX_CART_BYTES`].
fn bound_cart(cart: &mut Vec<Line>) {
    let excess = cart.len().saturating_sub(MAX_CART_LINES);
    cart.drain(..excess);
    let mut total: usize = cart.iter().map(line_bytes).sum();
    let mut drop = 0;
    while total > MAX_CART_BYTES && drop < cart.len() {
        total -= line_bytes(&cart[drop]);
        drop += 1;
    }
    cart.drain(..drop);
}

fn remember(list: &mut Vec<Seen>, id: &str, at: i64, max: usize) {
    if let Some(pos) = list.iter().position(|s| s.id == id) {
        if list[pos].at >= at {
            return;
        }
        list.remove(pos);
    }
    let pos = list.iter().position(|s| s.at < at).unwrap_or(list.len());
    list.insert(
        pos,
        Seen {
            id: id.to_string(),
            at,
        },
    );
    list.truncate(max);
}

impl Profile {
    /// True when this event id was already applied.
    pub fn has_seen(&self, event_id: &str) -> bool {
        self.seen.contains(&event_fingerprint(event_id))
    }

    /// Moves the reference time forward to `t_ms`, decaying every score.
    fn advance(&mut self, t_ms: i64, decay: &Decay) {
        if t_ms > self.ref_ms {
            let f = if self.ref_ms == 0 {
                1.0
            } else {
                decay.factor(t_ms - self.ref_ms)
            };
            scale(&mut self.categories, f);
            scale(&mut self.brands, f);
            self.ref_ms = t_ms;
        }
    }

    /// Applies one event: affinities, recent views, cart, purchases, the seen list.
    /// The caller checks [`Profile::has_seen`] first; affinities are trimmed by [`Profile::trim`].
    pub fn apply(&mut self, e: &Event, decay: &Decay) {
        self.advance(e.timestamp_ms, decay);
        let w = decay.weights.of(e.kind);
        if w != 0.0 {
            let points = w * decay.factor(self.ref_ms - e.timestamp_ms);
            for p in e.products() {
                if let Some(c) = &p.category {
                    add_score(&mut self.categories, c, points);
                }
                if let Some(b) = &p.brand {
                    add_score(&mut self.brands, b, points);
                }
            }
        }
        match e.kind {
            EventType::View => {
                if let Some(p) = &e.product {
                    remember(
                        &mut self.recent_views,
                        &p.id,
                        e.timestamp_ms,
                        MAX_RECENT_VIEWS,
                    );
                }
            }
            EventType::Purchase => {
                for l in &e.items {
                    remember(
                        &mut self.purchased,
                        &l.product.id,
                        e.timestamp_ms,
                        MAX_PURCHASED,
                    );
                }
            }
            _ => {}
        }
        self.apply_cart(e);
        if !self.guest_ids.iter().any(|g| g == &e.shopper_id) {
            self.guest_ids.push(e.shopper_id.clone());
        }
        if e.customer_id.is_some() {
            self.customer_id.clone_from(&e.customer_id);
        }
        for k in e.identities.iter().chain(&e.claims) {
            if !self.identity_keys.contains(k) {
                self.identity_keys.push(k.clone());
            }
        }
        self.seen.push(event_fingerprint(&e.event_id));
        if self.seen.len() > MAX_SEEN {
            let excess = self.seen.len() - MAX_SEEN;
            self.seen.drain(..excess);
        }
        self.event_count += 1;
    }

    /// The cart follows the newest event only: an older event (an import out of order) leaves it alone.
    fn apply_cart(&mut self, e: &Event) {
        if e.timestamp_ms < self.cart_ms {
            return;
        }
        if let Some(cart) = &e.cart {
            self.cart.clone_from(cart);
            bound_cart(&mut self.cart);
            self.cart_ms = e.timestamp_ms;
            return;
        }
        match (e.kind, &e.product) {
            (EventType::CartAdd, Some(p)) => {
                match self.cart.iter_mut().find(|l| l.product.id == p.id) {
                    Some(l) => l.quantity = l.quantity.saturating_add(1),
                    None => {
                        self.cart.push(Line {
                            product: p.clone(),
                            quantity: 1,
                        });
                        bound_cart(&mut self.cart);
                    }
                }
                self.cart_ms = e.timestamp_ms;
            }
            (EventType::CartRemove, Some(p)) => {
                self.cart.retain(|l| l.product.id != p.id);
                self.cart_ms = e.timestamp_ms;
            }
            (EventType::Purchase, _) => {
                self.cart
                    .retain(|l| !e.items.iter().any(|i| i.product.id == l.product.id));
                self.cart_ms = e.timestamp_ms;
            }
            _ => {}
        }
    }

    /// Brings the profile within its bounds: the strongest categories and brands, strongest first,
    /// within [`MAX_AFFINITIES`] and [`MAX_AFFINITY_BYTES`]; the newest cart lines within
    /// [`MAX_CART_LINES`] and [`MAX_CART_BYTES`]; the newest views, purchases and seen ids within their
    /// counts. After it the stored item is at most [`MAX_PROFILE_ITEM_BYTES`].
    pub fn trim(&mut self) {
        top(&mut self.categories);
        top(&mut self.brands);
        bound_cart(&mut self.cart);
        self.recent_views.truncate(MAX_RECENT_VIEWS);
        self.purchased.truncate(MAX_PURCHASED);
        let excess = self.seen.len().saturating_sub(MAX_SEEN);
        self.seen.drain(..excess);
    }

    /// Folds another profile of the same person (a guest's history) into this one: scores are summed at
    /// the later reference time, lists merged by time, ids united.
    pub fn merge(&mut self, other: &Profile, decay: &Decay) {
        self.advance(other.ref_ms, decay);
        let f = if other.ref_ms == 0 {
            1.0
        } else {
            decay.factor(self.ref_ms - other.ref_ms)
        };
        for a in &other.categories {
            add_score(&mut self.categories, &a.name, a.score * f);
        }
        for a in &other.brands {
            add_score(&mut self.brands, &a.name, a.score * f);
        }
        for s in other.recent_views.iter().rev() {
            remember(&mut self.recent_views, &s.id, s.at, MAX_RECENT_VIEWS);
        }
        for s in other.purchased.iter().rev() {
            remember(&mut self.purchased, &s.id, s.at, MAX_PURCHASED);
        }
        if other.cart_ms > self.cart_ms {
            self.cart.clone_from(&other.cart);
            self.cart_ms = other.cart_ms;
        }
        for g in &other.guest_ids {
            if !self.guest_ids.contains(g) {
                self.guest_ids.push(g.clone());
            }
        }
        if self.customer_id.is_none() {
            self.customer_id.clone_from(&other.customer_id);
        }
        for k in &other.identity_keys {
            if !self.identity_keys.contains(k) {
                self.identity_keys.push(k.clone());
            }
        }
        for s in &other.seen {
            if !self.seen.contains(s) {
                self.seen.push(*s);
            }
        }
        if self.seen.len() > MAX_SEEN {
            let excess = self.seen.len() - MAX_SEEN;
            self.seen.drain(..excess);
        }
        self.event_count += other.event_count;
        self.trim();
    }

    /// Scores decayed from `ref_ms` to `now_ms` (never grown when `now_ms` is earlier).
    pub fn scores_at(list: &[Affinity], ref_ms: i64, now_ms: i64, decay: &Decay) -> Vec<Affinity> {
        let f = decay.factor((now_ms - ref_ms).max(0));
        list.iter()
            .map(|a| Affinity {
                name: a.name.clone(),
                score: a.score * f,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{validate, IngestMode};
    use serde_json::json;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;

    fn ev(v: serde_json::Value) -> Event {
        validate(&v, 0, T0 + 400 * DAY, IngestMode::Import).expect("valid")
    }

    fn score(list: &[Affinity], name: &str) -> f64 {
        list.iter()
            .find(|a| a.name == name)
            .map_or(0.0, |a| a.score)
    }

    #[test]
    fn a_view_thirty_days_older_counts_half() {
        let d = Decay::default();
        let mut p = Profile::default();
        p.apply(&ev(json!({"type":"view","shopper_id":"g","timestamp":T0,"product":{"id":"1","category":"shoes"}})), &d);
        p.apply(&ev(json!({"type":"view","shopper_id":"g","timestamp":T0 + 30*DAY,"product":{"id":"2","category":"shoes","brand":"acme"}})), &d);
        assert!((score(&p.categories, "shoes") - 1.5).abs() < 1e-12);
        assert!((score(&p.brands, "acme") - 1.0).abs() < 1e-12);
        assert_eq!(p.ref_ms, T0 + 30 * DAY);
    }

    #[test]
    fn order_of_arrival_does_not_change_scores() {
        let d = Decay::default();
        let events: Vec<Event> = (0..10)
            .map(|i| ev(json!({"type": if i % 3 == 0 {"cart_add"} else {"view"}, "shopper_id":"g",
                "timestamp": T0 + i * 3 * DAY, "product":{"id": format!("p{i}"), "category": format!("c{}", i % 2)}})))
            .collect();
        let mut a = Profile::default();
        events.iter().for_each(|e| a.apply(e, &d));
        let mut b = Profile::default();
        events.iter().rev().for_each(|e| b.apply(e, &d));
        for c in ["c0", "c1"] {
            assert!((score(&a.categories, c) - score(&b.categories, c)).abs() < 1e-9);
        }
        assert_eq!(a.recent_views, b.recent_views);
    }

    #[test]
    fn a_cart_never_holds_more_than_its_bound_and_impressions_move_nothing() {
        let d = Decay::default();
        let mut p = Profile::default();
        for i in 0..(MAX_CART_LINES as i64 + 50) {
            p.apply(
                &ev(json!({"type":"cart_add","shopper_id":"g","timestamp":T0+i,"product":{"id":format!("p{i}")}})),
                &d,
            );
        }
        assert_eq!(p.cart.len(), MAX_CART_LINES);
        assert_eq!(p.cart[0].product.id, "p50", "the oldest lines went first");
        let before = (p.categories.clone(), p.recent_views.clone(), p.cart.clone());
        p.apply(
            &ev(
                json!({"type":"impression","shopper_id":"g","timestamp":T0+999,
                "product":{"id":"x","category":"sofas"},"recommendation_id":"r1"}),
            ),
            &d,
        );
        assert_eq!(
            (p.categories.clone(), p.recent_views.clone(), p.cart.clone()),
            before
        );
    }

    #[test]
    fn cart_follows_adds_removals_and_purchases() {
        let d = Decay::default();
        let mut p = Profile::default();
        for (i, v) in [
            json!({"type":"cart_add","shopper_id":"g","timestamp":T0,"product":{"id":"a"}}),
            json!({"type":"cart_add","shopper_id":"g","timestamp":T0+1,"product":{"id":"b"}}),
            json!({"type":"cart_add","shopper_id":"g","timestamp":T0+2,"product":{"id":"a"}}),
            json!({"type":"cart_remove","shopper_id":"g","timestamp":T0+3,"product":{"id":"b"}}),
        ]
        .into_iter()
        .enumerate()
        {
            let _ = i;
            p.apply(&ev(v), &d);
        }
        assert_eq!(p.cart.len(), 1);
        assert_eq!(
            (p.cart[0].product.id.as_str(), p.cart[0].quantity),
            ("a", 2)
        );
        p.apply(&ev(json!({"type":"purchase","shopper_id":"g","timestamp":T0+4,"items":[{"id":"a","quantity":2}]})), &d);
        assert!(p.cart.is_empty());
        assert_eq!(p.purchased[0].id, "a");
    }

    #[test]
    fn merge_equals_applying_everything_to_one_profile() {
        let d = Decay::default();
        let guest: Vec<Event> = (0..5)
            .map(|i| ev(json!({"type":"view","shopper_id":"g1","timestamp":T0 + i * DAY,"product":{"id":"x","brand":"acme"}})))
            .collect();
        let customer: Vec<Event> = (0..5)
            .map(|i| ev(json!({"type":"click","shopper_id":"g2","customer_id":"c","timestamp":T0 + i * 5 * DAY,"product":{"id":"y","brand":"acme"}})))
            .collect();
        let mut all = Profile::default();
        guest.iter().chain(&customer).for_each(|e| all.apply(e, &d));
        let mut g = Profile::default();
        guest.iter().for_each(|e| g.apply(e, &d));
        let mut c = Profile::default();
        customer.iter().for_each(|e| c.apply(e, &d));
        c.merge(&g, &d);
        assert!((score(&c.brands, "acme") - score(&all.brands, "acme")).abs() < 1e-9);
        assert_eq!(c.guest_ids.len(), 2);
        assert!(c.has_seen(&guest[2].event_id));
    }

    /// `n` four-byte characters, the `i`-th distinct from the others (`i < 4096`).
    fn wide(n: usize, i: usize) -> String {
        let base = char::from_u32(0x1F300 + i as u32 % 1024).expect("emoji");
        let tag = char::from_u32(0x20000 + i as u32).expect("cjk ext b");
        std::iter::once(tag)
            .chain(std::iter::repeat_n(base, n - 1))
            .collect()
    }

    /// A product with the longest id (128 bytes) and names (cut to 256 bytes), all 4-byte characters.
    fn widest_product(i: usize) -> serde_json::Value {
        json!({"id": wide(32, i), "category": wide(100, i), "brand": wide(100, i + 2048),
               "price": 999_999_999_999.99})
    }

    #[test]
    fn the_worst_case_profile_stays_under_its_bound() {
        let d = Decay::default();
        let mut p = Profile::default();
        let customer = "c".repeat(128);
        let mut t = T0;
        let mut next = |kind: &str, extra: serde_json::Value| {
            t += 1;
            let mut v = json!({"type": kind, "shopper_id": "g".repeat(128), "customer_id": customer,
                "event_id": format!("{:0>128}", t), "timestamp": t});
            v.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            ev(v)
        };
        let mut events = Vec::new();
        // More distinct categories and brands than any bound, in purchases of 100 items each.
        for batch in 0..3 {
            let items: Vec<_> = (0..100)
                .map(|i| {
                    let mut l = widest_product(batch * 100 + i);
                    l["quantity"] = json!(100_000);
                    l
                })
                .collect();
            events.push(next(
                "purchase",
                json!({"items": items, "order_id": "o".repeat(128)}),
            ));
        }
        // More cart lines, views and seen ids than their bounds.
        for i in 0..(MAX_CART_LINES + 50) {
            events.push(next(
                "cart_add",
                json!({"product": widest_product(300 + i)}),
            ));
        }
        for i in 0..(MAX_RECENT_VIEWS + 10) {
            events.push(next("view", json!({"product": widest_product(500 + i)})));
        }
        for i in 0..MAX_SEEN {
            events.push(next(
                "click",
                json!({"product": widest_product(600 + i % 10)}),
            ));
        }
        for e in &events {
            p.apply(e, &d);
            p.trim();
        }
        assert_eq!(p.categories[0].name.len(), MAX_NAME_BYTES, "cut to bytes");
        assert_eq!(p.categories[0].name.chars().count(), MAX_NAME_BYTES / 4);
        assert!(p.categories.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
        assert!(p.brands.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
        assert!(p.cart.iter().map(line_bytes).sum::<usize>() <= MAX_CART_BYTES);
        assert_eq!(p.recent_views.len(), MAX_RECENT_VIEWS);
        assert_eq!(p.purchased.len(), MAX_PURCHASED);
        assert_eq!(p.seen.len(), MAX_SEEN);
        // Each list is full up to its byte budget: the worst case is reached, not avoided.
        assert!(p.categories.len() * (MAX_NAME_BYTES + 40) > MAX_AFFINITY_BYTES - 300);
        assert!(p.cart.len() * (128 + 2 * MAX_NAME_BYTES + 64) > MAX_CART_BYTES - 700);

        // The item as the profile adapter stores it: the profile, its key, site id and version.
        let mut item: crate::store::dynamo::attrs::Item = serde_dynamo::to_item(&p).expect("item");
        let site = "s".repeat(128);
        item.insert(
            "pk".into(),
            crate::store::dynamo::attrs::s(format!("{site}#c:{customer}")),
        );
        item.insert("site_id".into(), crate::store::dynamo::attrs::s(site));
        item.insert("version".into(), crate::store::dynamo::attrs::n(u64::MAX));
        let size = crate::store::dynamo::item_size(&item);
        assert!(
            size <= MAX_PROFILE_ITEM_BYTES,
            "{size} bytes > {MAX_PROFILE_ITEM_BYTES}"
        );
        assert!(
            size > MAX_PROFILE_ITEM_BYTES * 3 / 4,
            "{size}: not the worst case"
        );
        // And it reads back as it was written.
        let back: Profile = serde_dynamo::from_item(item).expect("profile");
        assert_eq!(back, p);
    }

    #[test]
    fn trim_brings_an_oversized_stored_profile_within_bounds() {
        let mut p = Profile {
            categories: (0..200)
                .map(|i| Affinity {
                    name: wide(200, i),
                    score: 1.0 + i as f64,
                })
                .collect(),
            cart: (0..300)
                .map(|i| Line {
                    product: crate::event::Product {
                        id: format!("p{i}"),
                        category: Some(wide(64, i)),
                        brand: Some(wide(64, i)),
                        price: None,
                    },
                    quantity: 1,
                })
                .collect(),
            seen: (0..1000).collect(),
            ..Profile::default()
        };
        p.trim();
        assert!(p.categories.iter().map(affinity_bytes).sum::<usize>() <= MAX_AFFINITY_BYTES);
        assert_eq!(p.categories[0].score, 200.0, "the strongest stay");
        assert!(p.cart.len() < MAX_CART_LINES);
        assert!(p.cart.iter().map(line_bytes).sum::<usize>() <= MAX_CART_BYTES);
        assert_eq!(p.cart.last().map(|l| l.product.id.as_str()), Some("p299"));
        assert_eq!(p.seen.len(), MAX_SEEN);
        assert_eq!(p.seen.last(), Some(&999), "the newest seen ids stay");
    }

    #[test]
    fn seen_list_is_bounded() {
        let d = Decay::default();
        let mut p = Profile::default();
        for i in 0..(MAX_SEEN + 10) {
            p.apply(&ev(json!({"type":"search","shopper_id":"g","query":"q","event_id": format!("e{i}"),"timestamp":T0})), &d);
        }
        assert_eq!(p.seen.len(), MAX_SEEN);
        assert!(!p.has_seen("e0"));
        assert!(p.has_seen(&format!("e{}", MAX_SEEN + 9)));
    }
}

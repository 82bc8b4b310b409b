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
/// Most guest ids a profile lists (the most recent, for display and to find shared devices). Every
/// link is its own item ([`crate::store::ProfileRecord::Alias`]) found through the profiles table's
/// `by_link` index, so erasure and export never depend on this list being whole.
pub const MAX_GUEST_IDS: usize = 16;
/// Most identity keys (`e:{hex}` / `p:{hex}`, 66 bytes) a profile lists, the most recent; the links
/// and claims themselves are items of their own, as for [`MAX_GUEST_IDS`].
pub const MAX_IDENTITY_KEYS: usize = 8;

/// The largest DynamoDB item a profile can become, in bytes as DynamoDB sizes items (attribute names
/// and values, UTF-8), keys included, whatever clients send. The worst case measures 69,572 bytes, a
/// sixth of DynamoDB's 400 KB item limit.
///
/// The sum of the bounds: categories and brands [`MAX_AFFINITY_BYTES`] each (plus one name that
/// crosses the budget), the cart [`MAX_CART_BYTES`], [`MAX_RECENT_VIEWS`] and [`MAX_PURCHASED`]
/// product ids of at most 128 bytes, [`MAX_SEEN`] 8-byte fingerprints, a 128-byte customer id,
/// [`MAX_GUEST_IDS`] guest ids of at most 128 bytes and [`MAX_IDENTITY_KEYS`] 66-byte identity keys
/// (the links themselves are items of their own, however many a shopper has). The test
/// `the_worst_case_profile_stays_under_its_bound` builds it (the longest ids and names, in 4-byte
/// characters, hundreds of guests and emails, through [`Profile::apply`]) and measures the item.
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
    /// The most recent guest ids whose history this profile holds, oldest first, at most
    /// [`MAX_GUEST_IDS`] (every link is its own item: [`crate::store::ProfileRecord::Alias`]).
    #[serde(default)]
    pub guest_ids: Vec<String>,
    /// The customer id, once the shopper logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The most recent identity keys (keyed hashes of email and phone, `e:{hex}` / `p:{hex}`) linked to
    /// this profile or claimed by its browsers, oldest first, at most [`MAX_IDENTITY_KEYS`] (the links
    /// and claims are items of their own: [`crate::store::ProfileRecord::Claim`]).
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

/// Puts `item` last in `list` (moving it there if present), keeping the newest `max`.
fn note(list: &mut Vec<String>, item: &str, max: usize) {
    list.retain(|x| x != item);
    list.push(item.to_string());
    let excess = list.len().saturating_sub(max);
    list.drain(..excess);
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
        note(&mut self.guest_ids, &e.shopper_id, MAX_GUEST_IDS);
        if e.customer_id.is_some() {
            self.customer_id.clone_from(&e.customer_id);
        }
        for k in e.identities.iter().chain(&e.claims) {
            note(&mut self.identity_keys, k, MAX_IDENTITY_KEYS);
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
    /// counts, the newest guest ids and identity keys within theirs. After it the stored item is at
    /// most [`MAX_PROFILE_ITEM_BYTES`].
    pub fn trim(&mut self) {
        for (list, max) in [
            (&mut self.guest_ids, MAX_GUEST_IDS),
            (&mut self.identity_keys, MAX_IDENTITY_KEYS),
        ] {
            let excess = list.len().saturating_sub(max);
            list.drain(..excess);
        }
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
                note(&mut self.guest_ids, g, MAX_GUEST_IDS);
            }
        }
        if self.customer_id.is_none() {
            self.customer_id.clone_from(&other.customer_id);
        }
        for k in &other.identity_keys {
            if !self.identity_keys.contains(k) {
                note(&mut self.identity_keys, k, MAX_IDENTITY_KEYS);
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
mod tests;

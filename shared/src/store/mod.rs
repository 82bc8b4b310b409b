//! Storage ports (capability-sized traits) and the records they carry. The DynamoDB adapter is in
//! [`dynamo`]; the functions depend on the traits, so their IAM policies can match what they ask for.

pub mod deletion;
pub mod dynamo;
#[cfg(feature = "test-doubles")]
pub mod memory;
#[cfg(feature = "test-doubles")]
mod memory_deletion;
#[cfg(feature = "test-doubles")]
pub mod memory_tenants;
pub mod tenants;

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType, Line, Product};
use crate::popularity::Popularity;
use crate::profile::Profile;
use crate::recommender::neighbours::{ListKey, NeighbourList};
use crate::tenant::Tenant;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race (another request changed the item first); re-read and retry.
    #[error("the item changed since it was read")]
    Conflict,
    /// The tenant is no longer active (a deletion started); nothing was written.
    #[error("the tenant is not active")]
    TenantInactive,
    /// DynamoDB refused or failed, after retries. The text is for logs, never for clients.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// An item could not be read into its record type.
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

/// A shopper's profile key: `g:{guest id}` or `c:{customer id}`.
pub fn guest_key(guest_id: &str) -> String {
    crate::ids::ShopperKey::Guest(guest_id.to_string()).to_key()
}

/// See [`guest_key`].
pub fn customer_key(customer_id: &str) -> String {
    crate::ids::ShopperKey::Customer(customer_id.to_string()).to_key()
}

/// The key of a claimant item: `claim:{identity key}#{profile key}`, the claim one profile's browser
/// made of an email or phone key whose own item it does not hold (`#` is in no guest id, customer id or identity key, so the split is
/// exact; the prefix keeps these items apart from the identity keys' own).
pub fn claimant_key(identity_key: &str, profile_key: &str) -> String {
    format!("claim:{identity_key}#{profile_key}")
}

/// The identity key and the profile key of a claimant item's key ([`claimant_key`]); `None` for any
/// other key.
pub fn split_claimant(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("claim:")?.split_once('#')
}

/// The profiles that claimed an identity key, from records read for it (its claimant items,
/// [`claimant_key`]): the `linked_to` of each [`ProfileRecord::Claim`] among `records`; proven links
/// ([`ProfileRecord::Alias`]) and profiles are not claims.
pub fn claimants_among<'a>(
    records: impl IntoIterator<Item = &'a ProfileRecord>,
) -> std::collections::BTreeSet<String> {
    records
        .into_iter()
        .filter_map(|r| match r {
            ProfileRecord::Claim { linked_to, .. } => Some(linked_to.clone()),
            _ => None,
        })
        .collect()
}

/// A stored profile item: a profile, or a link (its own small item) from a guest id or an identity key
/// to a profile.
///
/// Links are found from both ends without a list in the profile (docs/DESIGN.md, "Links"): every
/// [`ProfileRecord::Alias`] and [`ProfileRecord::Claim`] is in the profiles table's sparse `by_link`
/// index under the profile it points to, and every claimant item ([`claimant_key`]) also in
/// `by_claim` under its identity key.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileRecord {
    /// A profile, with the version used for optimistic concurrency.
    Profile {
        /// The profile.
        profile: Box<Profile>,
        /// Version of the stored item (incremented on every write).
        version: u64,
    },
    /// A proven link: a guest logged in as a customer (an identity token, or the import route), or an
    /// email/phone key proven to be the profile's. Read the profile at `linked_to` instead.
    Alias {
        /// The canonical shopper key.
        linked_to: String,
        /// Version of the stored item.
        version: u64,
    },
    /// An email or phone key that a storefront sent without proof (typed into a form). At the identity
    /// key itself (the messaging lookup's item) it points at the profile of the browser that claimed it
    /// most recently, until a proven link replaces it; at a claimant key ([`claimant_key`]) it records
    /// that one other profile's browser claimed it (for erasure: every browser that sent an address). A
    /// claim never links profiles and never replaces an [`ProfileRecord::Alias`].
    Claim {
        /// The profile of the claiming browser.
        linked_to: String,
        /// Version of the stored item.
        version: u64,
    },
}

impl ProfileRecord {
    /// The stored version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Profile { version, .. }
            | Self::Alias { version, .. }
            | Self::Claim { version, .. } => *version,
        }
    }
}

/// One conditional profile write: the new record at `key`, if the stored version is still `expected`
/// (`None`: the item must not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileWrite {
    /// Shopper key.
    pub key: String,
    /// What to store (its version is set by the store to `expected + 1`).
    pub record: ProfileRecord,
    /// The version read, or `None` for a new item.
    pub expected: Option<u64>,
    /// Written whatever is stored, `expected` ignored: claimant items ([`claimant_key`]), which only
    /// ever hold their one claim, so writing one again changes nothing and needs no read first.
    pub overwrite: bool,
}

/// A raw event as stored in the events table (no personal data: PII never reaches this type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The tenant.
    pub site_id: String,
    /// Guest id.
    pub shopper_id: String,
    /// Event id (the sort key).
    pub event_id: String,
    /// Behaviour.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened, epoch ms.
    pub ts: i64,
    /// When Affinity received it, epoch ms.
    pub received_ms: i64,
    /// TTL: epoch seconds after which DynamoDB deletes the item.
    pub expires_at: i64,
    /// Customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Search terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// Purchased lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Line>,
    /// Order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The cart after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart: Option<Vec<Line>>,
    /// The recommendation answer the event came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
}

impl StoredEvent {
    /// The stored form of a validated event, without its personal fields.
    pub fn from_event(site_id: &str, e: &Event, received_ms: i64, ttl_s: i64) -> Self {
        Self {
            site_id: site_id.to_string(),
            shopper_id: e.shopper_id.clone(),
            event_id: e.event_id.clone(),
            kind: e.kind,
            ts: e.timestamp_ms,
            received_ms,
            expires_at: received_ms / 1000 + ttl_s,
            customer_id: e.customer_id.clone(),
            session_id: e.session_id.clone(),
            query: e.query.clone(),
            product: e.product.clone(),
            items: e.items.clone(),
            order_id: e.order_id.clone(),
            currency: e.currency.clone(),
            cart: e.cart.clone(),
            recommendation_id: e.recommendation_id.clone(),
        }
    }

    /// The products this event is about.
    pub fn products(&self) -> Vec<&Product> {
        self.product
            .iter()
            .chain(self.items.iter().map(|l| &l.product))
            .collect()
    }
}

/// What the recommendation route reads in its first round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecommendRead {
    /// The tenant, if the site exists.
    pub tenant: Option<Tenant>,
    /// The shopper's profile item, if any.
    pub profile: Option<ProfileRecord>,
    /// The tenant's popularity, if aggregated yet.
    pub popularity: Option<Popularity>,
    /// The neighbour lists asked for that exist.
    pub lists: HashMap<ListKey, NeighbourList>,
}

/// A recommendation's first read: the tenant of `site_id`, the profile item at `shopper_key`, (when
/// `with_popularity`) the popularity and the neighbour lists at `lists` (at most
/// [`MAX_LISTS_PER_READ`]; more are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecommendQuery<'a> {
    /// The tenant.
    pub site_id: &'a str,
    /// The shopper's profile key.
    pub shopper_key: &'a str,
    /// Whether to read the popularity (not cached yet).
    pub with_popularity: bool,
    /// The neighbour lists wanted.
    pub lists: &'a [ListKey],
}

/// Most actions one `TransactWriteItems` takes (DynamoDB API reference, TransactWriteItems: "up to
/// 100 action requests"); [`ProfileStore::save_profiles`] refuses more, and ingest folds a larger
/// group in parts ([`crate::linking::fitting_prefix`]).
pub const MAX_TRANSACT_ACTIONS: usize = 100;

/// Most neighbour lists one recommendation read asks for (a `BatchGetItem` takes 100 keys, and the
/// tenant, profile and popularity come with them).
pub const MAX_LISTS_PER_READ: usize = 90;

/// One conditional write of a neighbour list: `list` at `key`, if the stored version is still
/// `expected` (0: the item must not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ListWrite {
    /// Which list.
    pub key: ListKey,
    /// What to store (already bounded: [`NeighbourList::bound`]).
    pub list: NeighbourList,
    /// The version read, 0 for a new item.
    pub expected: u64,
}

/// Reads a tenant by its public site id.
pub trait TenantLookup: Send + Sync {
    /// The tenant of `site_id` (strongly consistent, so a deletion is seen at once).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn tenant_by_site(
        &self,
        site_id: &str,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send;
}

/// Reads and writes shopper profiles.
pub trait ProfileStore: Send + Sync {
    /// The profile items at `keys` (missing keys are absent from the map).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ProfileRecord>, StoreError>> + Send;

    /// The tenant of `site_id` (strongly consistent) and the profile items at `keys`, in one round trip
    /// when there are at most 99 keys (the storefront ingest path).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn tenant_and_profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(Option<Tenant>, HashMap<String, ProfileRecord>), StoreError>> + Send;

    /// Writes all of `writes` or none of them, each conditional on its expected version; at most
    /// [`MAX_TRANSACT_ACTIONS`] writes.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when any condition failed; [`StoreError::Unavailable`] (also for more
    /// than [`MAX_TRANSACT_ACTIONS`] writes, which DynamoDB refuses).
    fn save_profiles(
        &self,
        site_id: &str,
        writes: Vec<ProfileWrite>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Stores raw events.
pub trait EventSink: Send + Sync {
    /// Stores `events` (batched, unprocessed items retried with backoff). Returns the positions in
    /// `events` that could not be stored.
    fn put_events(&self, events: Vec<StoredEvent>) -> impl Future<Output = Vec<usize>> + Send;
}

/// The recommendation route's reads.
pub trait RecommendSource: Send + Sync {
    /// What [`RecommendQuery`] asks for, in one round trip.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn recommend_read(
        &self,
        query: &RecommendQuery<'_>,
    ) -> impl Future<Output = Result<RecommendRead, StoreError>> + Send;

    /// The profile item at `key` (when given) and the neighbour lists at `lists` (at most
    /// [`MAX_LISTS_PER_READ`]) in one round trip: a recommendation's second read.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn profile_and_lists(
        &self,
        site_id: &str,
        key: Option<&str>,
        lists: &[ListKey],
    ) -> impl Future<
        Output = Result<(Option<ProfileRecord>, HashMap<ListKey, NeighbourList>), StoreError>,
    > + Send;

    /// Profile items at `keys` and, when `with_popularity`, the tenant's popularity, in one round trip
    /// (the messaging lookup; at most 99 keys with popularity, 100 without).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn lookup_read(
        &self,
        site_id: &str,
        keys: &[String],
        with_popularity: bool,
    ) -> impl Future<Output = Result<(HashMap<String, ProfileRecord>, Option<Popularity>), StoreError>>
           + Send;

    /// One profile item (to follow an alias).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn profile(
        &self,
        site_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<ProfileRecord>, StoreError>> + Send;
}

/// One conditional popularity write: `popularity` for `site_id`, if the stored version is still
/// `expected` (0: the item must not exist yet).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopularityWrite<'a> {
    /// The tenant.
    pub site_id: &'a str,
    /// What to store (already trimmed).
    pub popularity: &'a Popularity,
    /// The version read, 0 for a new item.
    pub expected: u64,
}

/// Reads and writes tenant popularity (the aggregate function).
pub trait PopularityStore: Send + Sync {
    /// The popularity of `site_id` and its version (0 when none yet).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn popularity(
        &self,
        site_id: &str,
    ) -> impl Future<Output = Result<(Popularity, u64), StoreError>> + Send;

    /// Writes the popularity of [`PopularityWrite`] if its version is still the expected one and the
    /// tenant is still active.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::TenantInactive`], [`StoreError::Unavailable`].
    fn save_popularity(
        &self,
        write: &PopularityWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Reads and writes the tenant's neighbour lists (the aggregate function): one item per product and
/// kind, each bounded ([`NeighbourList::bound`]).
pub trait NeighbourStore: Send + Sync {
    /// The stored lists at `keys`, with their versions (missing lists are absent from the map).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn neighbour_lists(
        &self,
        site_id: &str,
        keys: &[ListKey],
    ) -> impl Future<Output = Result<HashMap<ListKey, (NeighbourList, u64)>, StoreError>> + Send;

    /// Writes each list whose stored version is still its `expected`; returns the keys whose condition
    /// failed (another batch wrote them first: re-read and fold again). The other writes stand.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (some writes may have been made).
    fn save_neighbour_lists(
        &self,
        site_id: &str,
        writes: Vec<ListWrite>,
    ) -> impl Future<Output = Result<Vec<ListKey>, StoreError>> + Send;
}

//! Shoppers' rights: who a shopper is (identity resolution), what erasing them deletes and what their
//! export holds, over the [`ShopperRecords`] port.
//!
//! A shopper is a person: the profile at `g:{guest id}` or `c:{customer id}`; a guest linked to a
//! customer is that customer. Every link (a guest id or identity key, keyed hash of email or phone, to
//! the profile, proven or claimed) is an item of its own, found by the profile it points to through the
//! profiles table's `by_link` index, however many there are; the profile lists only its recent guest
//! ids. A shared device that has logged in
//! as another customer since keeps its link and its other events; only its events carrying this
//! shopper's customer id are theirs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::errors::ErasureError;
use crate::pii::{self, PepperSource};
use crate::store::deletion::ShopperRecords;
use crate::store::{
    customer_key, guest_key, split_claimant, ProfileRecord, StoreError, StoredEvent,
};
use crate::tenant::Tenant;

/// Everything that identifies one shopper (a person) in a tenant: the profile that holds their history,
/// their customer id and every guest id linked to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShopperIds {
    /// The profile key that holds the history (`c:{customer id}` or `g:{guest id}`).
    pub canonical: String,
    /// The customer id, when the shopper logged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Every guest id of the shopper (devices, browsers), sorted.
    pub guest_ids: Vec<String>,
    /// The identity keys (keyed hashes of email and phone, `e:{hex}` / `p:{hex}`) that point at the
    /// shopper's profile, sorted. Never the plaintext.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_keys: Vec<String>,
    /// Guest ids (shared devices) this shopper used that are now linked to another shopper: only their
    /// events that carry this shopper's customer id are this shopper's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_guest_ids: Vec<String>,
}

/// What a shopper erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// Whether anything was held about the shopper.
    pub found: bool,
    /// Profile items deleted (the profile and the aliases of linked guest ids).
    pub profiles: u64,
    /// Raw events deleted.
    pub events: u64,
    /// Guest ids of the shopper whose data was erased.
    pub guest_ids: usize,
}

impl ErasureReport {
    /// Adds another erasure's counts (several profiles of one person).
    pub fn add(&mut self, other: &ErasureReport) {
        self.found |= other.found;
        self.profiles += other.profiles;
        self.events += other.events;
        self.guest_ids += other.guest_ids;
    }
}

/// Everything held about one shopper, as one JSON document (no plaintext personal data is ever held:
/// ids, behaviour and, once personal data is linked, keyed hashes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopperExport {
    /// The tenant's site id.
    pub site_id: String,
    /// The shopper as asked for (`g:{guest id}` or `c:{customer id}`).
    pub requested: String,
    /// When the document was produced (RFC 3339).
    pub generated_at: String,
    /// Whether anything was held.
    pub found: bool,
    /// The linked ids.
    pub linked_ids: ShopperIds,
    /// The profile items: `{"key", "kind": "profile" | "alias", ...}`; a profile carries its affinities,
    /// recent views, cart, purchases and the fingerprints (hex) of the event ids it applied.
    pub profiles: Vec<serde_json::Value>,
    /// The raw events, oldest first.
    pub events: Vec<StoredEvent>,
}

/// A shopper as resolved: their ids and the profile items that are theirs, by shopper key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shopper {
    /// The ids.
    pub ids: ShopperIds,
    /// The profile items of the person (the canonical profile, the asked key, their guest items and the
    /// identity keys that still point at them).
    pub records: BTreeMap<String, ProfileRecord>,
}

/// Where a shopper's events are: each guest id, with the customer id their events must carry (`None`:
/// every event of the guest id).
pub type EventSources = Vec<(String, Option<String>)>;

impl Shopper {
    /// The shopper's events: every event of their own guest ids, and the events of shared devices that
    /// carry their customer id.
    pub fn event_sources(&self) -> EventSources {
        let own = self.ids.guest_ids.iter().map(|g| (g.clone(), None));
        let shared = self.ids.customer_id.iter().flat_map(|c| {
            self.ids
                .shared_guest_ids
                .iter()
                .map(move |g| (g.clone(), Some(c.clone())))
        });
        own.chain(shared).collect()
    }

    /// The profile keys an erasure deletes: every item of the person, the canonical key, the asked key
    /// and every guest id's key, sorted.
    pub fn erasure_keys(&self, asked: &str) -> Vec<String> {
        let mut keys: BTreeSet<String> = self.records.keys().cloned().collect();
        keys.insert(self.ids.canonical.clone());
        keys.insert(asked.to_string());
        keys.extend(self.ids.guest_ids.iter().map(|g| guest_key(g)));
        keys.into_iter().collect()
    }
}

fn alias_target(record: Option<&ProfileRecord>) -> Option<&str> {
    match record {
        Some(ProfileRecord::Alias { linked_to, .. }) => Some(linked_to),
        _ => None,
    }
}

/// Resolves the shopper at `shopper_key` (`g:{guest id}` or `c:{customer id}`) of `site_id`: the asked
/// item and its canonical profile; every link to the canonical profile and to each guest id linked to it
/// (claims made before the guest logged in), from the `by_link` index
/// ([`ShopperRecords::links_to`]); and the items of the profile's recent guest ids, which show the
/// shared devices.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
pub async fn resolve<S: ShopperRecords>(
    store: &S,
    site_id: &str,
    shopper_key: &str,
) -> Result<Shopper, StoreError> {
    let asked = [shopper_key.to_string()];
    let mut records: BTreeMap<String, ProfileRecord> = store
        .shopper_profiles(site_id, &asked)
        .await?
        .into_iter()
        .collect();
    let canonical = alias_target(records.get(shopper_key))
        .unwrap_or(shopper_key)
        .to_string();
    if !records.contains_key(&canonical) {
        let canonical_key = [canonical.clone()];
        records.extend(store.shopper_profiles(site_id, &canonical_key).await?);
    }
    let linked = store.links_to(site_id, &canonical).await?;
    let mut guests: BTreeSet<String> = [shopper_key, canonical.as_str()]
        .into_iter()
        .chain(linked.keys().map(String::as_str))
        .filter_map(|k| k.strip_prefix("g:").map(str::to_string))
        .collect();
    records.extend(linked);
    for g in &guests {
        let key = guest_key(g);
        if key != canonical {
            records.extend(store.links_to(site_id, &key).await?);
        }
    }
    let mut customer = canonical.strip_prefix("c:").map(str::to_string);
    if let Some(ProfileRecord::Profile { profile, .. }) = records.get(&canonical) {
        guests.extend(profile.guest_ids.iter().cloned());
        if customer.is_none() {
            customer.clone_from(&profile.customer_id);
        }
    }
    let missing: Vec<String> = guests
        .iter()
        .map(|g| guest_key(g))
        .filter(|k| !records.contains_key(k))
        .collect();
    if !missing.is_empty() {
        records.extend(store.shopper_profiles(site_id, &missing).await?);
    }
    Ok(person(shopper_key, canonical, customer, guests, records))
}

/// The rules of who is who, once the items are read: a device that logged in as someone else since is
/// linked to that shopper now (a shared guest id); only items of this person are kept (the canonical
/// profile, the asked key, links to the canonical profile or to their guest ids, and plain profiles of
/// their guest ids; an email or phone key that moved on to another profile is not this person's any
/// more). Their identity keys are those of the links kept.
fn person(
    asked: &str,
    canonical: String,
    customer_id: Option<String>,
    mut guests: BTreeSet<String>,
    mut records: BTreeMap<String, ProfileRecord>,
) -> Shopper {
    let shared: BTreeSet<String> = guests
        .iter()
        .filter(|g| alias_target(records.get(&guest_key(g))).is_some_and(|to| to != canonical))
        .cloned()
        .collect();
    guests.retain(|g| !shared.contains(g));
    let theirs =
        |to: &str| to == canonical || to.strip_prefix("g:").is_some_and(|g| guests.contains(g));
    records.retain(|k, r| {
        k == &canonical
            || k == asked
            || match r {
                ProfileRecord::Alias { linked_to, .. } | ProfileRecord::Claim { linked_to, .. } => {
                    theirs(linked_to)
                }
                ProfileRecord::Profile { .. } => {
                    k.strip_prefix("g:").is_some_and(|g| guests.contains(g))
                }
            }
    });
    let identity_keys: BTreeSet<String> = records
        .keys()
        .map(|k| split_claimant(k).map_or(k.as_str(), |(identity, _)| identity))
        .filter(|k| k.starts_with("e:") || k.starts_with("p:"))
        .map(str::to_string)
        .collect();
    Shopper {
        ids: ShopperIds {
            canonical,
            customer_id,
            guest_ids: guests.into_iter().collect(),
            identity_keys: identity_keys.into_iter().collect(),
            shared_guest_ids: shared.into_iter().collect(),
        },
        records,
    }
}

/// Erases one shopper of `site_id` (see the module's rules): their profile items and every event of
/// theirs. A second look removes what a concurrent request wrote meanwhile. Other shoppers are
/// untouched; the tenant's popularity (product counts, not about a person) is kept.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
pub async fn erase<S: ShopperRecords>(
    store: &S,
    site_id: &str,
    shopper_key: &str,
) -> Result<ErasureReport, StoreError> {
    let mut report = ErasureReport::default();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut sources: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    for round in 0..2 {
        // The second look resolves again: links the index showed late, or a request wrote meanwhile.
        let shopper = resolve(store, site_id, shopper_key).await?;
        if round == 0 {
            report.guest_ids = shopper.ids.guest_ids.len();
        }
        keys.extend(shopper.erasure_keys(shopper_key));
        sources.extend(shopper.event_sources());
        let all: Vec<String> = keys.iter().cloned().collect();
        report.profiles += store.erase_profiles(site_id, &all).await?;
        for (guest, customer) in &sources {
            report.events += store
                .erase_events(site_id, guest, customer.as_deref())
                .await?;
        }
    }
    report.found = report.profiles + report.events > 0;
    Ok(report)
}

/// A profile item as the export shows it.
fn profile_json(key: &str, record: &ProfileRecord) -> serde_json::Value {
    match record {
        ProfileRecord::Alias { linked_to, .. } => {
            serde_json::json!({"key": key, "kind": "alias", "linked_to": linked_to})
        }
        ProfileRecord::Claim { linked_to, .. } => {
            serde_json::json!({"key": key, "kind": "claim", "linked_to": linked_to})
        }
        ProfileRecord::Profile { profile, .. } => {
            let mut v = serde_json::to_value(profile.as_ref()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                let seen: Vec<String> = profile.seen.iter().map(|f| format!("{f:016x}")).collect();
                o.insert("seen".into(), serde_json::json!(seen));
                o.insert("key".into(), serde_json::json!(key));
                o.insert("kind".into(), serde_json::json!("profile"));
            }
            v
        }
    }
}

/// Everything held about one shopper of `site_id` (see [`erase`] for who the shopper is), as one
/// document produced at `now_ms`.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
pub async fn export<S: ShopperRecords>(
    store: &S,
    site_id: &str,
    shopper_key: &str,
    now_ms: i64,
) -> Result<ShopperExport, StoreError> {
    let shopper = resolve(store, site_id, shopper_key).await?;
    let mut events = Vec::new();
    for (guest, customer) in shopper.event_sources() {
        events.extend(
            store
                .shopper_events(site_id, &guest, customer.as_deref())
                .await?,
        );
    }
    events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
    let profiles: Vec<serde_json::Value> = shopper
        .records
        .iter()
        .map(|(k, r)| profile_json(k, r))
        .collect();
    Ok(ShopperExport {
        site_id: site_id.to_string(),
        requested: shopper_key.to_string(),
        generated_at: crate::rfc3339(now_ms),
        found: !profiles.is_empty() || !events.is_empty(),
        linked_ids: shopper.ids,
        profiles,
        events,
    })
}

/// The personal fields a privacy request names (Shopify's `customers/redact` and
/// `customers/data_request`), in the clear only until they are hashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Named<'a> {
    /// The customer id.
    pub customer_id: &'a str,
    /// The customer's email, if given.
    pub email: Option<&'a str>,
    /// The customer's phone, if given.
    pub phone: Option<&'a str>,
}

/// The shopper keys a privacy request is about: the customer id's, then the profiles that the
/// customer's email and phone (as keyed hashes under the tenant's pepper) point at, and every profile
/// whose browser claimed them ([`ShopperRecords::claimants`]). A tenant without a pepper never linked
/// an email or phone.
///
/// # Errors
/// [`ErasureError::PepperUnavailable`]; [`ErasureError::Storage`].
pub async fn subjects<S: ShopperRecords, K: PepperSource>(
    store: &S,
    peppers: &K,
    tenant: &Tenant,
    named: Named<'_>,
) -> Result<Vec<String>, ErasureError> {
    let mut out = vec![customer_key(named.customer_id)];
    if tenant.pepper_ciphertext.is_none() {
        return Ok(out);
    }
    let key = peppers
        .pepper(tenant)
        .await
        .map_err(ErasureError::PepperUnavailable)?;
    let mut identities = Vec::new();
    if let Some(Ok(k)) = named.email.map(|v| pii::email_key(&key, v)) {
        identities.push(format!("e:{}", k.0));
    }
    if let Some(Ok(k)) = named
        .phone
        .map(|v| pii::phone_key(&key, v, tenant.default_region.as_deref()))
    {
        identities.push(format!("p:{}", k.0));
    }
    let mut targets: BTreeSet<String> = if identities.is_empty() {
        BTreeSet::new()
    } else {
        store
            .shopper_profiles(&tenant.site_id, &identities)
            .await?
            .into_values()
            .filter_map(|r| match r {
                // A claim too: erasure finds the browser that sent the address.
                ProfileRecord::Alias { linked_to, .. } | ProfileRecord::Claim { linked_to, .. } => {
                    Some(linked_to)
                }
                ProfileRecord::Profile { .. } => None,
            })
            .collect()
    };
    for identity in &identities {
        targets.extend(store.claimants(&tenant.site_id, identity).await?);
    }
    for target in targets {
        if !out.contains(&target) {
            out.push(target);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "shopper_tests.rs"]
mod tests;

//! In-memory test doubles of the storage ports, with failure injection. Only built with the
//! `test-doubles` feature (dev-dependencies), never in a release binary.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{
    EventSink, ListWrite, NeighbourStore, PopularityStore, PopularityWrite, ProfileRecord,
    ProfileStore, ProfileWrite, RecommendQuery, RecommendRead, RecommendSource, StoreError,
    StoredEvent, TenantLookup,
};
use crate::deletion::DeletionJob;
use crate::popularity::Popularity;
use crate::recommender::neighbours::{ListKey, NeighbourList};
use crate::tenant::Tenant;

/// Everything in maps behind mutexes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Tenants by site id.
    pub tenants: Mutex<HashMap<String, Tenant>>,
    /// Profile items by (site id, shopper key).
    pub profiles: Mutex<HashMap<(String, String), ProfileRecord>>,
    /// Stored events.
    pub events: Mutex<Vec<StoredEvent>>,
    /// Popularity by site id, with version.
    pub popularity: Mutex<HashMap<String, (Popularity, u64)>>,
    /// Neighbour lists by (site id, key), with version.
    pub neighbours: Mutex<HashMap<(String, ListKey), (NeighbourList, u64)>>,
    /// When set, every neighbour list write fails.
    pub fail_list_writes: AtomicBool,
    /// When set, popularity writes of this site fail (one tenant's storage trouble).
    pub fail_popularity_of: Mutex<Option<String>>,
    /// When set, every event write fails.
    pub fail_event_writes: AtomicBool,
    /// When set, every read fails.
    pub fail_reads: AtomicBool,
    /// Tenant-id pointers: the site id of each tenant id.
    pub tenant_pointers: super::memory_tenants::MemoryPointers,
    /// Deletion jobs and tombstones by tenant id.
    pub deletions: Mutex<HashMap<String, DeletionJob>>,
    /// The tenant ids whose deletion is not finished.
    pub deletion_queue: Mutex<BTreeSet<String>>,
    /// Webhook receipts: the topic of each delivery id.
    pub webhook_receipts: Mutex<HashMap<String, String>>,
    /// When set, every deletion of tenant items (and every shopper erasure) fails: a run dies after its
    /// checkpoint.
    pub fail_deletes: AtomicBool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// A store holding `tenants`, each with its tenant-id pointer (as the consent function leaves them).
    pub fn with_tenants(tenants: impl IntoIterator<Item = Tenant>) -> Self {
        let s = Self::default();
        for t in tenants {
            s.tenant_pointers.set(&t.tenant_id, &t.site_id);
            lock(&s.tenants).insert(t.site_id.clone(), t);
        }
        s
    }

    pub(super) fn read_check(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("injected read failure".into()))
        } else {
            Ok(())
        }
    }
}

impl TenantLookup for MemoryStore {
    async fn tenant_by_site(&self, site_id: &str) -> Result<Option<Tenant>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.tenants).get(site_id).cloned())
    }
}

impl ProfileStore for MemoryStore {
    async fn profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> Result<HashMap<String, ProfileRecord>, StoreError> {
        self.read_check()?;
        let p = lock(&self.profiles);
        Ok(keys
            .iter()
            .filter_map(|k| {
                p.get(&(site_id.to_string(), k.clone()))
                    .map(|r| (k.clone(), r.clone()))
            })
            .collect())
    }

    async fn tenant_and_profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> Result<(Option<Tenant>, HashMap<String, ProfileRecord>), StoreError> {
        let tenant = TenantLookup::tenant_by_site(self, site_id).await?;
        Ok((tenant, ProfileStore::profiles(self, site_id, keys).await?))
    }

    async fn save_profiles(
        &self,
        site_id: &str,
        writes: Vec<ProfileWrite>,
    ) -> Result<(), StoreError> {
        // As DynamoDB's TransactWriteItems does (a ValidationException).
        if writes.len() > super::MAX_TRANSACT_ACTIONS {
            return Err(StoreError::Unavailable(format!(
                "{} writes in one transaction; at most {}",
                writes.len(),
                super::MAX_TRANSACT_ACTIONS
            )));
        }
        let mut p = lock(&self.profiles);
        for w in &writes {
            let current = p
                .get(&(site_id.to_string(), w.key.clone()))
                .map(ProfileRecord::version);
            if current != w.expected && !w.overwrite {
                return Err(StoreError::Conflict);
            }
        }
        for w in writes {
            let version = w.expected.filter(|_| !w.overwrite).map_or(1, |v| v + 1);
            let record = match w.record {
                ProfileRecord::Profile { profile, .. } => {
                    ProfileRecord::Profile { profile, version }
                }
                ProfileRecord::Alias { linked_to, .. } => {
                    ProfileRecord::Alias { linked_to, version }
                }
                ProfileRecord::Claim { linked_to, .. } => {
                    ProfileRecord::Claim { linked_to, version }
                }
            };
            p.insert((site_id.to_string(), w.key), record);
        }
        Ok(())
    }
}

impl EventSink for MemoryStore {
    async fn put_events(&self, events: Vec<StoredEvent>) -> Vec<usize> {
        if self.fail_event_writes.load(Ordering::SeqCst) {
            return (0..events.len()).collect();
        }
        let mut stored = lock(&self.events);
        for e in events {
            stored.retain(|x| {
                !(x.site_id == e.site_id
                    && x.shopper_id == e.shopper_id
                    && x.event_id == e.event_id)
            });
            stored.push(e);
        }
        Vec::new()
    }
}

impl RecommendSource for MemoryStore {
    async fn recommend_read(
        &self,
        query: &RecommendQuery<'_>,
    ) -> Result<RecommendRead, StoreError> {
        let (site_id, shopper_key) = (query.site_id, query.shopper_key);
        let (with_popularity, lists) = (query.with_popularity, query.lists);
        self.read_check()?;
        Ok(RecommendRead {
            lists: self.lists_of(site_id, lists),
            tenant: lock(&self.tenants).get(site_id).cloned(),
            profile: lock(&self.profiles)
                .get(&(site_id.to_string(), shopper_key.to_string()))
                .cloned(),
            popularity: if with_popularity {
                lock(&self.popularity).get(site_id).map(|(p, _)| p.clone())
            } else {
                None
            },
        })
    }

    async fn lookup_read(
        &self,
        site_id: &str,
        keys: &[String],
        with_popularity: bool,
    ) -> Result<(HashMap<String, ProfileRecord>, Option<Popularity>), StoreError> {
        let found = ProfileStore::profiles(self, site_id, keys).await?;
        let pop = if with_popularity {
            lock(&self.popularity).get(site_id).map(|(p, _)| p.clone())
        } else {
            None
        };
        Ok((found, pop))
    }

    async fn profile(&self, site_id: &str, key: &str) -> Result<Option<ProfileRecord>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.profiles)
            .get(&(site_id.to_string(), key.to_string()))
            .cloned())
    }

    async fn profile_and_lists(
        &self,
        site_id: &str,
        key: Option<&str>,
        lists: &[ListKey],
    ) -> Result<(Option<ProfileRecord>, HashMap<ListKey, NeighbourList>), StoreError> {
        let profile = match key {
            Some(k) => RecommendSource::profile(self, site_id, k).await?,
            None => None,
        };
        Ok((profile, self.lists_of(site_id, lists)))
    }
}

impl MemoryStore {
    fn lists_of(&self, site_id: &str, keys: &[ListKey]) -> HashMap<ListKey, NeighbourList> {
        let stored = lock(&self.neighbours);
        keys.iter()
            .take(super::MAX_LISTS_PER_READ)
            .filter_map(|k| {
                stored
                    .get(&(site_id.to_string(), k.clone()))
                    .map(|(l, _)| (k.clone(), l.clone()))
            })
            .collect()
    }
}

impl NeighbourStore for MemoryStore {
    async fn neighbour_lists(
        &self,
        site_id: &str,
        keys: &[ListKey],
    ) -> Result<HashMap<ListKey, (NeighbourList, u64)>, StoreError> {
        self.read_check()?;
        let stored = lock(&self.neighbours);
        Ok(keys
            .iter()
            .filter_map(|k| {
                stored
                    .get(&(site_id.to_string(), k.clone()))
                    .map(|v| (k.clone(), v.clone()))
            })
            .collect())
    }

    async fn save_neighbour_lists(
        &self,
        site_id: &str,
        writes: Vec<ListWrite>,
    ) -> Result<Vec<ListKey>, StoreError> {
        if self.fail_list_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "injected list write failure".into(),
            ));
        }
        let mut stored = lock(&self.neighbours);
        let mut conflicts = Vec::new();
        for w in writes {
            let at = (site_id.to_string(), w.key.clone());
            let current = stored.get(&at).map_or(0, |(_, v)| *v);
            if current == w.expected {
                stored.insert(at, (w.list, w.expected + 1));
            } else {
                conflicts.push(w.key);
            }
        }
        Ok(conflicts)
    }
}

impl PopularityStore for MemoryStore {
    async fn popularity(&self, site_id: &str) -> Result<(Popularity, u64), StoreError> {
        self.read_check()?;
        Ok(lock(&self.popularity)
            .get(site_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_popularity(&self, write: &PopularityWrite<'_>) -> Result<(), StoreError> {
        let (site_id, popularity, expected) = (write.site_id, write.popularity, write.expected);
        if lock(&self.fail_popularity_of).as_deref() == Some(site_id) {
            return Err(StoreError::Unavailable(
                "injected popularity write failure".into(),
            ));
        }
        let active = lock(&self.tenants)
            .get(site_id)
            .is_some_and(|t| t.status == crate::tenant::TenantStatus::Active);
        if !active {
            return Err(StoreError::TenantInactive);
        }
        let mut p = lock(&self.popularity);
        let current = p.get(site_id).map_or(0, |(_, v)| *v);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        p.insert(site_id.to_string(), (popularity.clone(), expected + 1));
        Ok(())
    }
}

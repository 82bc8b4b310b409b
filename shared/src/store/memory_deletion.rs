//! Memory doubles of the deletion and shopper ports ([`DeletionJobs`] with the [`TenantDirectory`] it
//! reads, [`TenantItems`], [`ShopperRecords`], [`WebhookReceipts`]) on [`MemoryStore`], with the same conditions as the
//! DynamoDB adapter's writes. Only built with the `test-doubles` feature.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use super::deletion::{Completion, DeletionJobs, ItemPage, Lease, ShopperRecords, TenantItems};
use super::memory::{lock, MemoryStore};
use super::tenants::{TenantDirectory, WebhookReceipts};
use super::{claimants_among, split_claimant, ProfileRecord, StoreError, StoredEvent};
use crate::deletion::{DataTable, DeletionJob, DeletionState, ItemKey, MAX_PAGE_SIZE};
use crate::tenant::TenantStatus;

fn key(pairs: &[(&str, &str)]) -> ItemKey {
    ItemKey(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn event_key(e: &StoredEvent) -> ItemKey {
    key(&[
        ("site", &e.site_id),
        ("shopper", &e.shopper_id),
        ("event", &e.event_id),
    ])
}

fn profile_key(site_id: &str, shopper_key: &str) -> ItemKey {
    key(&[("site", site_id), ("key", shopper_key)])
}

fn part<'a>(k: &'a ItemKey, name: &str) -> &'a str {
    k.0.get(name).map_or("", String::as_str)
}

fn carries(e: &StoredEvent, site_id: &str, guest_id: &str, customer_id: Option<&str>) -> bool {
    e.site_id == site_id
        && e.shopper_id == guest_id
        && customer_id.is_none_or(|c| e.customer_id.as_deref() == Some(c))
}

impl MemoryStore {
    fn fail_delete_check(&self) -> Result<(), StoreError> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("injected delete failure".into()))
        } else {
            Ok(())
        }
    }

    /// Every key of `site_id`'s items in `table`, sorted.
    fn site_keys(&self, table: DataTable, site_id: &str) -> Vec<ItemKey> {
        let mut keys: Vec<ItemKey> = match table {
            DataTable::Events => lock(&self.events)
                .iter()
                .filter(|e| e.site_id == site_id)
                .map(event_key)
                .collect(),
            DataTable::Profiles => lock(&self.profiles)
                .keys()
                .filter(|(s, _)| s == site_id)
                .map(|(s, k)| profile_key(s, k))
                .collect(),
            DataTable::Popularity => vec![key(&[("site", site_id)])],
        };
        keys.sort();
        keys
    }

    fn exists(&self, table: DataTable, k: &ItemKey) -> bool {
        let site = part(k, "site");
        match table {
            DataTable::Events => lock(&self.events).iter().any(|e| &event_key(e) == k),
            DataTable::Profiles => {
                lock(&self.profiles).contains_key(&(site.to_string(), part(k, "key").to_string()))
            }
            DataTable::Popularity => lock(&self.popularity).contains_key(site),
        }
    }
}

impl TenantDirectory for MemoryStore {
    async fn site_id_of_tenant(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        self.read_check()?;
        Ok(self.tenant_pointers.site_of(tenant_id))
    }
}

impl DeletionJobs for MemoryStore {
    async fn deletion(&self, tenant_id: &str) -> Result<Option<DeletionJob>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.deletions).get(tenant_id).cloned())
    }

    async fn pending_deletions(&self) -> Result<Vec<String>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.deletion_queue).iter().cloned().collect())
    }

    async fn mark_deleting(
        &self,
        job: &DeletionJob,
        replaces: Option<i64>,
    ) -> Result<(), StoreError> {
        let site = job.site()?;
        let mut jobs = lock(&self.deletions);
        let mut tenants = lock(&self.tenants);
        let job_ok = match (jobs.get(&job.tenant_id), replaces) {
            (None, None) => true,
            (Some(old), Some(at)) => {
                old.state == DeletionState::Completed && old.requested_ms == at
            }
            _ => false,
        };
        let Some(tenant) = tenants.get_mut(site).filter(|t| {
            t.tenant_id == job.tenant_id && t.status != TenantStatus::Deleted && job_ok
        }) else {
            return Err(StoreError::Conflict);
        };
        tenant.status = TenantStatus::Deleting;
        tenant.messaging_consent = false;
        tenant.access_token_ciphertext = None;
        tenant.pepper_ciphertext = None;
        tenant.identity_secret_ciphertext = None;
        jobs.insert(job.tenant_id.clone(), job.clone());
        lock(&self.deletion_queue).insert(job.tenant_id.clone());
        Ok(())
    }

    async fn acquire_lease(&self, lease: &Lease<'_>) -> Result<Option<DeletionJob>, StoreError> {
        let mut jobs = lock(&self.deletions);
        let Some(job) = jobs.get_mut(lease.tenant_id).filter(|j| {
            j.state == DeletionState::Running
                && (j.lease_until_ms == 0 || j.lease_until_ms < lease.now_ms)
        }) else {
            return Ok(None);
        };
        job.lease_owner = Some(lease.run_id.to_string());
        job.lease_until_ms = lease.until_ms;
        job.runs += 1;
        Ok(Some(job.clone()))
    }

    async fn save_checkpoint(&self, job: &DeletionJob, run_id: &str) -> Result<(), StoreError> {
        let mut jobs = lock(&self.deletions);
        match jobs.get(&job.tenant_id) {
            Some(held) if held.lease_owner.as_deref() == Some(run_id) => {
                jobs.insert(job.tenant_id.clone(), job.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn complete_deletion(&self, c: &Completion<'_>) -> Result<(), StoreError> {
        let tenant_id = &c.tombstone.tenant_id;
        let mut jobs = lock(&self.deletions);
        let mut tenants = lock(&self.tenants);
        let mut pointers = self.tenant_pointers.entries();
        let lease_held = jobs
            .get(tenant_id)
            .is_some_and(|j| j.lease_owner.as_deref() == Some(c.run_id));
        let pointer_ok = c
            .pointer_site
            .is_none_or(|site| pointers.get(tenant_id).map(String::as_str) == Some(site));
        let record_ok = c.site_tombstone.is_none_or(|stub| {
            tenants
                .get(&stub.site_id)
                .is_some_and(|t| t.status == TenantStatus::Deleting)
        });
        if !(lease_held && pointer_ok && record_ok) {
            return Err(StoreError::Conflict);
        }
        if c.pointer_site.is_some() {
            pointers.remove(tenant_id);
        }
        if let Some(stub) = c.site_tombstone {
            tenants.insert(stub.site_id.clone(), stub.clone());
        }
        jobs.insert(tenant_id.clone(), c.tombstone.clone());
        lock(&self.deletion_queue).remove(tenant_id);
        Ok(())
    }
}

impl TenantItems for MemoryStore {
    async fn item_page(
        &self,
        table: DataTable,
        site_id: &str,
        cursor: Option<&str>,
        page_size: i32,
    ) -> Result<ItemPage, StoreError> {
        self.read_check()?;
        let after: Option<ItemKey> = cursor
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let size = usize::try_from(page_size.clamp(1, MAX_PAGE_SIZE)).unwrap_or(1);
        let mut rest = self
            .site_keys(table, site_id)
            .into_iter()
            .filter(|k| after.as_ref().is_none_or(|a| k > a));
        let keys: Vec<ItemKey> = rest.by_ref().take(size).collect();
        let last = keys.last().filter(|_| rest.next().is_some());
        let next = last
            .map(|k| serde_json::to_string(k).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        Ok(ItemPage { keys, next })
    }

    async fn live_items(
        &self,
        table: DataTable,
        keys: Vec<ItemKey>,
    ) -> Result<Vec<ItemKey>, StoreError> {
        self.read_check()?;
        let mut live: Vec<ItemKey> = keys.into_iter().filter(|k| self.exists(table, k)).collect();
        live.sort();
        live.dedup();
        Ok(live)
    }

    async fn delete_items(&self, table: DataTable, keys: &[ItemKey]) -> Result<(), StoreError> {
        self.fail_delete_check()?;
        match table {
            DataTable::Events => lock(&self.events).retain(|e| !keys.contains(&event_key(e))),
            DataTable::Profiles => {
                lock(&self.profiles).retain(|(s, k), _| !keys.contains(&profile_key(s, k)))
            }
            DataTable::Popularity => {
                let mut p = lock(&self.popularity);
                for k in keys {
                    p.remove(part(k, "site"));
                }
            }
        }
        Ok(())
    }
}

impl ShopperRecords for MemoryStore {
    async fn links_to(
        &self,
        site_id: &str,
        profile_key: &str,
    ) -> Result<HashMap<String, ProfileRecord>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.profiles)
            .iter()
            .filter(|((s, _), r)| {
                s == site_id
                    && matches!(r, ProfileRecord::Alias { linked_to, .. }
                        | ProfileRecord::Claim { linked_to, .. } if linked_to == profile_key)
            })
            .map(|((_, k), r)| (k.clone(), r.clone()))
            .collect())
    }

    async fn claimants(
        &self,
        site_id: &str,
        identity_key: &str,
    ) -> Result<BTreeSet<String>, StoreError> {
        self.read_check()?;
        let profiles = lock(&self.profiles);
        let claims = profiles.iter().filter(|((s, k), _)| {
            s == site_id && split_claimant(k).is_some_and(|(identity, _)| identity == identity_key)
        });
        Ok(claimants_among(claims.map(|(_, r)| r)))
    }

    async fn shopper_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_check()?;
        Ok(lock(&self.events)
            .iter()
            .filter(|e| carries(e, site_id, guest_id, customer_id))
            .cloned()
            .collect())
    }

    async fn erase_profiles(&self, site_id: &str, keys: &[String]) -> Result<u64, StoreError> {
        self.fail_delete_check()?;
        let mut p = lock(&self.profiles);
        let before = p.len();
        p.retain(|(s, k), _| !(s == site_id && keys.contains(k)));
        Ok((before - p.len()) as u64)
    }

    async fn erase_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.fail_delete_check()?;
        let mut events = lock(&self.events);
        let before = events.len();
        events.retain(|e| !carries(e, site_id, guest_id, customer_id));
        Ok((before - events.len()) as u64)
    }
}

impl WebhookReceipts for MemoryStore {
    async fn claim_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
        _now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut receipts = lock(&self.webhook_receipts);
        if receipts.contains_key(webhook_id) {
            return Ok(false);
        }
        receipts.insert(webhook_id.to_string(), topic.to_string());
        Ok(true)
    }

    async fn release_webhook(&self, webhook_id: &str) -> Result<(), StoreError> {
        lock(&self.webhook_receipts).remove(webhook_id);
        Ok(())
    }
}

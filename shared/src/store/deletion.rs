//! The storage ports of tenant deletion and of shoppers' rights: deletion jobs, tenant items and
//! shopper records. The rules that use them are in [`crate::deletion`]; the DynamoDB adapter implements
//! them in `store/dynamo/`, the memory doubles in `store/memory_deletion.rs`.
//!
//! The domain types the ports carry are re-exported here, where callers of the ports find them.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

pub use crate::deletion::shopper::{ErasureReport, ShopperExport, ShopperIds};
pub use crate::deletion::{
    Begin, DataTable, DeletedCounts, DeletionJob, DeletionSettings, DeletionState, ItemKey,
    PastDeletion, Progress, RunOutcome, Step, Trigger, MAX_PAGE_SIZE,
};

use super::tenants::TenantDirectory;
use super::{ProfileRecord, ProfileStore, StoreError, StoredEvent};
use crate::tenant::Tenant;

/// The last write of a deletion: all of it, or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion<'a> {
    /// The tombstone that replaces the job (written only while `run_id` holds the lease).
    pub tombstone: &'a DeletionJob,
    /// The run holding the lease.
    pub run_id: &'a str,
    /// Delete the tenant id's pointer, provided it still names this site id.
    pub pointer_site: Option<&'a str>,
    /// Replace the tenant record by this site tombstone, provided the record is still `deleting`.
    pub site_tombstone: Option<&'a Tenant>,
}

/// A run's claim on a deletion job: `run_id` holds `tenant_id`'s job until `until_ms`, if no other
/// run's lease is unexpired at `now_ms` (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The tenant whose job it is.
    pub tenant_id: &'a str,
    /// The run taking it.
    pub run_id: &'a str,
    /// Now, epoch ms.
    pub now_ms: i64,
    /// When the lease ends, epoch ms.
    pub until_ms: i64,
}

/// Deletion jobs (and, once completed, their tombstones), the queue the schedule reads, and (through
/// [`TenantDirectory`]) the reads of the tenant records and pointers a deletion works on.
pub trait DeletionJobs: TenantDirectory {
    /// The deletion job (or tombstone) of `tenant_id`, strongly consistent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn deletion(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Option<DeletionJob>, StoreError>> + Send;

    /// The tenant ids whose deletion is not finished (the queue), sorted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn pending_deletions(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// In one atomic write: marks the tenant record at `job.site_id` `deleting` (it must be `active` or
    /// `deleting` and belong to `job.tenant_id`), withdraws its messaging consent and removes its access
    /// token and pepper ciphertexts; stores `job`, which must be the first job of the tenant id
    /// (`replaces: None`) or replace the completed one requested at `replaces` (epoch ms); queues it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a condition failed (nothing was written); [`StoreError::Unavailable`];
    /// [`StoreError::Corrupt`] for a job without a site id.
    fn mark_deleting(
        &self,
        job: &DeletionJob,
        replaces: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the lease of the tenant's running job (see [`Lease`]), when no unexpired lease is held,
    /// counting the run; returns the job as stored then. `None`: no running job, or another run holds
    /// the lease.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn acquire_lease(
        &self,
        lease: &Lease<'_>,
    ) -> impl Future<Output = Result<Option<DeletionJob>, StoreError>> + Send;

    /// Saves the job (the checkpoint), if `run_id` still holds its lease.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the lease was lost; [`StoreError::Unavailable`].
    fn save_checkpoint(
        &self,
        job: &DeletionJob,
        run_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last write of a deletion (see [`Completion`]), which also takes the job off the queue.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a condition failed (nothing was written); [`StoreError::Unavailable`].
    fn complete_deletion(
        &self,
        completion: &Completion<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts the deletion of `tenant_id` (see [`crate::deletion::begin`]).
    ///
    /// # Errors
    /// As [`crate::deletion::begin`].
    fn begin_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send
    where
        Self: Sized,
    {
        crate::deletion::begin(self, tenant_id, trigger, now_ms)
    }
}

/// One page of a table's tenant items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemPage {
    /// The keys found (not yet confirmed: the index is eventually consistent).
    pub keys: Vec<ItemKey>,
    /// The cursor of the next page; `None` after the last.
    pub next: Option<String>,
}

/// Every item of a tenant, table by table: found by site id, confirmed, deleted.
pub trait TenantItems: Send + Sync {
    /// One page (at most `page_size`, 1 to [`MAX_PAGE_SIZE`], keys) of `site_id`'s items in `table`,
    /// from `cursor` (`None`: the first page). For [`DataTable::Popularity`], the key of the tenant's
    /// one item, whether it exists or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Corrupt`] for a cursor or key it cannot read.
    fn item_page(
        &self,
        table: DataTable,
        site_id: &str,
        cursor: Option<&str>,
        page_size: i32,
    ) -> impl Future<Output = Result<ItemPage, StoreError>> + Send;

    /// Of `keys` (at most [`MAX_PAGE_SIZE`]), those whose item exists now (strongly consistent), sorted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn live_items(
        &self,
        table: DataTable,
        keys: Vec<ItemKey>,
    ) -> impl Future<Output = Result<Vec<ItemKey>, StoreError>> + Send;

    /// Deletes the items at `keys` of `table` (deleting a missing item is not an error).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (some may have been deleted: deleting again is harmless).
    fn delete_items(
        &self,
        table: DataTable,
        keys: &[ItemKey],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One shopper's records: their profile items, their links, their events, and erasing them.
pub trait ShopperRecords: ProfileStore {
    /// The profile items at `keys` (shopper keys; missing ones are absent), strongly consistent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn shopper_profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ProfileRecord>, StoreError>> + Send {
        ProfileStore::profiles(self, site_id, keys)
    }

    /// The link items (aliases and claims, by shopper key) that point at the profile `profile_key`:
    /// the profiles table's `by_link` index, every page. The index is eventually consistent (a link
    /// written in the last second may be missing: erasure looks twice).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn links_to(
        &self,
        site_id: &str,
        profile_key: &str,
    ) -> impl Future<Output = Result<HashMap<String, ProfileRecord>, StoreError>> + Send;

    /// The profile keys whose browsers claimed `identity_key` (an email or phone key) and do not hold
    /// its own item: its claimant items ([`crate::store::claimant_key`]), from the `by_claim` index
    /// (eventually consistent, as [`ShopperRecords::links_to`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn claimants(
        &self,
        site_id: &str,
        identity_key: &str,
    ) -> impl Future<Output = Result<BTreeSet<String>, StoreError>> + Send;

    /// The events of `guest_id` (all, or only those carrying `customer_id`), strongly consistent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn shopper_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Deletes the profile items at `keys` that exist; returns how many did.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn erase_profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes the events of `guest_id` (all, or only those carrying `customer_id`); returns how many
    /// there were.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn erase_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

//! The deletion job: what it records, and the pure steps of its state machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Most keys per page of a table's tenant items (DynamoDB's `BatchGetItem` limit).
pub const MAX_PAGE_SIZE: i32 = 100;

/// What asked for a tenant's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// An operator: `DELETE /v1/tenants/{tenant_id}`.
    #[serde(rename = "operator")]
    Operator,
    /// Shopify's `shop/redact` webhook (48 hours after the app was uninstalled).
    #[serde(rename = "shopify:shop/redact")]
    ShopifyShopRedact,
    /// Shopify's `app/uninstalled` webhook.
    #[serde(rename = "shopify:app/uninstalled")]
    ShopifyAppUninstalled,
    /// BigCommerce's uninstall callback.
    #[serde(rename = "bigcommerce:uninstall")]
    BigCommerceUninstall,
}

/// Where a deletion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionState {
    /// Items are being deleted (or the job waits for the grace period or a re-check).
    Running,
    /// Every item is gone; the job is now the tombstone.
    Completed,
}

/// The tables that hold a tenant's data items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataTable {
    /// Raw events (`by_site` index).
    Events,
    /// Shopper profiles and aliases (`by_site` index).
    Profiles,
    /// The tenant's popularity item.
    Popularity,
}

/// The next thing a deletion job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Page through the events table's tenant items.
    #[default]
    Events,
    /// Page through the profiles table's tenant items.
    Profiles,
    /// Delete the popularity item.
    Popularity,
    /// Close the pass: count it clean or not, schedule the next.
    PassEnd,
    /// Delete the pointer, leave the site tombstone, complete the job.
    Finish,
    /// Completed.
    Done,
}

impl Step {
    /// The table a paging step works on and the step after its last page; `None` for other steps.
    pub fn table(self) -> Option<(DataTable, Step)> {
        match self {
            Step::Events => Some((DataTable::Events, Step::Profiles)),
            Step::Profiles => Some((DataTable::Profiles, Step::Popularity)),
            Step::Popularity => Some((DataTable::Popularity, Step::PassEnd)),
            Step::PassEnd | Step::Finish | Step::Done => None,
        }
    }
}

/// Items deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedCounts {
    /// Raw events.
    #[serde(default)]
    pub events: u64,
    /// Shopper profiles and aliases.
    #[serde(default)]
    pub profiles: u64,
    /// The popularity item (0 or 1).
    #[serde(default)]
    pub popularity: u64,
    /// Tenants-table items: the tenant record (replaced by its site tombstone) and the tenant-id pointer.
    #[serde(default)]
    pub tenants: u64,
}

impl DeletedCounts {
    fn add(&mut self, table: DataTable, k: u64) {
        match table {
            DataTable::Events => self.events += k,
            DataTable::Profiles => self.profiles += k,
            DataTable::Popularity => self.popularity += k,
        }
    }

    /// Items deleted in all.
    pub fn total(&self) -> u64 {
        self.events + self.profiles + self.popularity + self.tenants
    }
}

/// An earlier deletion of the same tenant id (the store was re-installed after it), kept for the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastDeletion {
    /// What asked for it.
    pub trigger: Trigger,
    /// When it was requested (RFC 3339).
    pub requested_at: String,
    /// When it completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Items deleted, per table.
    pub deleted: DeletedCounts,
}

/// The key of one stored item, with the attribute names the storage adapter gives it (the domain never
/// looks inside: it only carries keys from a page to the checkpoint and to the delete).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemKey(pub BTreeMap<String, String>);

/// The page being deleted, saved in the checkpoint so that a resuming run deletes it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// Its table.
    pub table: DataTable,
    /// The confirmed keys.
    pub keys: Vec<ItemKey>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u(v: &u64) -> bool {
    *v == 0
}

/// A deletion job; once completed, the tombstone.
///
/// Public fields are the progress document and the tombstone. The internal fields (site id, cursor,
/// in-flight keys, lease) exist only while the job runs and are removed when it completes, so the
/// tombstone holds no personal data and no key of the deleted tenant's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionJob {
    /// The tenant.
    pub tenant_id: String,
    /// What asked for the deletion.
    pub trigger: Trigger,
    /// Running or completed.
    pub state: DeletionState,
    /// When the deletion was requested and the tenant marked `deleting` (RFC 3339).
    pub requested_at: String,
    /// The same, epoch ms.
    pub requested_ms: i64,
    /// When the access token and pepper ciphertexts were removed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_destroyed_at: Option<String>,
    /// When the last item was deleted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Items deleted so far, per table.
    #[serde(default)]
    pub deleted: DeletedCounts,
    /// Passes over every table finished.
    #[serde(default)]
    pub passes: u32,
    /// Consecutive passes that found nothing, counted from the end of the grace period.
    #[serde(default)]
    pub clean_passes: u32,
    /// Invocations that worked on the job.
    #[serde(default)]
    pub runs: u32,
    /// Earlier completed deletions of this tenant id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastDeletion>,

    /// Internal: the site id whose items are deleted (removed on completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// Internal: what the job does next.
    #[serde(default)]
    pub step: Step,
    /// Internal: the page cursor of the current table (opaque, from the storage adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Internal: the page being deleted (JSON of [`InFlight`]), deleted again by a resuming run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight: Option<String>,
    /// Internal: when the current pass started, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_started_ms: Option<i64>,
    /// Internal: items found by the current pass.
    #[serde(default, skip_serializing_if = "is_zero_u")]
    pub pass_found: u64,
    /// Internal: earliest start of the next pass, epoch ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_pass_ms: i64,
    /// Internal: the run holding the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// Internal: the lease's expiry (the holder's deadline), epoch ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease_until_ms: i64,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl DeletionJob {
    /// A new job for `tenant_id` (whose items carry `site_id`), requested at `now_ms`; the secrets are
    /// destroyed in the same write that stores it.
    pub fn new(tenant_id: &str, site_id: &str, trigger: Trigger, now_ms: i64) -> Self {
        let at = crate::rfc3339(now_ms);
        Self {
            tenant_id: tenant_id.to_string(),
            trigger,
            state: DeletionState::Running,
            requested_at: at.clone(),
            requested_ms: now_ms,
            secrets_destroyed_at: Some(at),
            completed_at: None,
            deleted: DeletedCounts::default(),
            passes: 0,
            clean_passes: 0,
            runs: 0,
            history: Vec::new(),
            site_id: Some(site_id.to_string()),
            step: Step::Events,
            cursor: None,
            inflight: None,
            pass_started_ms: None,
            pass_found: 0,
            next_pass_ms: 0,
            lease_owner: None,
            lease_until_ms: 0,
        }
    }

    /// Keeps `old` (a completed deletion of the same tenant id) and its history in this job's history.
    pub fn after(mut self, old: &DeletionJob) -> Self {
        self.history.clone_from(&old.history);
        self.history.push(PastDeletion {
            trigger: old.trigger,
            requested_at: old.requested_at.clone(),
            completed_at: old.completed_at.clone(),
            deleted: old.deleted,
        });
        self
    }

    /// The site whose items a running job deletes.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a running job has none.
    pub fn site(&self) -> Result<&str, StoreError> {
        self.site_id
            .as_deref()
            .ok_or_else(|| corrupt("running deletion without a site id"))
    }

    /// The page in flight, if the last run saved one.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the saved page does not parse.
    pub fn in_flight(&self) -> Result<Option<InFlight>, StoreError> {
        self.inflight
            .as_deref()
            .map(|raw| serde_json::from_str(raw).map_err(corrupt))
            .transpose()
    }

    /// Records a confirmed page of `table` (counted at once) as in flight, and the cursor of the next
    /// page (`None`: the table is done, the job moves to `next_step`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the page cannot be serialized (it always can).
    pub fn record_page(
        &mut self,
        table: DataTable,
        live: &[ItemKey],
        next_cursor: Option<String>,
        next_step: Step,
    ) -> Result<(), StoreError> {
        let found = live.len() as u64;
        self.deleted.add(table, found);
        self.pass_found += found;
        self.inflight = if live.is_empty() {
            None
        } else {
            let page = InFlight {
                table,
                keys: live.to_vec(),
            };
            Some(serde_json::to_string(&page).map_err(corrupt)?)
        };
        self.cursor = next_cursor;
        if self.cursor.is_none() {
            self.step = next_step;
        }
        Ok(())
    }

    /// Closes a pass at `now_ms`: a clean pass counts when it started after the grace period; schedules
    /// the next pass (after the grace period, or a re-check later) or the finish.
    pub fn end_pass(&mut self, settings: &DeletionSettings, now_ms: i64) {
        let started = self.pass_started_ms.unwrap_or(now_ms);
        self.passes += 1;
        if self.pass_found > 0 {
            self.clean_passes = 0;
        } else if started >= self.requested_ms + settings.grace_ms {
            self.clean_passes += 1;
        }
        self.pass_started_ms = None;
        self.pass_found = 0;
        self.cursor = None;
        self.inflight = None;
        if self.clean_passes >= settings.clean_passes.max(1) {
            self.step = Step::Finish;
        } else {
            self.step = Step::Events;
            self.next_pass_ms = if self.clean_passes > 0 {
                now_ms + settings.recheck_ms
            } else {
                (self.requested_ms + settings.grace_ms).max(now_ms)
            };
        }
    }

    /// The tombstone this job becomes at `now_ms`, having removed `tenant_items` items of the tenants
    /// table: completed, and without any internal field.
    pub fn tombstone(&self, now_ms: i64, tenant_items: u64) -> Self {
        let mut done = self.clone();
        done.deleted.tenants += tenant_items;
        done.state = DeletionState::Completed;
        done.completed_at = Some(crate::rfc3339(now_ms));
        done.step = Step::Done;
        done.site_id = None;
        done.cursor = None;
        done.inflight = None;
        done.pass_started_ms = None;
        done.pass_found = 0;
        done.next_pass_ms = 0;
        done.lease_owner = None;
        done.lease_until_ms = 0;
        done
    }
}

/// Timing of deletion runs. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionSettings {
    /// How long after the mark a pass must start to count as clean: longer than the slowest request that
    /// may still write for the tenant (the ingest Lambda's timeout, 10 s). Default 15 s.
    pub grace_ms: i64,
    /// Time between the clean passes that must agree before the job completes (the index's lag).
    /// Default 5 s.
    pub recheck_ms: i64,
    /// Clean passes required. Default 2.
    pub clean_passes: u32,
    /// A run stops, saving its checkpoint, when less than this remains before its deadline. Default 5 s.
    pub margin_ms: i64,
    /// Keys per page, 1 to [`MAX_PAGE_SIZE`]. Default 100.
    pub page_size: i32,
}

impl Default for DeletionSettings {
    fn default() -> Self {
        Self {
            grace_ms: 15_000,
            recheck_ms: 5_000,
            clean_passes: 2,
            margin_ms: 5_000,
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// What [`super::begin`] found or did.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The tenant was marked deleting and its secrets destroyed; a new job runs.
    Started(DeletionJob),
    /// A job already exists: running, or completed (then this is the tombstone).
    Existing(DeletionJob),
    /// No such tenant, and no deletion of it on record.
    NotFound,
}

impl Begin {
    /// The job, unless there is none.
    pub fn job(&self) -> Option<&DeletionJob> {
        match self {
            Self::Started(j) | Self::Existing(j) => Some(j),
            Self::NotFound => None,
        }
    }
}

/// How a run of a deletion job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The job is completed (now or before); the job is the tombstone.
    Completed(DeletionJob),
    /// The run stopped before its deadline (or waits for the grace period); the checkpoint is saved and
    /// a later run continues.
    Paused(DeletionJob),
    /// Another run holds the job's lease.
    Busy(DeletionJob),
    /// No job for this tenant id.
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> DeletionJob {
        DeletionJob::new("demo-1", "s_1", Trigger::Operator, 1_000_000)
    }

    #[test]
    fn a_pass_counts_as_clean_only_after_the_grace_period() {
        let settings = DeletionSettings::default();
        let mut j = job();
        j.pass_started_ms = Some(j.requested_ms + 1);
        let now = j.requested_ms + 100;
        j.end_pass(&settings, now);
        assert_eq!((j.clean_passes, j.step), (0, Step::Events));
        assert_eq!(j.next_pass_ms, j.requested_ms + settings.grace_ms);

        j.pass_started_ms = Some(j.next_pass_ms);
        let now = j.next_pass_ms + 10;
        j.end_pass(&settings, now);
        assert_eq!(j.clean_passes, 1);
        assert_eq!(
            j.next_pass_ms,
            j.requested_ms + settings.grace_ms + 10 + settings.recheck_ms
        );

        // Something written meanwhile: the count starts again.
        j.pass_started_ms = Some(j.next_pass_ms);
        j.pass_found = 3;
        let now = j.next_pass_ms + 10;
        j.end_pass(&settings, now);
        assert_eq!(j.clean_passes, 0);

        for _ in 0..2 {
            j.pass_started_ms = Some(j.next_pass_ms.max(j.requested_ms + settings.grace_ms));
            let now = j.pass_started_ms.unwrap_or_default() + 10;
            j.end_pass(&settings, now);
        }
        assert_eq!((j.clean_passes, j.step), (2, Step::Finish));
    }

    #[test]
    fn a_recorded_page_is_counted_once_and_kept_in_flight() {
        let mut j = job();
        let keys = vec![ItemKey(BTreeMap::from([("pk".into(), "a".into())]))];
        j.record_page(DataTable::Events, &keys, Some("c".into()), Step::Profiles)
            .expect("page");
        assert_eq!(
            (j.deleted.events, j.pass_found, j.step),
            (1, 1, Step::Events)
        );
        assert_eq!(
            j.in_flight().expect("parses"),
            Some(InFlight {
                table: DataTable::Events,
                keys: keys.clone()
            })
        );
        j.record_page(DataTable::Events, &[], None, Step::Profiles)
            .expect("page");
        assert_eq!(
            (j.deleted.events, j.step, j.inflight.clone()),
            (1, Step::Profiles, None)
        );
    }

    #[test]
    fn the_tombstone_keeps_no_site_id_cursor_or_lease() {
        let mut j = job();
        j.cursor = Some("{}".into());
        j.inflight = Some("{}".into());
        j.lease_owner = Some("run".into());
        j.lease_until_ms = 5;
        let t = j.tombstone(2_000_000, 2);
        assert_eq!(t.state, DeletionState::Completed);
        assert_eq!(t.deleted.tenants, 2);
        assert_eq!(
            (
                t.site_id,
                t.cursor,
                t.inflight,
                t.lease_owner,
                t.lease_until_ms
            ),
            (None, None, None, None, 0)
        );
        assert_eq!(t.completed_at.as_deref(), Some("1970-01-01T00:33:20Z"));
    }

    #[test]
    fn a_new_deletion_after_a_completed_one_keeps_it_in_the_history() {
        let old = job().tombstone(1_500_000, 2);
        let new = DeletionJob::new("demo-1", "s_2", Trigger::Operator, 3_000_000).after(&old);
        assert_eq!(new.history.len(), 1);
        assert_eq!(new.history[0].deleted.tenants, 2);
        assert_eq!(new.history[0].completed_at, old.completed_at);
    }
}

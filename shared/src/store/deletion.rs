//! Tenant deletion, shopper erasure and shopper export: more `impl DynamoStore` blocks.
//!
//! # Tenant deletion
//! A deletion is a job item at `pk = deletion#{tenant_id}` in the tenants table; when it completes, the
//! same item is the tombstone (tenant id, trigger, times, items deleted per table; no personal data).
//!
//! 1. [`DynamoStore::begin_deletion`], one transaction: the tenant record is marked `deleting` and its KMS
//!    ciphertexts (platform access token, PII hashing key) are removed (crypto-shredding: no stored hash
//!    can be linked to a person again), the job is created, and the tenant id joins the queue item
//!    (`pk = deletion-queue`) that the schedule reads. From then on ingest and recommend answer 410.
//! 2. [`DynamoStore::run_deletion`] makes *passes*. A pass pages through the `by_site` index of the
//!    events and profiles tables and then the popularity item. Each page: the index's keys (eventually
//!    consistent) are confirmed with a strongly consistent `BatchGetItem`, the checkpoint (index cursor,
//!    counts, and the confirmed keys as the page *in flight*) is saved, then the keys are deleted with
//!    `BatchWriteItem` (25 a request, `UnprocessedItems` retried with backoff). A run interrupted after
//!    the checkpoint deletes the in-flight keys again when it resumes, so counts are exact and nothing
//!    is counted twice.
//! 3. A pass that finds nothing is *clean*. Requests in flight when the mark was set may still write
//!    (ingest's profile writes are not conditional), so a clean pass counts only when it started at
//!    least [`DeletionSettings::grace_ms`] after the mark; and because the index is eventually
//!    consistent, [`DeletionSettings::clean_passes`] clean passes are required,
//!    [`DeletionSettings::recheck_ms`] apart.
//! 4. Then, in one transaction: the `tenant#{tenant_id}` pointer is deleted, the tenant record is
//!    replaced by its *site tombstone* (ids and `status: deleted` only, so the site id keeps answering
//!    410 instead of being reusable), the job becomes the tombstone, and leaves the queue.
//!
//! Runs stop cleanly when less than [`DeletionSettings::margin_ms`] remains before their deadline,
//! saving the checkpoint. A lease on the job item (until the run's deadline) keeps two runs from
//! working on one job at once; running twice is harmless.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
    Update, WriteRequest,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde::{Deserialize, Serialize};

use super::dynamo::{
    event_from_item, event_pk, profile_pk, tenant_pk, tenant_to_item, DynamoStore, BACKOFF_BASE_MS,
    BATCH_ATTEMPTS,
};
use super::tenants::tenant_pointer_pk;
use super::{guest_key, ProfileRecord, ProfileStore, StoreError, StoredEvent, TenantLookup};
use crate::tenant::{Tenant, TenantStatus};

type Item = HashMap<String, AttributeValue>;

/// The key of the queue item that lists the tenant ids whose deletion is not finished.
pub const QUEUE_PK: &str = "deletion-queue";

/// Most keys per page of the `by_site` index (also the `BatchGetItem` limit).
pub const MAX_PAGE_SIZE: i32 = 100;

/// How long a webhook id is remembered, in seconds (Shopify retries a failed delivery for up to 48
/// hours; a week leaves room).
pub const WEBHOOK_RECEIPT_TTL_S: i64 = 7 * 86_400;

/// The key of a tenant's deletion job and, once completed, its tombstone.
pub fn deletion_pk(tenant_id: &str) -> String {
    format!("deletion#{tenant_id}")
}

/// The key of a processed webhook delivery.
pub fn webhook_pk(webhook_id: &str) -> String {
    format!("webhook#{webhook_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

async fn backoff(attempt: u32) {
    let base = BACKOFF_BASE_MS << attempt.min(8);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

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
    /// Every item is gone; the job item is now the tombstone.
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
    /// The tenant's popularity item (`pk = site_id`).
    Popularity,
}

/// The next thing a deletion job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Page through the events table's `by_site` index.
    #[default]
    Events,
    /// Page through the profiles table's `by_site` index.
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

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u(v: &u64) -> bool {
    *v == 0
}

/// A deletion job, stored at `pk = deletion#{tenant_id}`; once completed, the tombstone.
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
    /// When the access token and PII hashing key ciphertexts were removed (RFC 3339).
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
    /// Internal: the index cursor of the current table (JSON of `LastEvaluatedKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Internal: the keys of the page being deleted (JSON), deleted again by a resuming run.
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

/// The progress document that the API answers (`GET /v1/tenants/{tenant_id}/deletion`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The tenant.
    pub tenant_id: String,
    /// `running` or `completed`.
    pub state: DeletionState,
    /// What the job is doing, in words.
    pub phase: &'static str,
    /// What asked for the deletion.
    pub trigger: Trigger,
    /// When requested (RFC 3339).
    pub requested_at: String,
    /// When the secrets were destroyed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_destroyed_at: Option<String>,
    /// When completed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Items deleted so far, per table.
    pub deleted: DeletedCounts,
    /// Passes finished.
    pub passes: u32,
    /// Consecutive clean passes after the grace period.
    pub clean_passes: u32,
    /// Earlier completed deletions of this tenant id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastDeletion>,
}

impl DeletionJob {
    fn new(tenant_id: &str, site_id: &str, trigger: Trigger, now_ms: i64) -> Self {
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

    /// The progress document.
    pub fn progress(&self) -> Progress {
        let phase = match (self.state, self.step) {
            (DeletionState::Completed, _) | (_, Step::Done) => "completed",
            (_, Step::Finish) => "removing the tenant record",
            (_, _) if self.pass_started_ms.is_none() && self.passes > 0 => {
                "waiting to verify (grace period or re-check)"
            }
            (_, Step::Events) if self.passes == 0 => "deleting events",
            (_, Step::Profiles) if self.passes == 0 => "deleting profiles",
            (_, Step::Popularity | Step::PassEnd) if self.passes == 0 => "deleting popularity",
            _ => "verifying that nothing is left",
        };
        Progress {
            tenant_id: self.tenant_id.clone(),
            state: self.state,
            phase,
            trigger: self.trigger,
            requested_at: self.requested_at.clone(),
            secrets_destroyed_at: self.secrets_destroyed_at.clone(),
            completed_at: self.completed_at.clone(),
            deleted: self.deleted,
            passes: self.passes,
            clean_passes: self.clean_passes,
            history: self.history.clone(),
        }
    }

    fn to_item(&self) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(self).map_err(corrupt)?;
        item.insert("pk".into(), s(deletion_pk(&self.tenant_id)));
        Ok(item)
    }

    fn from_item(mut item: Item) -> Result<Self, StoreError> {
        item.remove("pk");
        serde_dynamo::from_item(item).map_err(corrupt)
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
    /// Keys per index page, 1 to [`MAX_PAGE_SIZE`]. Default 100.
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

/// What [`DynamoStore::begin_deletion`] found or did.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The tenant was marked deleting and its secrets destroyed; a new job runs.
    Started(DeletionJob),
    /// A job already exists: running, or completed (then this is the tombstone).
    Existing(DeletionJob),
    /// No such tenant, and no deletion of it on record.
    NotFound,
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

/// The keys of one page (all string attributes), as saved in the checkpoint.
type Keys = Vec<BTreeMap<String, String>>;

#[derive(Serialize, Deserialize)]
struct InFlight {
    table: DataTable,
    keys: Keys,
}

fn key_of(item: &Item, attrs: &[&str]) -> Result<BTreeMap<String, String>, StoreError> {
    attrs
        .iter()
        .map(|a| match item.get(*a) {
            Some(AttributeValue::S(v)) => Ok(((*a).to_string(), v.clone())),
            _ => Err(StoreError::Corrupt(format!("key attribute {a} missing"))),
        })
        .collect()
}

fn item_of(key: &BTreeMap<String, String>) -> Item {
    key.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect()
}

fn encode_cursor(key: &Item) -> Result<String, StoreError> {
    let map: BTreeMap<String, String> = key
        .iter()
        .map(|(k, v)| match v {
            AttributeValue::S(x) => Ok((k.clone(), x.clone())),
            _ => Err(StoreError::Corrupt("non-string key in cursor".into())),
        })
        .collect::<Result<_, _>>()?;
    serde_json::to_string(&map).map_err(corrupt)
}

fn decode_cursor(c: &str) -> Result<Item, StoreError> {
    let map: BTreeMap<String, String> = serde_json::from_str(c).map_err(corrupt)?;
    Ok(item_of(&map))
}

fn conditional_failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
    is_condition: impl Fn(&E) -> bool,
) -> StoreError {
    if e.as_service_error().is_some_and(is_condition) {
        StoreError::Conflict
    } else {
        unavailable(e)
    }
}

impl DynamoStore {
    fn table_name(&self, t: DataTable) -> &str {
        match t {
            DataTable::Events => &self.tables().events,
            DataTable::Profiles => &self.tables().profiles,
            DataTable::Popularity => &self.tables().popularity,
        }
    }

    fn key_attrs(t: DataTable) -> &'static [&'static str] {
        match t {
            DataTable::Events => &["pk", "sk"],
            DataTable::Profiles | DataTable::Popularity => &["pk"],
        }
    }

    /// The deletion job (or tombstone) of `tenant_id`, strongly consistent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn deletion(&self, tenant_id: &str) -> Result<Option<DeletionJob>, StoreError> {
        let r = self
            .client()
            .get_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(deletion_pk(tenant_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        r.item.map(DeletionJob::from_item).transpose()
    }

    /// The tenant ids whose deletion is not finished (the queue item), for the schedule.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn pending_deletions(&self) -> Result<Vec<String>, StoreError> {
        let r = self
            .client()
            .get_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(QUEUE_PK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let mut ids = match r.item.as_ref().and_then(|i| i.get("tenant_ids")) {
            Some(AttributeValue::Ss(v)) => v.clone(),
            _ => Vec::new(),
        };
        ids.sort();
        Ok(ids)
    }

    /// Starts the deletion of `tenant_id`, at once: in one transaction the tenant record is marked
    /// `deleting`, its messaging consent withdrawn and its access token and PII key ciphertexts removed;
    /// the job is created and queued. Idempotent: a running or completed job is returned as it is. A
    /// tenant re-installed after a completed deletion gets a new job; the old tombstone moves to its
    /// `history`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; [`StoreError::Conflict`] when a concurrent
    /// change made the transaction fail and no job exists (retry).
    pub async fn begin_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        let existing = self.deletion(tenant_id).await?;
        let tenant = self
            .tenant_by_tenant_id(tenant_id)
            .await?
            .filter(|t| t.tenant_id == tenant_id && t.status != TenantStatus::Deleted);
        let Some(tenant) = tenant else {
            return Ok(existing.map_or(Begin::NotFound, Begin::Existing));
        };
        if let Some(job) = existing
            .as_ref()
            .filter(|j| j.state == DeletionState::Running)
        {
            return Ok(Begin::Existing(job.clone()));
        }
        let mut job = DeletionJob::new(tenant_id, &tenant.site_id, trigger, now_ms);
        let put = Put::builder()
            .table_name(&self.tables().tenants)
            .set_item(Some(job.to_item()?));
        let put = match &existing {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(old) => {
                job.history.clone_from(&old.history);
                job.history.push(PastDeletion {
                    trigger: old.trigger,
                    requested_at: old.requested_at.clone(),
                    completed_at: old.completed_at.clone(),
                    deleted: old.deleted,
                });
                put.set_item(Some(job.to_item()?))
                    .condition_expression("#state = :completed AND requested_ms = :old")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":completed", s("completed"))
                    .expression_attribute_values(":old", n(old.requested_ms))
            }
        };
        let mark = Update::builder()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(&tenant.site_id)))
            .update_expression(
                "SET #st = :deleting, messaging_consent = :no \
                 REMOVE access_token_ciphertext, pii_key_ciphertext",
            )
            .condition_expression("#st IN (:active, :deleting) AND tenant_id = :tid")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":deleting", s("deleting"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":tid", s(tenant_id))
            .build()
            .map_err(build_err)?;
        let queue = Update::builder()
            .table_name(&self.tables().tenants)
            .key("pk", s(QUEUE_PK))
            .update_expression("ADD tenant_ids :t")
            .expression_attribute_values(":t", AttributeValue::Ss(vec![tenant_id.to_string()]))
            .build()
            .map_err(build_err)?;
        let r = self
            .client()
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put.build().map_err(build_err)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(TransactWriteItem::builder().update(queue).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(Begin::Started(job)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                // Another request started (or finished) it first, or the tenant changed: report what is there.
                match self.deletion(tenant_id).await? {
                    Some(j)
                        if existing.as_ref() != Some(&j) || j.state == DeletionState::Running =>
                    {
                        Ok(Begin::Existing(j))
                    }
                    _ => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Takes the job's lease until `deadline_ms` (when no other run holds an unexpired one) and returns
    /// the job as stored. `None`: no running job, or the lease is held.
    async fn acquire_lease(
        &self,
        tenant_id: &str,
        run_id: &str,
        now_ms: i64,
        deadline_ms: i64,
    ) -> Result<Option<DeletionJob>, StoreError> {
        let r = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(deletion_pk(tenant_id)))
            .update_expression(
                "SET lease_owner = :me, lease_until_ms = :until, runs = if_not_exists(runs, :zero) + :one",
            )
            .condition_expression(
                "#state = :running AND (attribute_not_exists(lease_until_ms) OR lease_until_ms < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":me", s(run_id))
            .expression_attribute_values(":until", n(deadline_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => out.attributes.map(DeletionJob::from_item).transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Saves the job, if this run still holds the lease.
    async fn save_job(&self, job: &DeletionJob, run_id: &str) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().tenants)
            .set_item(Some(job.to_item()?))
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(run_id))
            .send()
            .await
            .map_err(|e| conditional_failed(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    /// One page of the `by_site` index of `table`: the table keys and the cursor of the next page.
    async fn index_page(
        &self,
        table: DataTable,
        site_id: &str,
        cursor: Option<&str>,
        page_size: i32,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let r = self
            .client()
            .query()
            .table_name(self.table_name(table))
            .index_name("by_site")
            .key_condition_expression("site_id = :s")
            .expression_attribute_values(":s", s(site_id))
            .limit(page_size.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(cursor.map(decode_cursor).transpose()?)
            .send()
            .await
            .map_err(unavailable)?;
        let attrs = Self::key_attrs(table);
        let keys = r
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| key_of(i, attrs).map(|k| item_of(&k)))
            .collect::<Result<_, _>>()?;
        let next = match r.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(encode_cursor(&k)?),
            _ => None,
        };
        Ok((keys, next))
    }

    /// Of `keys` (at most 100), those whose item exists now (strongly consistent `BatchGetItem`).
    async fn live_keys(&self, table: DataTable, keys: Vec<Item>) -> Result<Keys, StoreError> {
        let attrs = Self::key_attrs(table);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let name = self.table_name(table).to_string();
        let projection = attrs
            .iter()
            .map(|a| format!("#{a}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut ka = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .projection_expression(projection);
        for a in attrs {
            ka = ka.expression_attribute_names(format!("#{a}"), *a);
        }
        let mut request = HashMap::from([(name.clone(), ka.build().map_err(build_err)?)]);
        let mut out = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let r = self
                .client()
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(unavailable)?;
            for item in r
                .responses
                .unwrap_or_default()
                .remove(&name)
                .unwrap_or_default()
            {
                out.push(key_of(&item, attrs)?);
            }
            match r.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    backoff(attempt).await;
                }
                _ => {
                    out.sort();
                    return Ok(out);
                }
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed after retries".into(),
        ))
    }

    /// Deletes `keys` of `table` with `BatchWriteItem` (25 a request, the requests in parallel),
    /// retrying `UnprocessedItems` with backoff.
    async fn delete_keys(&self, table: DataTable, keys: &Keys) -> Result<(), StoreError> {
        let name = self.table_name(table).to_string();
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in keys.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(item_of(k)))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build_err)
                })
                .collect::<Result<_, _>>()?;
            let client = self.client().clone();
            let name = name.clone();
            tasks.spawn(async move {
                let mut requests = requests;
                for attempt in 0..BATCH_ATTEMPTS {
                    let r = client
                        .batch_write_item()
                        .request_items(&name, requests)
                        .send()
                        .await
                        .map_err(unavailable)?;
                    match r.unprocessed_items.and_then(|mut m| m.remove(&name)) {
                        Some(rest) if !rest.is_empty() => {
                            requests = rest;
                            backoff(attempt).await;
                        }
                        _ => return Ok(()),
                    }
                }
                Err(StoreError::Unavailable(
                    "BatchWriteItem left items unprocessed after retries".into(),
                ))
            });
        }
        let mut result = Ok(());
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(StoreError::Unavailable(e.to_string())),
            }
        }
        result
    }

    /// One page of the current table: find, confirm, checkpoint (with the keys in flight), delete.
    async fn delete_page(
        &self,
        job: &mut DeletionJob,
        run_id: &str,
        settings: &DeletionSettings,
    ) -> Result<(), StoreError> {
        let site = job
            .site_id
            .clone()
            .ok_or_else(|| StoreError::Corrupt("running deletion without a site id".into()))?;
        let (table, next_step) = match job.step {
            Step::Events => (DataTable::Events, Step::Profiles),
            Step::Profiles => (DataTable::Profiles, Step::Popularity),
            _ => (DataTable::Popularity, Step::PassEnd),
        };
        let (keys, next) = match table {
            DataTable::Popularity => (vec![HashMap::from([("pk".to_string(), s(&site))])], None),
            _ => {
                self.index_page(table, &site, job.cursor.as_deref(), settings.page_size)
                    .await?
            }
        };
        let live = self.live_keys(table, keys).await?;
        job.deleted.add(table, live.len() as u64);
        job.pass_found += live.len() as u64;
        job.inflight = if live.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&InFlight {
                    table,
                    keys: live.clone(),
                })
                .map_err(corrupt)?,
            )
        };
        job.cursor = next;
        if job.cursor.is_none() {
            job.step = next_step;
        }
        self.save_job(job, run_id).await?;
        if !live.is_empty() {
            self.delete_keys(table, &live).await?;
        }
        Ok(())
    }

    /// Closes a pass: clean passes after the grace period count; schedules the next pass or the finish.
    fn end_pass(job: &mut DeletionJob, settings: &DeletionSettings, now_ms: i64) {
        let started = job.pass_started_ms.unwrap_or(now_ms);
        job.passes += 1;
        if job.pass_found > 0 {
            job.clean_passes = 0;
        } else if started >= job.requested_ms + settings.grace_ms {
            job.clean_passes += 1;
        }
        job.pass_started_ms = None;
        job.pass_found = 0;
        job.cursor = None;
        if job.clean_passes >= settings.clean_passes.max(1) {
            job.step = Step::Finish;
        } else {
            job.step = Step::Events;
            job.next_pass_ms = if job.clean_passes > 0 {
                now_ms + settings.recheck_ms
            } else {
                (job.requested_ms + settings.grace_ms).max(now_ms)
            };
        }
    }

    /// Deletes the pointer, replaces the tenant record by its site tombstone, completes the job and takes
    /// it off the queue, in one transaction.
    async fn finish(
        &self,
        job: &mut DeletionJob,
        run_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let site = job
            .site_id
            .clone()
            .ok_or_else(|| StoreError::Corrupt("running deletion without a site id".into()))?;
        let tenants = &self.tables().tenants;
        let mut items = Vec::new();
        let mut removed = 0;
        if self.site_id_of_tenant(&job.tenant_id).await?.as_deref() == Some(site.as_str()) {
            let d = Delete::builder()
                .table_name(tenants)
                .key("pk", s(tenant_pointer_pk(&job.tenant_id)))
                .condition_expression("site_id = :site")
                .expression_attribute_values(":site", s(&site))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().delete(d).build());
            removed += 1;
        }
        if let Some(t) = self.tenant_by_site(&site).await? {
            if t.status != TenantStatus::Deleted {
                let stub = Tenant {
                    tenant_id: t.tenant_id,
                    site_id: t.site_id,
                    platform: t.platform,
                    shop_domain: String::new(),
                    status: TenantStatus::Deleted,
                    scopes: Vec::new(),
                    consent_granted_at: None,
                    messaging_consent: false,
                    messaging_consent_at: None,
                    access_token_ciphertext: None,
                    pii_key_ciphertext: None,
                    api_key_sha256: None,
                    default_region: None,
                    created_at: crate::rfc3339(now_ms),
                };
                let p = Put::builder()
                    .table_name(tenants)
                    .set_item(Some(tenant_to_item(&stub)?))
                    .condition_expression("#st = :deleting")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":deleting", s("deleting"))
                    .build()
                    .map_err(build_err)?;
                items.push(TransactWriteItem::builder().put(p).build());
                removed += 1;
            }
        }
        let mut done = job.clone();
        done.deleted.tenants += removed;
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
        let p = Put::builder()
            .table_name(tenants)
            .set_item(Some(done.to_item()?))
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(run_id))
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().put(p).build());
        let q = Update::builder()
            .table_name(tenants)
            .key("pk", s(QUEUE_PK))
            .update_expression("DELETE tenant_ids :t")
            .expression_attribute_values(":t", AttributeValue::Ss(vec![job.tenant_id.clone()]))
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().update(q).build());
        self.client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| conditional_failed(e, |e| e.is_transaction_canceled_exception()))?;
        *job = done;
        Ok(())
    }

    /// Works on the deletion of `tenant_id` until it completes or less than `settings.margin_ms` remains
    /// before `deadline_ms` (epoch ms), then saves the checkpoint. Waits (sleeps) for the grace period
    /// and the re-check only when the wait fits before the deadline. Safe to call at any time, from any
    /// number of invocations: a lease lets one work at a time.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; [`StoreError::Conflict`] when the lease was
    /// lost mid-run (another run continues). The checkpoint keeps what was done.
    pub async fn run_deletion(
        &self,
        tenant_id: &str,
        settings: &DeletionSettings,
        clock: fn() -> i64,
        deadline_ms: i64,
    ) -> Result<RunOutcome, StoreError> {
        let Some(job) = self.deletion(tenant_id).await? else {
            return Ok(RunOutcome::NotFound);
        };
        if job.state == DeletionState::Completed {
            return Ok(RunOutcome::Completed(job));
        }
        let now = clock();
        if now + settings.margin_ms >= deadline_ms {
            return Ok(RunOutcome::Paused(job));
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let Some(mut job) = self
            .acquire_lease(tenant_id, &run_id, now, deadline_ms)
            .await?
        else {
            return Ok(match self.deletion(tenant_id).await? {
                Some(j) if j.state == DeletionState::Completed => RunOutcome::Completed(j),
                Some(j) => RunOutcome::Busy(j),
                None => RunOutcome::NotFound,
            });
        };
        // A run that stopped (or died) after its checkpoint: delete its page again (idempotent; the
        // page is already counted).
        if let Some(raw) = job.inflight.clone() {
            let page: InFlight = serde_json::from_str(&raw).map_err(corrupt)?;
            self.delete_keys(page.table, &page.keys).await?;
        }
        loop {
            let now = clock();
            if now + settings.margin_ms >= deadline_ms {
                job.lease_until_ms = 0;
                self.save_job(&job, &run_id).await?;
                return Ok(RunOutcome::Paused(job));
            }
            match job.step {
                Step::Events | Step::Profiles | Step::Popularity => {
                    if job.pass_started_ms.is_none() {
                        if now < job.next_pass_ms {
                            if job.next_pass_ms + settings.margin_ms < deadline_ms {
                                let wait = u64::try_from(job.next_pass_ms - now).unwrap_or(0);
                                tokio::time::sleep(Duration::from_millis(wait)).await;
                                continue;
                            }
                            job.lease_until_ms = 0;
                            self.save_job(&job, &run_id).await?;
                            return Ok(RunOutcome::Paused(job));
                        }
                        job.pass_started_ms = Some(now);
                        job.pass_found = 0;
                    }
                    self.delete_page(&mut job, &run_id, settings).await?;
                }
                Step::PassEnd => {
                    Self::end_pass(&mut job, settings, now);
                    job.inflight = None;
                    self.save_job(&job, &run_id).await?;
                }
                Step::Finish => {
                    self.finish(&mut job, &run_id, now).await?;
                    return Ok(RunOutcome::Completed(job));
                }
                Step::Done => return Ok(RunOutcome::Completed(job)),
            }
        }
    }

    /// Records a webhook delivery id (`webhook#{id}`, expiring after [`WEBHOOK_RECEIPT_TTL_S`]). Returns
    /// `false` when it was recorded before (a repeated delivery). The item holds no tenant data.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn claim_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client()
            .put_item()
            .table_name(&self.tables().tenants)
            .item("pk", s(webhook_pk(webhook_id)))
            .item("topic", s(topic))
            .item("received_at", s(crate::rfc3339(now_ms)))
            .item("expires_at", n(now_ms / 1000 + WEBHOOK_RECEIPT_TTL_S))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Forgets a webhook delivery id, so that the platform's retry is processed (after a failure).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn release_webhook(&self, webhook_id: &str) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(webhook_pk(webhook_id)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Shopper erasure and export
// ---------------------------------------------------------------------------------------------------

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

fn profile_json(key: &str, record: &ProfileRecord) -> serde_json::Value {
    match record {
        ProfileRecord::Alias { linked_to, .. } => {
            serde_json::json!({"key": key, "kind": "alias", "linked_to": linked_to})
        }
        ProfileRecord::Profile { profile, .. } => {
            let mut v = serde_json::to_value(profile.as_ref()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "seen".into(),
                    serde_json::json!(profile
                        .seen
                        .iter()
                        .map(|f| format!("{f:016x}"))
                        .collect::<Vec<_>>()),
                );
                o.insert("key".into(), serde_json::json!(key));
                o.insert("kind".into(), serde_json::json!("profile"));
            }
            v
        }
    }
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

impl DynamoStore {
    /// The profile keys that `identity_keys` (`e:{hex}` / `p:{hex}`) point at, sorted; unknown keys are
    /// skipped.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn profiles_of_identities(
        &self,
        site_id: &str,
        identity_keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if identity_keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.profiles(site_id, identity_keys).await?;
        let targets: BTreeSet<String> = found
            .into_values()
            .filter_map(|r| match r {
                ProfileRecord::Alias { linked_to, .. } => Some(linked_to),
                ProfileRecord::Profile { .. } => None,
            })
            .collect();
        Ok(targets.into_iter().collect())
    }

    /// The shopper's ids and profile items, from `shopper_key` (`g:{guest id}` or `c:{customer id}`):
    /// a guest linked to a customer resolves to the customer (the same person); the customer's profile
    /// lists every guest id whose history it holds.
    async fn resolve_shopper(
        &self,
        site_id: &str,
        shopper_key: &str,
    ) -> Result<(ShopperIds, BTreeMap<String, ProfileRecord>), StoreError> {
        let mut records: BTreeMap<String, ProfileRecord> = self
            .profiles(site_id, &[shopper_key.to_string()])
            .await?
            .into_iter()
            .collect();
        let canonical = match records.get(shopper_key) {
            Some(ProfileRecord::Alias { linked_to, .. }) => linked_to.clone(),
            _ => shopper_key.to_string(),
        };
        if !records.contains_key(&canonical) {
            records.extend(
                self.profiles(site_id, std::slice::from_ref(&canonical))
                    .await?,
            );
        }
        let mut guests: BTreeSet<String> = BTreeSet::new();
        let mut customer = canonical.strip_prefix("c:").map(str::to_string);
        for k in [shopper_key, canonical.as_str()] {
            if let Some(g) = k.strip_prefix("g:") {
                guests.insert(g.to_string());
            }
        }
        let mut identities: BTreeSet<String> = BTreeSet::new();
        if let Some(ProfileRecord::Profile { profile, .. }) = records.get(&canonical) {
            guests.extend(profile.guest_ids.iter().cloned());
            identities.extend(profile.identity_keys.iter().cloned());
            if customer.is_none() {
                customer.clone_from(&profile.customer_id);
            }
        }
        let missing: Vec<String> = guests
            .iter()
            .map(|g| guest_key(g))
            .chain(identities.iter().cloned())
            .filter(|k| !records.contains_key(k))
            .collect();
        if !missing.is_empty() {
            records.extend(self.profiles(site_id, &missing).await?);
        }
        // A device that logged in as someone else since then is linked to that shopper now.
        let shared: BTreeSet<String> = guests
            .iter()
            .filter(|g| {
                matches!(records.get(&guest_key(g)),
                    Some(ProfileRecord::Alias { linked_to, .. }) if linked_to != &canonical)
            })
            .cloned()
            .collect();
        guests.retain(|g| !shared.contains(g));
        // Only items of this person: the canonical profile, the asked key, and guest items that are the
        // person's own (aliases to the canonical profile, or plain guest profiles of listed guest ids).
        // An email or phone key that moved on to another profile is not this person's any more.
        records.retain(|k, r| {
            k == &canonical
                || k == shopper_key
                || match r {
                    ProfileRecord::Alias { linked_to, .. } => linked_to == &canonical,
                    ProfileRecord::Profile { .. } => {
                        k.strip_prefix("g:").is_some_and(|g| guests.contains(g))
                    }
                }
        });
        let identity_keys = identities
            .into_iter()
            .filter(|k| records.contains_key(k))
            .collect();
        Ok((
            ShopperIds {
                canonical,
                customer_id: customer,
                guest_ids: guests.into_iter().collect(),
                identity_keys,
                shared_guest_ids: shared.into_iter().collect(),
            },
            records,
        ))
    }

    /// The event items of `guest_id` (strongly consistent `Query` on the events table's key): all of
    /// them, or only those carrying `customer_id`; only their keys when `keys_only`.
    async fn query_guest_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client()
                .query()
                .table_name(&self.tables().events)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(event_pk(site_id, guest_id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if keys_only {
                q = q.projection_expression("pk, sk");
            }
            if let Some(c) = customer_id {
                q = q
                    .filter_expression("customer_id = :c")
                    .expression_attribute_values(":c", s(c));
            }
            let r = q.send().await.map_err(unavailable)?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// The shopper's events: every event of their own guest ids, and the events of shared devices
    /// that carry their customer id.
    async fn shopper_event_items(
        &self,
        site_id: &str,
        ids: &ShopperIds,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for g in &ids.guest_ids {
            out.extend(self.query_guest_events(site_id, g, None, keys_only).await?);
        }
        if let Some(c) = &ids.customer_id {
            for g in &ids.shared_guest_ids {
                out.extend(
                    self.query_guest_events(site_id, g, Some(c), keys_only)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    /// Erases one shopper of `site_id`: the profile at `shopper_key` (`g:{guest id}` or
    /// `c:{customer id}`; a guest linked to a customer is that customer), the alias or profile of every
    /// linked guest id, the email and phone keys that point at the profile, and every raw event of those
    /// guest ids. A shared device that has logged in as another customer since keeps its link and its
    /// other events; only its events carrying this customer id are erased. A second look (strongly consistent)
    /// removes what a concurrent request wrote meanwhile. Other shoppers are untouched; the tenant's
    /// popularity (product counts, not about a person) is kept.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn erase_shopper(
        &self,
        site_id: &str,
        shopper_key: &str,
    ) -> Result<ErasureReport, StoreError> {
        let (ids, records) = self.resolve_shopper(site_id, shopper_key).await?;
        let mut report = ErasureReport {
            guest_ids: ids.guest_ids.len(),
            ..ErasureReport::default()
        };
        let mut keys: BTreeSet<String> = records.keys().cloned().collect();
        keys.insert(ids.canonical.clone());
        keys.insert(shopper_key.to_string());
        keys.extend(ids.guest_ids.iter().map(|g| guest_key(g)));
        let keys: Vec<Item> = keys
            .iter()
            .map(|k| HashMap::from([("pk".to_string(), s(profile_pk(site_id, k)))]))
            .collect();
        for _round in 0..2 {
            for chunk in keys.chunks(MAX_PAGE_SIZE as usize) {
                let live = self.live_keys(DataTable::Profiles, chunk.to_vec()).await?;
                report.profiles += live.len() as u64;
                self.delete_keys(DataTable::Profiles, &live).await?;
            }
            let events: Keys = self
                .shopper_event_items(site_id, &ids, true)
                .await?
                .iter()
                .map(|i| key_of(i, &["pk", "sk"]))
                .collect::<Result<_, _>>()?;
            report.events += events.len() as u64;
            self.delete_keys(DataTable::Events, &events).await?;
        }
        report.found = report.profiles + report.events > 0;
        Ok(report)
    }

    /// Everything held about one shopper of `site_id` (see [`DynamoStore::erase_shopper`] for who the
    /// shopper is), as one document.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn export_shopper(
        &self,
        site_id: &str,
        shopper_key: &str,
        now_ms: i64,
    ) -> Result<ShopperExport, StoreError> {
        let (ids, records) = self.resolve_shopper(site_id, shopper_key).await?;
        let mut events: Vec<StoredEvent> = self
            .shopper_event_items(site_id, &ids, false)
            .await?
            .into_iter()
            .map(event_from_item)
            .collect::<Result<_, _>>()?;
        events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
        let profiles: Vec<serde_json::Value> =
            records.iter().map(|(k, r)| profile_json(k, r)).collect();
        Ok(ShopperExport {
            site_id: site_id.to_string(),
            requested: shopper_key.to_string(),
            generated_at: crate::rfc3339(now_ms),
            found: !profiles.is_empty() || !events.is_empty(),
            linked_ids: ids,
            profiles,
            events,
        })
    }
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
        DynamoStore::end_pass(&mut j, &settings, now);
        assert_eq!((j.clean_passes, j.step), (0, Step::Events));
        assert_eq!(j.next_pass_ms, j.requested_ms + settings.grace_ms);

        j.pass_started_ms = Some(j.next_pass_ms);
        let now = j.next_pass_ms + 10;
        DynamoStore::end_pass(&mut j, &settings, now);
        assert_eq!(j.clean_passes, 1);
        assert_eq!(
            j.next_pass_ms,
            j.requested_ms + settings.grace_ms + 10 + settings.recheck_ms
        );

        // Something written meanwhile: the count starts again.
        j.pass_started_ms = Some(j.next_pass_ms);
        j.pass_found = 3;
        let now = j.next_pass_ms + 10;
        DynamoStore::end_pass(&mut j, &settings, now);
        assert_eq!(j.clean_passes, 0);

        for _ in 0..2 {
            j.pass_started_ms = Some(j.next_pass_ms.max(j.requested_ms + settings.grace_ms));
            let now = j.pass_started_ms.unwrap_or_default() + 10;
            DynamoStore::end_pass(&mut j, &settings, now);
        }
        assert_eq!((j.clean_passes, j.step), (2, Step::Finish));
    }

    #[test]
    fn the_tombstone_item_holds_no_site_id_or_keys_once_completed() {
        let mut j = job();
        j.cursor = Some("{}".into());
        j.inflight = Some("{}".into());
        let running = j.to_item().expect("item");
        assert!(running.contains_key("site_id"));
        j.site_id = None;
        j.cursor = None;
        j.inflight = None;
        j.state = DeletionState::Completed;
        let item = j.to_item().expect("item");
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "clean_passes",
                "deleted",
                "passes",
                "pk",
                "requested_at",
                "requested_ms",
                "runs",
                "secrets_destroyed_at",
                "state",
                "step",
                "tenant_id",
                "trigger"
            ]
        );
        assert_eq!(DeletionJob::from_item(item).expect("back"), j);
    }

    #[test]
    fn cursors_round_trip() {
        let k: Item = HashMap::from([
            ("pk".to_string(), s("s#g")),
            ("sk".to_string(), s("e1")),
            ("site_id".to_string(), s("s")),
        ]);
        assert_eq!(
            decode_cursor(&encode_cursor(&k).expect("enc")).expect("dec"),
            k
        );
    }
}

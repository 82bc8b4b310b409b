//! Tenant deletion and shoppers' rights, as domain logic over the storage ports of
//! [`crate::store::deletion`]: no DynamoDB here, so every rule is tested in milliseconds against the
//! memory doubles and a clock the tests move.
//!
//! # Tenant deletion
//! A deletion is a *job*, kept by [`DeletionJobs`](crate::store::deletion::DeletionJobs); when it
//! completes, the same record is the *tombstone* (tenant id, trigger, times, items deleted per table; no
//! personal data, no key of a deleted item).
//!
//! 1. [`begin`], one atomic write: the tenant record is marked `deleting` and its KMS ciphertexts
//!    (platform access token, pepper, identity secret) are removed (crypto-shredding: no stored hash can be
//!    linked to a person again), the job is created and queued for the schedule. From then on ingest
//!    and recommend answer 410.
//! 2. [`run`] makes *passes*. A pass pages through the tenant's items of the events and profiles
//!    tables (their `by_site` index) and then the popularity item. Each page: the page's keys are
//!    confirmed (a strongly consistent read), the checkpoint (cursor, counts, and the confirmed keys as
//!    the page *in flight*) is saved, then the keys are deleted. A run interrupted after the checkpoint
//!    deletes the in-flight keys again when it resumes, so counts are exact and nothing is counted twice.
//! 3. A pass that finds nothing is *clean*. Requests in flight when the mark was set may still write
//!    (ingest's profile writes are not conditional), so a clean pass counts only when it started at
//!    least [`DeletionSettings::grace_ms`] after the mark; and because the index is eventually
//!    consistent, [`DeletionSettings::clean_passes`] clean passes are required,
//!    [`DeletionSettings::recheck_ms`] apart.
//! 4. Then, in one atomic write: the tenant-id pointer is deleted, the tenant record is replaced by its
//!    *site tombstone* (ids and `status: deleted` only, so the site id keeps answering 410 instead of
//!    being reusable), the job becomes the tombstone, and leaves the queue.
//!
//! Runs stop cleanly when less than [`DeletionSettings::margin_ms`] remains before their deadline,
//! saving the checkpoint. A lease on the job (until the run's deadline) keeps two runs from working on
//! one job at once; running twice is harmless.
//!
//! # Shoppers
//! [`shopper`] resolves who a shopper is (a guest linked to a customer is that customer; the customer's
//! profile lists every guest id and email/phone key of the person) and plans what an erasure deletes and
//! what an export returns.

mod errors;
mod job;
mod progress;
mod run;
pub mod shopper;

pub use errors::{DeletionError, ErasureError};
pub use job::{
    Begin, DataTable, DeletedCounts, DeletionJob, DeletionSettings, DeletionState, InFlight,
    ItemKey, PastDeletion, RunOutcome, Step, Trigger, MAX_PAGE_SIZE,
};
pub use progress::Progress;
pub use run::{begin, run, site_tombstone, status, tenant_of};

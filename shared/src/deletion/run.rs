//! The deletion state machine over the ports: begin, run (passes, checkpoints, grace period, the
//! verification passes, the lease), finish.

use std::time::Duration;

use super::errors::DeletionError;
use super::job::{Begin, DeletionJob, DeletionSettings, DeletionState, RunOutcome, Step, Trigger};
use crate::clock::Clock;
use crate::store::deletion::{Completion, DeletionJobs, Lease, TenantItems};
use crate::store::StoreError;
use crate::tenant::{Tenant, TenantStatus};

/// The tenant of `tenant_id`: the record its pointer names, when it belongs to `tenant_id`.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
pub async fn tenant_of<S: DeletionJobs>(
    store: &S,
    tenant_id: &str,
) -> Result<Option<Tenant>, StoreError> {
    let Some(site) = store.site_id_of_tenant(tenant_id).await? else {
        return Ok(None);
    };
    Ok(store
        .tenant_by_site(&site)
        .await?
        .filter(|t| t.tenant_id == tenant_id))
}

/// Starts the deletion of `tenant_id` at `now_ms`, at once (see [`DeletionJobs::mark_deleting`]).
/// Idempotent: a running or completed job is returned as it is. A tenant re-installed after a completed
/// deletion gets a new job; the old tombstone moves to its `history`.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; [`StoreError::Conflict`] when a concurrent
/// change made the write fail and no job exists (retry).
pub async fn begin<S: DeletionJobs>(
    store: &S,
    tenant_id: &str,
    trigger: Trigger,
    now_ms: i64,
) -> Result<Begin, StoreError> {
    let existing = store.deletion(tenant_id).await?;
    let tenant = tenant_of(store, tenant_id)
        .await?
        .filter(|t| t.status != TenantStatus::Deleted);
    let Some(tenant) = tenant else {
        return Ok(existing.map_or(Begin::NotFound, Begin::Existing));
    };
    let mut job = DeletionJob::new(tenant_id, &tenant.site_id, trigger, now_ms);
    match &existing {
        Some(old) if old.state == DeletionState::Running => {
            return Ok(Begin::Existing(old.clone()))
        }
        Some(old) => job = job.after(old),
        None => {}
    }
    let replaces = existing.as_ref().map(|old| old.requested_ms);
    match store.mark_deleting(&job, replaces).await {
        Ok(()) => Ok(Begin::Started(job)),
        Err(StoreError::Conflict) => {
            // Another request started (or finished) it first, or the tenant changed: report what is there.
            match store.deletion(tenant_id).await? {
                Some(j) if existing.as_ref() != Some(&j) || j.state == DeletionState::Running => {
                    Ok(Begin::Existing(j))
                }
                _ => Err(StoreError::Conflict),
            }
        }
        Err(e) => Err(e),
    }
}

/// The deletion job (or tombstone) of `tenant_id`, for the status route.
///
/// # Errors
/// [`DeletionError::NoDeletion`] when none was requested; [`DeletionError::Storage`].
pub async fn status<S: DeletionJobs>(
    store: &S,
    tenant_id: &str,
) -> Result<DeletionJob, DeletionError> {
    store
        .deletion(tenant_id)
        .await?
        .ok_or(DeletionError::NoDeletion)
}

/// Works on the deletion of `tenant_id` until it completes or less than `settings.margin_ms` remains
/// before `deadline_ms` (epoch ms, by `clock`), then saves the checkpoint. Waits for the grace period and
/// the re-check only when the wait fits before the deadline (and pauses instead when `clock` did not
/// move meanwhile: a test's clock). Safe to call at any time, from any number of invocations: a lease
/// lets one work at a time.
///
/// # Errors
/// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; [`StoreError::Conflict`] when the lease was
/// lost mid-run (another run continues). The checkpoint keeps what was done.
pub async fn run<S: DeletionJobs + TenantItems>(
    store: &S,
    tenant_id: &str,
    settings: &DeletionSettings,
    clock: &dyn Clock,
    deadline_ms: i64,
) -> Result<RunOutcome, StoreError> {
    let Some(job) = store.deletion(tenant_id).await? else {
        return Ok(RunOutcome::NotFound);
    };
    if job.state == DeletionState::Completed {
        return Ok(RunOutcome::Completed(job));
    }
    let now = clock.now_ms();
    if now + settings.margin_ms >= deadline_ms {
        return Ok(RunOutcome::Paused(job));
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let Some(mut job) = store
        .acquire_lease(&Lease {
            tenant_id,
            run_id: &run_id,
            now_ms: now,
            until_ms: deadline_ms,
        })
        .await?
    else {
        return Ok(match store.deletion(tenant_id).await? {
            Some(j) if j.state == DeletionState::Completed => RunOutcome::Completed(j),
            Some(j) => RunOutcome::Busy(j),
            None => RunOutcome::NotFound,
        });
    };
    // A run that stopped (or died) after its checkpoint: delete its page again (idempotent; the page is
    // already counted).
    if let Some(page) = job.in_flight()? {
        store.delete_items(page.table, &page.keys).await?;
    }
    loop {
        let now = clock.now_ms();
        if now + settings.margin_ms >= deadline_ms {
            return pause(store, job, &run_id).await;
        }
        match job.step {
            Step::Events | Step::Profiles | Step::Popularity => {
                if job.pass_started_ms.is_none() {
                    if now < job.next_pass_ms {
                        if job.next_pass_ms + settings.margin_ms >= deadline_ms {
                            return pause(store, job, &run_id).await;
                        }
                        let wait = u64::try_from(job.next_pass_ms - now).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        if clock.now_ms() < job.next_pass_ms {
                            return pause(store, job, &run_id).await;
                        }
                        continue;
                    }
                    job.pass_started_ms = Some(now);
                    job.pass_found = 0;
                }
                delete_page(store, &mut job, &run_id, settings).await?;
            }
            Step::PassEnd => {
                job.end_pass(settings, now);
                store.save_checkpoint(&job, &run_id).await?;
            }
            Step::Finish => {
                finish(store, &mut job, &run_id, now).await?;
                return Ok(RunOutcome::Completed(job));
            }
            Step::Done => return Ok(RunOutcome::Completed(job)),
        }
    }
}

/// Saves the checkpoint with the lease released, for the next run.
async fn pause<S: DeletionJobs>(
    store: &S,
    mut job: DeletionJob,
    run_id: &str,
) -> Result<RunOutcome, StoreError> {
    job.lease_until_ms = 0;
    store.save_checkpoint(&job, run_id).await?;
    Ok(RunOutcome::Paused(job))
}

/// One page of the current table: find, confirm, checkpoint (with the keys in flight), delete.
async fn delete_page<S: DeletionJobs + TenantItems>(
    store: &S,
    job: &mut DeletionJob,
    run_id: &str,
    settings: &DeletionSettings,
) -> Result<(), StoreError> {
    let Some((table, next_step)) = job.step.table() else {
        return Ok(());
    };
    let site = job.site()?.to_string();
    let page = store
        .item_page(table, &site, job.cursor.as_deref(), settings.page_size)
        .await?;
    let live = store.live_items(table, page.keys).await?;
    job.record_page(table, &live, page.next, next_step)?;
    store.save_checkpoint(job, run_id).await?;
    if !live.is_empty() {
        store.delete_items(table, &live).await?;
    }
    Ok(())
}

/// The record that keeps a deleted tenant's site id switched off: its ids and `status: deleted`, and
/// nothing else of the tenant (created at `now_ms`).
pub fn site_tombstone(t: &Tenant, now_ms: i64) -> Tenant {
    let mut stub = Tenant::new(t.platform, "", &t.site_id, &crate::rfc3339(now_ms));
    stub.tenant_id.clone_from(&t.tenant_id);
    stub.status = TenantStatus::Deleted;
    stub
}

/// Deletes the pointer, replaces the tenant record by its site tombstone, completes the job and takes it
/// off the queue, in one write.
async fn finish<S: DeletionJobs>(
    store: &S,
    job: &mut DeletionJob,
    run_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let site = job.site()?.to_string();
    let pointer = store.site_id_of_tenant(&job.tenant_id).await?;
    let pointer_site = (pointer.as_deref() == Some(site.as_str())).then_some(site.as_str());
    let record = store
        .tenant_by_site(&site)
        .await?
        .filter(|t| t.status != TenantStatus::Deleted)
        .map(|t| site_tombstone(&t, now_ms));
    let removed = u64::from(pointer_site.is_some()) + u64::from(record.is_some());
    let done = job.tombstone(now_ms, removed);
    store
        .complete_deletion(&Completion {
            tombstone: &done,
            run_id,
            pointer_site,
            site_tombstone: record.as_ref(),
        })
        .await?;
    *job = done;
    Ok(())
}

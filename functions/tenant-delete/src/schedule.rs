//! The EventBridge schedule: continues every unfinished deletion, and the invocation's time budget.

use affinity::deletion::{DeletionJob, RunOutcome};
use affinity::pii::PepperSource;
use affinity::store::StoreError;
use futures_util::future::join_all;
use serde::Serialize;

use crate::{Deps, Store};

/// Deletions worked on at once by one scheduled run (each waits for its grace period and re-check, so
/// running them side by side lets one run finish several).
pub const JOBS_AT_ONCE: usize = 8;

/// How long an invocation works when its context deadline cannot be trusted, in ms: less than the
/// function's timeout (60 s in `template.yaml`), so that the checkpoint is saved in time.
pub const SCHEDULE_BUDGET_MS: i64 = 50_000;

/// The longest a Lambda invocation can run (15 minutes), in ms.
const LAMBDA_MAX_MS: i64 = 900_000;

/// The deadline an invocation works to, epoch ms: the context's deadline (epoch ms) when it lies ahead
/// of `now_ms` within Lambda's 15 minutes; otherwise (in the past, or a bare duration such as
/// `cargo lambda`'s 600000) it is unknown, and the invocation budgets [`SCHEDULE_BUDGET_MS`] itself.
pub fn invocation_deadline(context_deadline_ms: u64, now_ms: i64) -> i64 {
    match i64::try_from(context_deadline_ms) {
        Ok(d) if d > now_ms && d <= now_ms + LAMBDA_MAX_MS => d,
        _ => now_ms + SCHEDULE_BUDGET_MS,
    }
}

/// What a scheduled run did, per tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Unfinished deletions found.
    pub pending: usize,
    /// Completed by this run.
    pub completed: Vec<String>,
    /// Saved for the next run (deadline, grace period or re-check).
    pub paused: Vec<String>,
    /// Held by another run.
    pub busy: Vec<String>,
    /// Failed this time (logged; retried by the next run).
    pub failed: Vec<String>,
}

/// Continues every unfinished deletion, [`JOBS_AT_ONCE`] at a time, until `deadline_ms` (epoch ms)
/// minus the margin.
///
/// # Errors
/// [`StoreError`] when the queue cannot be read.
pub async fn tick<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    deadline_ms: i64,
) -> Result<TickReport, StoreError> {
    let ids = deps.store.pending_deletions().await?;
    let mut report = TickReport {
        pending: ids.len(),
        ..TickReport::default()
    };
    for batch in ids.chunks(JOBS_AT_ONCE) {
        let runs = batch.iter().map(|id| async move {
            // A pending deletion's tenant is `deleting`: its pepper leaves this function now.
            deps.peppers.forget(id);
            (id.clone(), deps.run_deletion(id, deadline_ms).await)
        });
        for (id, outcome) in join_all(runs).await {
            match outcome {
                Ok(RunOutcome::Completed(job)) => {
                    log_completed(&job);
                    report.completed.push(id);
                }
                Ok(RunOutcome::Paused(_) | RunOutcome::NotFound) => report.paused.push(id),
                Ok(RunOutcome::Busy(_)) => report.busy.push(id),
                Err(e) => {
                    tracing::error!(tenant_id = %id, error = %e, "deletion run failed");
                    report.failed.push(id);
                }
            }
        }
    }
    tracing::info!(
        pending = report.pending,
        completed = report.completed.len(),
        paused = report.paused.len(),
        busy = report.busy.len(),
        failed = report.failed.len(),
        "deletion tick"
    );
    Ok(report)
}

/// Logs a completed deletion (counts only).
pub(crate) fn log_completed(job: &DeletionJob) {
    tracing::info!(
        tenant_id = %job.tenant_id,
        events = job.deleted.events,
        profiles = job.deleted.profiles,
        popularity = job.deleted.popularity,
        tenants = job.deleted.tenants,
        passes = job.passes,
        "tenant deletion completed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_600_000_000;

    #[test]
    fn a_bare_duration_deadline_such_as_cargo_lambdas_is_unknown_and_the_run_budgets_itself() {
        assert_eq!(invocation_deadline(600_000, NOW), NOW + SCHEDULE_BUDGET_MS);
    }

    #[test]
    fn a_deadline_in_the_past_or_beyond_lambdas_limit_is_unknown() {
        let past = u64::try_from(NOW - 1).expect("positive");
        assert_eq!(invocation_deadline(past, NOW), NOW + SCHEDULE_BUDGET_MS);
        let far = u64::try_from(NOW + 3_600_000).expect("positive");
        assert_eq!(invocation_deadline(far, NOW), NOW + SCHEDULE_BUDGET_MS);
        assert_eq!(invocation_deadline(u64::MAX, NOW), NOW + SCHEDULE_BUDGET_MS);
    }

    #[test]
    fn a_deadline_ahead_within_lambdas_limit_is_kept() {
        let d = u64::try_from(NOW + 60_000).expect("positive");
        assert_eq!(invocation_deadline(d, NOW), NOW + 60_000);
    }
}

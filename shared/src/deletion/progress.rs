//! What operators and merchants are shown about a deletion: the progress document and its phase, in
//! words (`GET /v1/tenants/{tenant_id}/deletion`, and the answers of the routes that start one).

use serde::Serialize;

use super::job::{DeletedCounts, DeletionJob, DeletionState, PastDeletion, Step, Trigger};

/// The progress document; once completed, the tombstone as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The tenant.
    pub tenant_id: String,
    /// `running` or `completed`.
    pub state: DeletionState,
    /// What the job is doing, in words (see [`DeletionJob::phase`]).
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
    /// What the job is doing, in words: the first pass deletes (`deleting events`, `deleting profiles`,
    /// `deleting popularity`), then the job waits for the grace period or a re-check, verifies, removes
    /// the tenant record and is `completed`.
    pub fn phase(&self) -> &'static str {
        match (self.state, self.step) {
            (DeletionState::Completed, _) | (_, Step::Done) => "completed",
            (_, Step::Finish) => "removing the tenant record",
            (_, _) if self.pass_started_ms.is_none() && self.passes > 0 => {
                "waiting to verify (grace period or re-check)"
            }
            (_, Step::Events) if self.passes == 0 => "deleting events",
            (_, Step::Profiles) if self.passes == 0 => "deleting profiles",
            (_, Step::Popularity | Step::PassEnd) if self.passes == 0 => "deleting popularity",
            _ => "verifying that nothing is left",
        }
    }

    /// The progress document.
    pub fn progress(&self) -> Progress {
        Progress {
            tenant_id: self.tenant_id.clone(),
            state: self.state,
            phase: self.phase(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_follows_the_job_through_its_steps() {
        let mut j = DeletionJob::new("t", "s", Trigger::Operator, 0);
        assert_eq!(j.phase(), "deleting events");
        j.step = Step::Profiles;
        assert_eq!(j.phase(), "deleting profiles");
        j.step = Step::PassEnd;
        assert_eq!(j.phase(), "deleting popularity");
        j.passes = 1;
        j.step = Step::Events;
        assert_eq!(j.phase(), "waiting to verify (grace period or re-check)");
        j.pass_started_ms = Some(1);
        assert_eq!(j.phase(), "verifying that nothing is left");
        j.step = Step::Finish;
        assert_eq!(j.phase(), "removing the tenant record");
        let done = j.tombstone(5, 2);
        assert_eq!(done.progress().phase, "completed");
        let text = serde_json::to_value(done.progress()).expect("json");
        assert_eq!(text["state"], "completed");
        assert!(text.get("site_id").is_none(), "{text}");
    }
}

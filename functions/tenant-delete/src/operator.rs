//! The operator routes: `DELETE /v1/tenants/{tenant_id}` and `GET /v1/tenants/{tenant_id}/deletion`.

use affinity::deletion::{
    self, Begin, DeletionError, DeletionJob, DeletionState, RunOutcome, Trigger,
};
use affinity::event::is_valid_id;
use affinity::http::{self, ApiError};
use affinity::pii::PepperSource;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::schedule::log_completed;
use crate::{Deps, Store};

/// Operator routes are authorized by API Gateway (`AWS_IAM`); this refuses a request that did not pass
/// through that authorizer (a misconfigured route), as defence in depth.
pub(crate) fn require_operator(req: &Request) -> Result<(), ApiError> {
    use lambda_http::request::RequestContext;
    let iam = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => {
            c.authorizer.as_ref().is_some_and(|a| a.iam.is_some())
        }
        Some(RequestContext::ApiGatewayV1(c)) => c.identity.user_arn.is_some(),
        _ => false,
    };
    if iam {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "operator routes need AWS IAM (SigV4) authorization through API Gateway",
        ))
    }
}

fn valid_tenant_id(tenant_id: &str) -> Result<(), ApiError> {
    if is_valid_id(tenant_id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "tenant_id",
            "must be 1-128 characters of A-Z a-z 0-9 _ = / + . - :",
        ))
    }
}

/// 202 with the progress of a running job, 200 with the tombstone.
fn progress_response(job: &DeletionJob) -> Response<Body> {
    let status = match job.state {
        DeletionState::Completed => StatusCode::OK,
        DeletionState::Running => StatusCode::ACCEPTED,
    };
    http::json_response(status, &job.progress())
}

/// Starts (or finds) the deletion of `tenant_id`, then works on it for the request budget.
async fn start_and_work<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    tenant_id: &str,
    deadline_ms: i64,
) -> Result<DeletionJob, DeletionError> {
    let now = deps.clock.now_ms();
    let job = match deps
        .begin_deletion(tenant_id, Trigger::Operator, now)
        .await?
    {
        Begin::NotFound => return Err(DeletionError::UnknownTenant),
        Begin::Started(job) => {
            tracing::info!(tenant_id = %tenant_id, trigger = "operator", "tenant deletion started");
            job
        }
        Begin::Existing(job) => job,
    };
    if job.state == DeletionState::Completed {
        return Ok(job);
    }
    // Work for the request budget; the schedule continues.
    let deadline = deadline_ms.min(now + deps.request_budget_ms + deps.settings.margin_ms);
    Ok(match deps.run_deletion(tenant_id, deadline).await {
        Ok(RunOutcome::Completed(j)) => {
            log_completed(&j);
            j
        }
        Ok(RunOutcome::Paused(j) | RunOutcome::Busy(j)) => j,
        Ok(RunOutcome::NotFound) => job,
        Err(e) => {
            // The mark and the job are saved: the schedule continues. Report the progress as it is.
            tracing::warn!(tenant_id = %tenant_id, error = %e, "deletion run stopped; the schedule continues");
            deps.store.deletion(tenant_id).await?.unwrap_or(job)
        }
    })
}

/// `DELETE /v1/tenants/{tenant_id}`.
pub(crate) async fn delete_tenant<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    tenant_id: &str,
    deadline_ms: i64,
) -> Result<Response<Body>, ApiError> {
    valid_tenant_id(tenant_id)?;
    let job = start_and_work(deps, tenant_id, deadline_ms).await?;
    Ok(progress_response(&job))
}

/// `GET /v1/tenants/{tenant_id}/deletion`.
pub(crate) async fn deletion_status<S: Store, K: PepperSource>(
    deps: &Deps<S, K>,
    tenant_id: &str,
) -> Result<Response<Body>, ApiError> {
    valid_tenant_id(tenant_id)?;
    let job = deletion::status(&deps.store, tenant_id).await?;
    Ok(http::json_response(StatusCode::OK, &job.progress()))
}

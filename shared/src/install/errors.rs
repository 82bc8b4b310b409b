//! Why an install step was refused, and the one conversion of each reason into an [`ApiError`].

use lambda_http::http::StatusCode;

use crate::http::ApiError;
use crate::kms::KmsError;
use crate::store::StoreError;
use crate::tenant::Platform;

/// Why a single-use grant (an OAuth `state`, an API key rotation grant) was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateCheck {
    /// Unknown, or already used (a replay).
    #[error(
        "this sign-in link was already used or was never issued; start again from your store's admin"
    )]
    Unknown,
    /// Past its `expires_at` (and now used up).
    #[error("this sign-in link is older than 10 minutes; start again from your store's admin")]
    Expired,
    /// Issued for another store or site, or for another purpose (and now used up).
    #[error("this sign-in link was issued for another store; start again from your store's admin")]
    Foreign,
}

impl StateCheck {
    fn code(self) -> &'static str {
        match self {
            Self::Unknown => "unknown_state",
            Self::Expired => "expired_state",
            Self::Foreign => "foreign_state",
        }
    }
}

/// A refusal of an OAuth `state` (the field `state`).
impl From<StateCheck> for ApiError {
    fn from(c: StateCheck) -> Self {
        refusal(
            StatusCode::BAD_REQUEST,
            c.code(),
            Some("state"),
            c.to_string(),
        )
    }
}

/// Why an install, a key rotation or a consent change did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The OAuth `state` of a callback was refused.
    #[error(transparent)]
    State(StateCheck),
    /// The rotation grant of a form was refused.
    #[error(transparent)]
    Grant(StateCheck),
    /// The platform failed, did not answer in time, or answered something unusable.
    #[error("{} did not complete the connection (it failed or did not answer in time)", .0.display_name())]
    PlatformFailed(Platform),
    /// The platform granted fewer scopes than Affinity asks for.
    #[error("Shopify granted fewer permissions than Affinity needs (missing: {}); nothing was saved", .0.join(", "))]
    ScopesMissing(Vec<String>),
    /// The store's earlier data is still being deleted.
    #[error("this store's earlier data is still being deleted; install again in a few minutes")]
    DeletionInProgress,
    /// The store never installed the app (or its data was deleted).
    #[error("this store is not connected to Affinity; install the app first")]
    NotConnected,
    /// No tenant has this site id (any more).
    #[error("no such site")]
    UnknownSite,
    /// The tenant was disconnected (deletion started or done).
    #[error("this store was disconnected from Affinity")]
    SiteDeleted,
    /// The API key changed between its check and its rotation.
    #[error("the API key changed meanwhile; nothing was changed")]
    KeyChanged,
    /// A permanent misconfiguration of the tenant (the text says which); retrying does not help.
    #[error("{0}")]
    Misconfigured(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// KMS failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The operating system's random source failed.
    #[error("the random source failed")]
    Random,
}

impl From<getrandom::Error> for InstallError {
    fn from(_: getrandom::Error) -> Self {
        Self::Random
    }
}

fn refusal(status: StatusCode, code: &'static str, field: Option<&str>, msg: String) -> ApiError {
    ApiError {
        status,
        code,
        field: field.map(str::to_string),
        message: msg,
    }
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        use InstallError as E;
        let msg = e.to_string();
        match e {
            E::State(c) => c.into(),
            E::Grant(c) => refusal(StatusCode::BAD_REQUEST, c.code(), Some("grant"), msg),
            E::PlatformFailed(_) => refusal(StatusCode::BAD_GATEWAY, "platform_error", None, msg),
            E::ScopesMissing(_) => refusal(
                StatusCode::BAD_GATEWAY,
                "scopes_missing",
                Some("scope"),
                msg,
            ),
            E::DeletionInProgress => {
                refusal(StatusCode::CONFLICT, "deletion_in_progress", None, msg)
            }
            E::NotConnected => ApiError::not_found(Some("store"), msg),
            E::UnknownSite => ApiError::unknown_site(),
            E::SiteDeleted => ApiError::site_deleted(),
            E::KeyChanged => refusal(StatusCode::CONFLICT, "conflict", None, msg),
            E::Misconfigured(_) => {
                tracing::error!(error = %msg, "tenant misconfigured");
                refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "misconfigured",
                    None,
                    msg,
                )
            }
            E::Store(e) => {
                tracing::error!(error = %e, "storage failed");
                ApiError::unavailable("storage is unavailable; nothing was changed, retry later")
            }
            E::Kms(KmsError::Unavailable(e)) => {
                tracing::error!(error = %e, "KMS failed");
                ApiError::unavailable("encryption is unavailable; nothing was changed, retry later")
            }
            E::Kms(e) => {
                tracing::error!(error = %e, "KMS failed");
                ApiError::internal()
            }
            E::Random => {
                tracing::error!("random source failed");
                ApiError::internal()
            }
        }
    }
}

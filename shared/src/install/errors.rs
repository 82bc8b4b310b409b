//! Why an install step was refused, and the one conversion of each reason into an [`ApiError`].

use crate::http::{ApiError, ErrorCode};
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
    fn code(self) -> ErrorCode {
        match self {
            Self::Unknown => ErrorCode::UnknownState,
            Self::Expired => ErrorCode::ExpiredState,
            Self::Foreign => ErrorCode::ForeignState,
        }
    }
}

/// A refusal of an OAuth `state` (the field `state`).
impl From<StateCheck> for ApiError {
    fn from(c: StateCheck) -> Self {
        ApiError::new(c.code(), Some("state"), c.to_string())
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
    /// A BigCommerce payload whose `jti` was used before.
    #[error("{}", crate::oauth::bigcommerce::BigCommerceError::Replayed)]
    Replayed,
    /// The operating system's random source failed.
    #[error("the random source failed")]
    Random,
}

impl From<getrandom::Error> for InstallError {
    fn from(_: getrandom::Error) -> Self {
        Self::Random
    }
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        use InstallError as E;
        let msg = e.to_string();
        match e {
            E::State(c) => c.into(),
            E::Grant(c) => ApiError::new(c.code(), Some("grant"), msg),
            E::PlatformFailed(_) => ApiError::new(ErrorCode::PlatformError, None, msg),
            E::ScopesMissing(_) => ApiError::new(ErrorCode::ScopesMissing, Some("scope"), msg),
            E::DeletionInProgress => ApiError::new(ErrorCode::DeletionInProgress, None, msg),
            E::NotConnected => ApiError::not_found(Some("store"), msg),
            E::UnknownSite => ApiError::unknown_site(),
            E::SiteDeleted => ApiError::site_deleted(),
            E::KeyChanged => ApiError::new(ErrorCode::Conflict, None, msg),
            E::Misconfigured(_) => {
                tracing::error!(error = %msg, "tenant misconfigured");
                ApiError::new(ErrorCode::Misconfigured, None, msg)
            }
            E::Replayed => crate::oauth::bigcommerce::BigCommerceError::Replayed.into(),
            E::Store(e) => e.into(),
            E::Kms(e) => e.into(),
            E::Random => {
                tracing::error!("random source failed");
                ApiError::internal()
            }
        }
    }
}

//! Why a deletion, an erasure or an export did not happen, and the API error each becomes.

use crate::http::{ApiError, ErrorCode};
use crate::kms::KmsError;
use crate::store::StoreError;

/// Why a tenant deletion could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    /// No tenant has this id, and none was deleted.
    #[error("no tenant has this id, and none was deleted")]
    UnknownTenant,
    /// No deletion was requested for this tenant id.
    #[error("no deletion was requested for this tenant id")]
    NoDeletion,
    /// Storage failed; the request is idempotent.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Why a shopper erasure or export (or a privacy webhook's search for the shopper) did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The tenant's pepper could not be decrypted, so the shopper's email and phone cannot be looked up
    /// (503 whatever the reason: the platform retries the privacy request, and must).
    #[error("the store's pepper is unavailable: {0}")]
    PepperUnavailable(KmsError),
    /// Storage failed; the request is idempotent.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<DeletionError> for ApiError {
    fn from(e: DeletionError) -> Self {
        match e {
            DeletionError::UnknownTenant | DeletionError::NoDeletion => {
                ApiError::new(ErrorCode::NotFound, Some("tenant_id"), e.to_string())
            }
            DeletionError::Storage(e) => ApiError::from(e),
        }
    }
}

impl From<ErasureError> for ApiError {
    fn from(e: ErasureError) -> Self {
        match e {
            ErasureError::PepperUnavailable(detail) => {
                tracing::error!(error = %detail, "pepper unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    None,
                    "the store's pepper is unavailable; retry later",
                )
            }
            ErasureError::Storage(e) => ApiError::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_becomes_its_status_and_names_the_field() {
        let e = ApiError::from(DeletionError::UnknownTenant);
        assert_eq!(
            (e.status.as_u16(), e.field.as_deref()),
            (404, Some("tenant_id"))
        );
        assert_eq!(e.message, "no tenant has this id, and none was deleted");
        let e = ApiError::from(DeletionError::NoDeletion);
        assert_eq!(e.message, "no deletion was requested for this tenant id");
        let e = ApiError::from(DeletionError::Storage(StoreError::Unavailable("x".into())));
        assert_eq!(e.status.as_u16(), 503);
        assert!(!e.message.contains('x'), "no detail reaches the client");
        let e = ApiError::from(ErasureError::PepperUnavailable(KmsError::Refused(
            "kms says no".into(),
        )));
        assert_eq!(e.status.as_u16(), 503);
        assert!(!e.message.contains("kms"), "{}", e.message);
    }
}

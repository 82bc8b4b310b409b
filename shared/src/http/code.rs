//! The error codes: one list, each with its HTTP status.

use lambda_http::http::StatusCode;
use serde::Serialize;

/// Every error code the API answers with: one list, the `code` of the error object.
///
/// Each code has one HTTP status ([`ErrorCode::status`]) and is serialized as its snake_case name
/// ([`ErrorCode::as_str`]); the README and `openapi.yaml` list the same codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the request (or one of its fields) cannot be used as sent.
    BadRequest,
    /// 401: no valid credentials (API key, signature).
    Unauthorized,
    /// 403: valid credentials of another tenant.
    Forbidden,
    /// 404: no such route or resource.
    NotFound,
    /// 404: no tenant has this site id.
    UnknownSite,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 410: the tenant was deleted (or is being deleted).
    SiteDeleted,
    /// 413: a body or a list over its limit.
    TooLarge,
    /// 415: a content type the route does not read.
    UnsupportedMediaType,
    /// 503: storage or KMS unavailable; safe to retry.
    Unavailable,
    /// 500: a fault of ours (logged).
    Internal,
    /// 400: a required query parameter is missing (platform callbacks).
    MissingParameter,
    /// 401: a platform signature (Shopify HMAC) does not verify.
    BadSignature,
    /// 400: a platform timestamp that is not a number.
    BadTimestamp,
    /// 400: a signed platform request older than its freshness window.
    StaleRequest,
    /// 400: a `shop` that is not a `*.myshopify.com` domain.
    BadShop,
    /// 400: a BigCommerce store context that is not `stores/{hash}`.
    BadStore,
    /// 401: a BigCommerce `signed_payload_jwt` that does not verify.
    BadSignedPayload,
    /// 400: an OAuth `state` never issued or already used.
    UnknownState,
    /// 400: an OAuth `state` older than its lifetime.
    ExpiredState,
    /// 400: an OAuth `state` issued for another store.
    ForeignState,
    /// 502: the platform failed or did not answer in time.
    PlatformError,
    /// 409: the request conflicts with the resource's state.
    Conflict,
    /// 500: the tenant's configuration is permanently broken (e.g. no pepper); retrying will not help.
    Misconfigured,
    /// 502: the platform granted fewer OAuth scopes than Affinity needs.
    ScopesMissing,
    /// 409: the store's earlier data is still being deleted; install again later.
    DeletionInProgress,
    /// 401: a BigCommerce `signed_payload_jwt` whose `jti` was used before (a replay).
    ReplayedPayload,
    /// 403: a BigCommerce uninstall by a user who is not the store owner.
    NotStoreOwner,
    /// 409: the platform still accepts the store's access token, so the app was not uninstalled;
    /// nothing was deleted.
    TokenNotRevoked,
    /// 400: a webhook body that does not have the shape of its (unsigned) `X-Shopify-Topic`.
    TopicMismatch,
}

impl ErrorCode {
    /// Every code, in the order of the README's list.
    pub const ALL: [ErrorCode; 30] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::UnknownSite,
        Self::MethodNotAllowed,
        Self::SiteDeleted,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::Unavailable,
        Self::Internal,
        Self::MissingParameter,
        Self::BadSignature,
        Self::BadTimestamp,
        Self::StaleRequest,
        Self::BadShop,
        Self::BadStore,
        Self::BadSignedPayload,
        Self::UnknownState,
        Self::ExpiredState,
        Self::ForeignState,
        Self::PlatformError,
        Self::Conflict,
        Self::Misconfigured,
        Self::ScopesMissing,
        Self::DeletionInProgress,
        Self::ReplayedPayload,
        Self::NotStoreOwner,
        Self::TokenNotRevoked,
        Self::TopicMismatch,
    ];

    /// The code as it appears in the error object, e.g. `unknown_site`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::UnknownSite => "unknown_site",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SiteDeleted => "site_deleted",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::MissingParameter => "missing_parameter",
            Self::BadSignature => "bad_signature",
            Self::BadTimestamp => "bad_timestamp",
            Self::StaleRequest => "stale_request",
            Self::BadShop => "bad_shop",
            Self::BadStore => "bad_store",
            Self::BadSignedPayload => "bad_signed_payload",
            Self::UnknownState => "unknown_state",
            Self::ExpiredState => "expired_state",
            Self::ForeignState => "foreign_state",
            Self::PlatformError => "platform_error",
            Self::Conflict => "conflict",
            Self::Misconfigured => "misconfigured",
            Self::ScopesMissing => "scopes_missing",
            Self::DeletionInProgress => "deletion_in_progress",
            Self::ReplayedPayload => "replayed_payload",
            Self::NotStoreOwner => "not_store_owner",
            Self::TokenNotRevoked => "token_not_revoked",
            Self::TopicMismatch => "topic_mismatch",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest
            | Self::MissingParameter
            | Self::BadTimestamp
            | Self::StaleRequest
            | Self::BadShop
            | Self::BadStore
            | Self::UnknownState
            | Self::ExpiredState
            | Self::ForeignState
            | Self::TopicMismatch => StatusCode::BAD_REQUEST,
            Self::Unauthorized
            | Self::BadSignature
            | Self::BadSignedPayload
            | Self::ReplayedPayload => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::NotStoreOwner => StatusCode::FORBIDDEN,
            Self::NotFound | Self::UnknownSite => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::DeletionInProgress | Self::TokenNotRevoked => {
                StatusCode::CONFLICT
            }
            Self::SiteDeleted => StatusCode::GONE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal | Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PlatformError | Self::ScopesMissing => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

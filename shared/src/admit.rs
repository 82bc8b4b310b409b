//! Admission: the one guard every route of a tenant passes before it reads or changes anything.
//!
//! Site id well-formed and known (404 `unknown_site`), tenant active (410 `site_deleted`), and, for
//! server-to-server routes, the tenant's API key (401 `unauthorized` when missing or wrong, 403
//! `forbidden` when it is another tenant's).

use lambda_http::Request;

use crate::http::{self, ApiError};
use crate::ids::SiteId;
use crate::store::TenantLookup;
use crate::tenant::{KeyCheck, Tenant, TenantStatus};

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Storefront routes: anyone who knows the site id (a browser proves nothing more).
    Storefront,
    /// Merchant routes: the tenant's API key, as presented (`Authorization: Bearer <key>`), if any.
    ApiKey(Option<&'a str>),
}

impl<'a> Access<'a> {
    /// [`Access::ApiKey`] with the request's bearer token.
    pub fn from_bearer(req: &'a Request) -> Self {
        Self::ApiKey(http::bearer_token(req))
    }
}

/// Admits a request for `site_id`: reads the tenant (strongly consistent) and checks it.
///
/// # Errors
/// 404 `unknown_site` (malformed or unknown site id), 410 `site_deleted`, 401 / 403 for the API key,
/// 503 when storage is unavailable.
pub async fn admit_site<S: TenantLookup>(
    store: &S,
    site_id: &str,
    access: Access<'_>,
) -> Result<Tenant, ApiError> {
    let site = SiteId::from_route(site_id)?;
    admit_tenant(store.tenant_by_site(&site).await?, access)
}

/// Checks a tenant already read (e.g. in one batch with the shopper's profiles).
///
/// # Errors
/// As [`admit_site`].
pub fn admit_tenant(tenant: Option<Tenant>, access: Access<'_>) -> Result<Tenant, ApiError> {
    let tenant = tenant.ok_or_else(ApiError::unknown_site)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::site_deleted());
    }
    if let Access::ApiKey(presented) = access {
        match tenant.check_api_key(presented) {
            KeyCheck::Valid => {}
            KeyCheck::OtherTenant => {
                return Err(ApiError::forbidden("this API key belongs to another store"))
            }
            KeyCheck::Invalid => {
                return Err(ApiError::unauthorized(
                    "this route needs the store's API key as Authorization: Bearer <key>",
                ))
            }
        }
    }
    Ok(tenant)
}

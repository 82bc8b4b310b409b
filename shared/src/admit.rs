//! Admission: the one guard every route of a tenant passes before it reads or changes anything.
//!
//! Site id well-formed and known (404 `unknown_site`), tenant active (410 `site_deleted`), and, for
//! server-to-server routes, the tenant's API key (401 `unauthorized` when missing or wrong, 403
//! `forbidden` when it is another tenant's).
//!
//! Functions that hold tenants' peppers in memory admit through [`admit_site_evicting`] /
//! [`admit_tenant_evicting`]: a tenant found `deleting` (or deleted) has its pepper evicted at once,
//! before the 410, instead of at the end of its time-to-live.

use lambda_http::Request;

use crate::http::{self, ApiError};
use crate::ids::SiteId;
use crate::pii::PepperSource;
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

/// [`admit_site`] for a function that holds peppers: a tenant that is not active has its pepper
/// evicted from `peppers` at once.
///
/// # Errors
/// As [`admit_site`].
pub async fn admit_site_evicting<S: TenantLookup, K: PepperSource>(
    store: &S,
    site_id: &str,
    access: Access<'_>,
    peppers: &K,
) -> Result<Tenant, ApiError> {
    let site = SiteId::from_route(site_id)?;
    admit_tenant_evicting(store.tenant_by_site(&site).await?, access, peppers)
}

/// [`admit_tenant`] for a function that holds peppers: a tenant that is not active (`deleting`,
/// `deleted`) has its pepper evicted from `peppers` before the 410.
///
/// # Errors
/// As [`admit_site`].
pub fn admit_tenant_evicting<K: PepperSource>(
    tenant: Option<Tenant>,
    access: Access<'_>,
    peppers: &K,
) -> Result<Tenant, ApiError> {
    if let Some(t) = tenant.as_ref().filter(|t| t.status != TenantStatus::Active) {
        peppers.forget(&t.tenant_id);
    }
    admit_tenant(tenant, access)
}

#[cfg(all(test, feature = "test-doubles"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::kms::{KmsError, PepperCache, PEPPER_TTL};
    use crate::pii::Pepper;
    use crate::tenant::Platform;

    /// A pepper source over the real cache: a miss "decrypts" a fixed key.
    struct Held(PepperCache);

    impl PepperSource for Held {
        async fn pepper(&self, t: &Tenant) -> Result<Arc<Pepper>, KmsError> {
            let ct = t
                .pepper_ciphertext
                .as_deref()
                .ok_or(KmsError::Missing("pepper"))?;
            if let Some(k) = self.0.get(&t.tenant_id, ct) {
                return Ok(k);
            }
            let k = Arc::new(Pepper::new([7; 32]));
            self.0.put(&t.tenant_id, ct, k.clone());
            Ok(k)
        }
        fn forget(&self, tenant_id: &str) {
            self.0.forget(tenant_id);
        }
    }

    #[tokio::test]
    async fn a_tenant_seen_deleting_loses_its_pepper_at_once() {
        let held = Held(PepperCache::new(
            PEPPER_TTL,
            ManualClock::at(1_700_000_000_000).shared(),
        ));
        let mut t = Tenant::new(
            Platform::Shopify,
            "a.myshopify.com",
            "site1",
            "2026-12-01T00:00:00Z",
        );
        t.pepper_ciphertext = Some(b"ct".to_vec());
        held.pepper(&t).await.expect("pepper");
        let mut other = t.clone();
        other.tenant_id = "other".into();
        held.pepper(&other).await.expect("pepper");

        let admitted = admit_tenant_evicting(Some(t.clone()), Access::Storefront, &held);
        assert_eq!(
            admitted.map(|a| a.tenant_id).ok(),
            Some(t.tenant_id.clone())
        );
        assert_eq!(held.0.len(), 2, "an active tenant keeps its pepper");

        t.status = TenantStatus::Deleting;
        let refused = admit_tenant_evicting(Some(t.clone()), Access::Storefront, &held)
            .expect_err("deleting");
        assert_eq!(refused.status, 410);
        assert_eq!(held.0.len(), 1, "only the deleting tenant's pepper left");
        assert!(held.0.get(&t.tenant_id, b"ct").is_none());
        assert!(held.0.get("other", b"ct").is_some());
    }
}

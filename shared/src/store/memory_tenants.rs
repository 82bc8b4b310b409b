//! In-memory test doubles of the tenant ports ([`super::tenants`]), with failure injection. Only built
//! with the `test-doubles` feature (dev-dependencies), never in a release binary.
//!
//! [`MemoryTenants`] keeps the conditions of the DynamoDB adapter (a record and its pointer created
//! together, refreshes only of active tenants this site's pointer names, compare-and-set of the API key
//! hash, states taken once) so that domain tests exercise the same outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::deletion::Trigger;
use super::tenants::{
    DeletionStarter, KeyRotation, OAuthState, OAuthStates, Refresh, TenantDirectory, TenantWriter,
    WebhookReceipts,
};
use super::{StoreError, TenantLookup};
use crate::tenant::{Tenant, TenantStatus};

/// The tenants table in maps behind mutexes.
#[derive(Debug, Default)]
pub struct MemoryTenants {
    /// Tenant records by site id.
    pub tenants: Mutex<HashMap<String, Tenant>>,
    /// `tenant#` pointers: tenant id to site id.
    pub pointers: MemoryPointers,
    /// Single-use grants by value.
    pub states: Mutex<HashMap<String, OAuthState>>,
    /// Webhook delivery ids seen.
    pub webhooks: Mutex<HashSet<String>>,
    /// Deletions started: tenant id, trigger, epoch ms.
    pub deletions: Mutex<Vec<(String, Trigger, i64)>>,
    /// When set, every read fails as unavailable.
    pub fail_reads: AtomicBool,
    /// When set, every write fails as unavailable (and changes nothing).
    pub fail_writes: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `tenant#{tenant_id}` pointers of the tenants table, in memory: the site id of each tenant id.
/// The one double of them, in [`MemoryTenants`] and in [`super::memory::MemoryStore`].
#[derive(Debug, Default)]
pub struct MemoryPointers(Mutex<HashMap<String, String>>);

impl MemoryPointers {
    /// The site id `tenant_id`'s pointer names.
    pub fn site_of(&self, tenant_id: &str) -> Option<String> {
        self.entries().get(tenant_id).cloned()
    }

    /// Points `tenant_id` at `site_id`.
    pub fn set(&self, tenant_id: &str, site_id: &str) {
        self.entries()
            .insert(tenant_id.to_string(), site_id.to_string());
    }

    /// Every pointer, locked (for a conditional write that reads and changes them at once).
    pub fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        lock(&self.0)
    }
}

fn check(flag: &AtomicBool, what: &str) -> Result<(), StoreError> {
    if flag.load(Ordering::SeqCst) {
        Err(StoreError::Unavailable(format!("injected {what} failure")))
    } else {
        Ok(())
    }
}

impl MemoryTenants {
    /// A table holding `tenants`, each with its pointer.
    pub fn with_tenants(tenants: impl IntoIterator<Item = Tenant>) -> Self {
        let s = Self::default();
        for t in tenants {
            s.pointers.set(&t.tenant_id, &t.site_id);
            lock(&s.tenants).insert(t.site_id.clone(), t);
        }
        s
    }

    /// The record of `site_id`, as stored now.
    pub fn tenant(&self, site_id: &str) -> Option<Tenant> {
        lock(&self.tenants).get(site_id).cloned()
    }

    /// Every stored record.
    pub fn all_tenants(&self) -> Vec<Tenant> {
        lock(&self.tenants).values().cloned().collect()
    }

    /// Applies `change` to the record of `site_id` if `allowed` says so; `Err(refused)` otherwise.
    fn update(
        &self,
        site_id: &str,
        allowed: impl FnOnce(&Tenant) -> bool,
        refused: StoreError,
        change: impl FnOnce(&mut Tenant),
    ) -> Result<(), StoreError> {
        check(&self.fail_writes, "write")?;
        let mut tenants = lock(&self.tenants);
        match tenants.get_mut(site_id) {
            Some(t) if allowed(t) => {
                change(t);
                Ok(())
            }
            _ => Err(refused),
        }
    }
}

impl TenantLookup for MemoryTenants {
    async fn tenant_by_site(&self, site_id: &str) -> Result<Option<Tenant>, StoreError> {
        check(&self.fail_reads, "read")?;
        Ok(self.tenant(site_id))
    }
}

impl TenantDirectory for MemoryTenants {
    async fn site_id_of_tenant(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        check(&self.fail_reads, "read")?;
        Ok(self.pointers.site_of(tenant_id))
    }
}

impl TenantWriter for MemoryTenants {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        replaces_site: Option<&str>,
    ) -> Result<(), StoreError> {
        check(&self.fail_writes, "write")?;
        let mut tenants = lock(&self.tenants);
        let mut pointers = self.pointers.entries();
        let pointer_ok = match pointers.get(&tenant.tenant_id) {
            None => true,
            Some(site) => Some(site.as_str()) == replaces_site,
        };
        if tenants.contains_key(&tenant.site_id) || !pointer_ok {
            return Err(StoreError::Conflict);
        }
        pointers.insert(tenant.tenant_id.clone(), tenant.site_id.clone());
        tenants.insert(tenant.site_id.clone(), tenant.clone());
        Ok(())
    }

    async fn refresh_tenant(&self, r: &Refresh) -> Result<(), StoreError> {
        let pointed = self.pointers.site_of(&r.tenant_id).as_ref() == Some(&r.site_id);
        self.update(
            &r.site_id,
            |t| pointed && t.tenant_id == r.tenant_id && t.status == TenantStatus::Active,
            StoreError::TenantInactive,
            |t| {
                t.scopes.clone_from(&r.scopes);
                t.consent_granted_at = Some(r.consent_granted_at.clone());
                t.access_token_ciphertext = Some(r.access_token_ciphertext.clone());
                if t.pepper_ciphertext.is_none() {
                    t.pepper_ciphertext.clone_from(&r.pepper_ciphertext);
                }
                if r.default_region.is_some() {
                    t.default_region.clone_from(&r.default_region);
                }
            },
        )
    }

    async fn rotate_api_key(&self, r: &KeyRotation<'_>) -> Result<(), StoreError> {
        self.update(
            r.site_id,
            |t| {
                t.status == TenantStatus::Active && t.api_key_sha256.as_deref() == r.expected_sha256
            },
            StoreError::Conflict,
            |t| {
                t.api_key_sha256 = Some(r.new_sha256.to_string());
                t.identity_secret_ciphertext = Some(r.identity_secret_ciphertext.to_vec());
            },
        )
    }

    async fn set_messaging_consent(
        &self,
        site_id: &str,
        granted: bool,
        at: &str,
    ) -> Result<(), StoreError> {
        self.update(
            site_id,
            |t| !granted || t.status == TenantStatus::Active,
            StoreError::TenantInactive,
            |t| {
                t.messaging_consent = granted;
                t.messaging_consent_at = Some(at.to_string());
            },
        )
    }

    async fn record_uninstall(&self, site_id: &str, at: &str) -> Result<(), StoreError> {
        self.update(
            site_id,
            |_| true,
            StoreError::TenantInactive,
            |t| {
                t.messaging_consent = false;
                t.messaging_consent_at = Some(at.to_string());
                t.access_token_ciphertext = None;
            },
        )
    }
}

impl OAuthStates for MemoryTenants {
    async fn issue_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        check(&self.fail_writes, "write")?;
        let mut states = lock(&self.states);
        if states.contains_key(&state.state) {
            return Err(StoreError::Conflict);
        }
        states.insert(state.state.clone(), state.clone());
        Ok(())
    }

    async fn take_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        check(&self.fail_writes, "write")?;
        Ok(lock(&self.states).remove(state))
    }
}

impl WebhookReceipts for MemoryTenants {
    async fn claim_webhook(
        &self,
        webhook_id: &str,
        _topic: &str,
        _now_ms: i64,
    ) -> Result<bool, StoreError> {
        check(&self.fail_writes, "write")?;
        Ok(lock(&self.webhooks).insert(webhook_id.to_string()))
    }

    async fn release_webhook(&self, webhook_id: &str) -> Result<(), StoreError> {
        check(&self.fail_writes, "write")?;
        lock(&self.webhooks).remove(webhook_id);
        Ok(())
    }
}

/// Marks the tenant deleting and drops its secrets, as the first step of the real deletion does, and
/// records the start in [`MemoryTenants::deletions`].
impl DeletionStarter for MemoryTenants {
    async fn start_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        check(&self.fail_writes, "write")?;
        let Some(site) = self.pointers.site_of(tenant_id) else {
            return Ok(());
        };
        if let Some(t) = lock(&self.tenants).get_mut(&site) {
            if t.status == TenantStatus::Active {
                t.status = TenantStatus::Deleting;
                t.messaging_consent = false;
                t.access_token_ciphertext = None;
                t.pepper_ciphertext = None;
                t.identity_secret_ciphertext = None;
                lock(&self.deletions).push((tenant_id.to_string(), trigger, now_ms));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenants::StateKind;
    use crate::tenant::Platform;

    fn tenant(site: &str) -> Tenant {
        Tenant::new(
            Platform::Shopify,
            "a.myshopify.com",
            site,
            "2026-12-01T00:00:00Z",
        )
    }

    #[tokio::test]
    async fn a_second_create_of_the_same_store_conflicts_unless_it_replaces_the_pointed_site() {
        let m = MemoryTenants::default();
        m.create_tenant(&tenant("s_1"), None).await.expect("first");
        assert!(matches!(
            m.create_tenant(&tenant("s_2"), None).await,
            Err(StoreError::Conflict)
        ));
        m.create_tenant(&tenant("s_2"), Some("s_1"))
            .await
            .expect("replaces");
        let id = tenant("s_2").tenant_id;
        assert_eq!(
            m.tenant_by_tenant_id(&id)
                .await
                .expect("read")
                .map(|t| t.site_id),
            Some("s_2".into())
        );
    }

    #[tokio::test]
    async fn a_state_is_taken_once_and_failures_change_nothing() {
        let m = MemoryTenants::default();
        let st = OAuthState {
            state: "x".into(),
            kind: StateKind::ShopifyInstall,
            subject: "a.myshopify.com".into(),
            expires_at: 10,
        };
        m.issue_state(&st).await.expect("issue");
        m.fail_writes.store(true, Ordering::SeqCst);
        assert!(m.take_state("x").await.is_err());
        m.fail_writes.store(false, Ordering::SeqCst);
        assert_eq!(m.take_state("x").await.expect("take"), Some(st));
        assert_eq!(m.take_state("x").await.expect("take"), None);
    }
}

//! Decrypted tenant secrets in memory: [`KeyCache`] (by tenant, bounded in time and count) and
//! [`Unsealed`] (KMS behind the cache), for the pepper and the identity secret.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Kms, KmsError, PEPPER_CACHE_MAX, PEPPER_TTL};
use crate::clock::SharedClock;
use crate::identity::IdentitySecret;
use crate::pii::Pepper;
use crate::tenant::Tenant;

struct Cached<K> {
    at_ms: i64,
    ciphertext: Vec<u8>,
    key: Arc<K>,
}

/// The memory part of [`Peppers`]: decrypted peppers by tenant id, each for at most its TTL (never more
/// than [`PEPPER_TTL`]) on the given clock, at most [`PEPPER_CACHE_MAX`] of them.
///
/// Every read sweeps out every expired entry (so one tenant's traffic evicts another, idle tenant's
/// pepper), and an entry is used only for the ciphertext it was decrypted from (a tenant deleted and
/// installed again never gets its old pepper). A pepper leaves the cache when it expires, when
/// [`PepperCache::forget`] is called (admission saw its tenant `deleting`:
/// [`crate::admit::admit_tenant_evicting`]), or when the cache is full and it is the oldest; its
/// bytes are wiped once the last request holding it ends. A Lambda environment that gets no request
/// at all is frozen by Lambda and reclaimed; while frozen it runs no code, this cache's included.
pub type PepperCache = KeyCache<Pepper>;

/// A tenant key decrypted from its ciphertext, kept by tenant id on a clock: the one cache behind
/// [`PepperCache`] and [`crate::identity::IdentitySecrets`] (see [`PepperCache`] for when an entry
/// leaves). `K` wipes itself on drop.
pub struct KeyCache<K> {
    ttl_ms: i64,
    clock: SharedClock,
    entries: Mutex<HashMap<String, Cached<K>>>,
}

impl<K> std::fmt::Debug for KeyCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("ttl_ms", &self.ttl_ms)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K> KeyCache<K> {
    /// An empty cache whose entries live `ttl` (at most [`PEPPER_TTL`]: a longer one is cut to it)
    /// on `clock`.
    pub fn new(ttl: Duration, clock: SharedClock) -> Self {
        let ttl = ttl.min(PEPPER_TTL);
        Self {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached<K>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, entries: &mut HashMap<String, Cached<K>>, now_ms: i64) {
        entries.retain(|_, c| now_ms.saturating_sub(c.at_ms) < self.ttl_ms);
    }

    /// The tenant's key if it was decrypted from `ciphertext` less than the TTL ago. Evicts every
    /// expired entry, and this tenant's entry when it is for another ciphertext.
    pub fn get(&self, tenant_id: &str, ciphertext: &[u8]) -> Option<Arc<K>> {
        let now = self.clock.now_ms();
        let mut entries = self.lock();
        self.sweep(&mut entries, now);
        match entries.get(tenant_id) {
            Some(c) if c.ciphertext == ciphertext => Some(c.key.clone()),
            Some(_) => {
                entries.remove(tenant_id);
                None
            }
            None => None,
        }
    }

    /// Keeps `key`, the tenant's key decrypted from `ciphertext`, from now for the TTL. When the
    /// cache is full the oldest entry goes first.
    pub fn put(&self, tenant_id: &str, ciphertext: &[u8], key: Arc<K>) {
        let now = self.clock.now_ms();
        let mut entries = self.lock();
        self.sweep(&mut entries, now);
        if entries.len() >= PEPPER_CACHE_MAX && !entries.contains_key(tenant_id) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.at_ms)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            tenant_id.to_string(),
            Cached {
                at_ms: now,
                ciphertext: ciphertext.to_vec(),
                key,
            },
        );
    }

    /// Forgets a tenant's key at once (its deletion started).
    pub fn forget(&self, tenant_id: &str) {
        self.lock().remove(tenant_id);
    }

    /// How many keys are held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tenant secret that KMS unseals for [`Unsealed`]: where its ciphertext sits on the tenant record
/// and how it is opened.
pub trait TenantSecret: Send + Sync + Sized + 'static {
    /// Its name in [`KmsError::Missing`] when the tenant has none.
    const NAME: &'static str;

    /// The tenant's ciphertext of it, if any.
    fn ciphertext(tenant: &Tenant) -> Option<&[u8]>;

    /// Decrypts `ciphertext` under `tenant_id`'s encryption context.
    ///
    /// # Errors
    /// [`KmsError::Refused`] (wrong tenant or purpose), [`KmsError::Unavailable`],
    /// [`KmsError::Malformed`].
    fn open(
        kms: &Kms,
        tenant_id: &str,
        ciphertext: &[u8],
    ) -> impl Future<Output = Result<Self, KmsError>> + Send;
}

impl TenantSecret for Pepper {
    const NAME: &'static str = "pepper";

    fn ciphertext(tenant: &Tenant) -> Option<&[u8]> {
        tenant.pepper_ciphertext.as_deref()
    }

    async fn open(kms: &Kms, tenant_id: &str, ciphertext: &[u8]) -> Result<Self, KmsError> {
        kms.open_pepper(tenant_id, ciphertext).await
    }
}

impl TenantSecret for IdentitySecret {
    const NAME: &'static str = "identity secret";

    fn ciphertext(tenant: &Tenant) -> Option<&[u8]> {
        tenant.identity_secret_ciphertext.as_deref()
    }

    async fn open(kms: &Kms, tenant_id: &str, ciphertext: &[u8]) -> Result<Self, KmsError> {
        kms.open_identity_secret(tenant_id, ciphertext).await
    }
}

/// Tenants' secrets of one kind (`K`: the pepper, the identity secret), decrypted with KMS on first
/// use and kept in memory for at most [`PEPPER_TTL`] per warm Lambda (see [`KeyCache`] for when one
/// leaves: an entry serves only the ciphertext it came from, so a rotated or re-installed secret is
/// read again). Build one per cold start and share it across requests.
pub struct Unsealed<K> {
    kms: Kms,
    pub(crate) cache: KeyCache<K>,
}

/// Tenants' peppers ([`Unsealed`]).
pub type Peppers = Unsealed<Pepper>;

impl<K> std::fmt::Debug for Unsealed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed")
            .field("kind", &std::any::type_name::<K>())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<K: TenantSecret> Unsealed<K> {
    /// A cache over `kms` that keeps each secret for `ttl` (use [`PEPPER_TTL`]; a longer one is cut
    /// to it) on the system clock.
    pub fn new(kms: Kms, ttl: Duration) -> Self {
        Self::with_clock(kms, ttl, crate::clock::system())
    }

    /// As [`Unsealed::new`], with the time from `clock`.
    pub fn with_clock(kms: Kms, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            kms,
            cache: KeyCache::new(ttl, clock),
        }
    }

    /// The KMS envelope under the cache (it also opens access tokens: see
    /// [`crate::oauth::AccessTokenOpener`]).
    pub fn kms(&self) -> &Kms {
        &self.kms
    }

    /// The tenant's secret: from memory when decrypted less than the TTL ago, else from KMS.
    ///
    /// # Errors
    /// [`KmsError::Missing`] when the tenant has none; the errors of [`TenantSecret::open`].
    pub async fn get(&self, tenant: &Tenant) -> Result<Arc<K>, KmsError> {
        let ciphertext = K::ciphertext(tenant).ok_or(KmsError::Missing(K::NAME))?;
        if let Some(key) = self.cache.get(&tenant.tenant_id, ciphertext) {
            return Ok(key);
        }
        let key = Arc::new(K::open(&self.kms, &tenant.tenant_id, ciphertext).await?);
        self.cache.put(&tenant.tenant_id, ciphertext, key.clone());
        Ok(key)
    }

    /// Forgets a tenant's secret at once (its deletion started).
    pub fn forget(&self, tenant_id: &str) {
        self.cache.forget(tenant_id);
    }

    /// How many secrets are held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

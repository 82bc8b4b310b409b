//! Tenants' popularity, kept in a warm Lambda's memory for a short time.
//!
//! Popularity changes only when the aggregate function folds a stream batch in (every 30 s at most per
//! tenant), and it is the largest item a recommendation reads (up to 1,000 products, tens of KB, so
//! several read units). Keeping it for [`POPULARITY_TTL`] takes it out of most requests: they read the
//! tenant and the profile only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use affinity::popularity::Popularity;

/// How long a tenant's popularity is reused.
pub const POPULARITY_TTL: Duration = Duration::from_secs(60);
/// Most tenants kept at once (expired ones go first, then the oldest).
pub const MAX_TENANTS: usize = 256;

/// The cache. One per cold start.
#[derive(Debug)]
pub struct PopularityCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Popularity>)>>,
}

impl Default for PopularityCache {
    fn default() -> Self {
        Self::new(POPULARITY_TTL)
    }
}

impl PopularityCache {
    /// A cache keeping entries for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Popularity>)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The site's popularity if read less than the TTL ago.
    pub fn get(&self, site_id: &str) -> Option<Arc<Popularity>> {
        let entries = self.lock();
        entries
            .get(site_id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, p)| p.clone())
    }

    /// Keeps a freshly read popularity.
    pub fn put(&self, site_id: &str, popularity: Arc<Popularity>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        let ttl = self.ttl;
        entries.retain(|_, (at, _)| at.elapsed() < ttl);
        if entries.len() >= MAX_TENANTS {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(site_id.to_string(), (Instant::now(), popularity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let c = PopularityCache::new(Duration::from_millis(30));
        c.put(
            "a",
            Arc::new(Popularity {
                ref_ms: 1,
                applied: Vec::new(),
                products: vec![],
            }),
        );
        assert_eq!(c.get("a").map(|p| p.ref_ms), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("a").is_none());
        let big = PopularityCache::new(Duration::from_secs(60));
        for i in 0..(MAX_TENANTS + 10) {
            big.put(&format!("s{i}"), Arc::new(Popularity::default()));
        }
        assert_eq!(big.lock().len(), MAX_TENANTS);
        assert!(big.get(&format!("s{}", MAX_TENANTS + 9)).is_some());
        let off = PopularityCache::new(Duration::ZERO);
        off.put("a", Arc::new(Popularity::default()));
        assert!(off.get("a").is_none());
    }
}

//! The clock port: what "now" is, in epoch milliseconds.
//!
//! Functions take a [`SharedClock`] in their `Deps`, built once in `main` as [`system()`]. Tests use
//! [`ManualClock`] (feature `test-doubles`) and move time forward with [`ManualClock::advance`]
//! instead of sleeping.

use std::sync::Arc;

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> i64;
}

/// A clock as the functions hold it: cheap to clone, shared by concurrent tasks.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock ([`crate::now_ms`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

/// The wall clock, as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(feature = "test-doubles")]
pub use manual::ManualClock;

#[cfg(feature = "test-doubles")]
mod manual {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    /// A clock that stands still until a test moves it. Clones share one time.
    #[derive(Debug, Clone)]
    pub struct ManualClock(Arc<AtomicI64>);

    impl ManualClock {
        /// A clock at `ms` (epoch milliseconds).
        pub fn at(ms: i64) -> Self {
            Self(Arc::new(AtomicI64::new(ms)))
        }
        /// Moves the clock forward by `ms` milliseconds.
        pub fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
        /// Sets the clock to `ms` (epoch milliseconds).
        pub fn set(&self, ms: i64) {
            self.0.store(ms, Ordering::SeqCst);
        }
        /// This clock as a [`super::SharedClock`] (sharing its time).
        pub fn shared(&self) -> super::SharedClock {
            Arc::new(self.clone())
        }
    }

    impl super::Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }
}

#[cfg(all(test, feature = "test-doubles"))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let c = ManualClock::at(1_000);
        let shared = c.shared();
        assert_eq!(shared.now_ms(), 1_000);
        c.advance(60_000);
        assert_eq!(shared.now_ms(), 61_000);
        c.set(5);
        assert_eq!(shared.now_ms(), 5);
    }
}

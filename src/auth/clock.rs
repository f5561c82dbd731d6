//! Time as the auth core sees it: passed in, so tests move it by hand. Every
//! use case reads it once and passes that instant down; the rate limits read
//! the same clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync + 'static {
    /// Unix time in whole seconds: what tokens carry and the database records.
    fn now(&self) -> i64;

    /// A reading that never goes back, for intervals (rate limits): setting
    /// the wall clock back must not hand out fresh allowances, nor freeze them.
    fn monotonic(&self) -> Duration;
}

pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock, with the process's monotonic clock for intervals.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn monotonic(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(SystemClock.now())))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.now()).unwrap_or(0))
    }
}

//! Rate limits (governor's GCRA): failed logins per username and per client
//! address, registrations per address, refreshes per session.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimit, Settings};

fn quota(limit: RateLimit) -> Quota {
    let burst = NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs(limit.per_seconds) / burst.get();
    Quota::with_period(period.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

/// Whole seconds to wait, at least one.
fn seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Every call spends one unit.
pub struct AttemptLimit(DefaultKeyedRateLimiter<String>);

impl AttemptLimit {
    pub fn new(limit: RateLimit) -> Self {
        Self(RateLimiter::keyed(quota(limit)))
    }

    /// Spends a unit for `key`, or says how many seconds to wait.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.0
            .check_key(&key.to_string())
            .map_err(|not_until| seconds(not_until.wait_time_from(DefaultClock::default().now())))
    }

    fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

/// Only failures spend units; once a failure finds none left, the key is
/// refused until one comes back, successes included.
pub struct FailureLimit {
    failures: DefaultKeyedRateLimiter<String>,
    blocked_until: Mutex<HashMap<String, Instant>>,
}

impl FailureLimit {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            failures: RateLimiter::keyed(quota(limit)),
            blocked_until: Mutex::new(HashMap::new()),
        }
    }

    /// Err(seconds to wait) while the key is blocked.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let blocked = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => Err(seconds(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Records a failure; Err(seconds) if it was one too many.
    pub fn record_failure(&self, key: &str) -> Result<(), u64> {
        match self.failures.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.blocked_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string(), Instant::now() + wait);
                Err(seconds(wait))
            }
        }
    }

    fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        self.blocked_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}

pub struct Limits {
    pub login_per_username: FailureLimit,
    pub login_per_ip: FailureLimit,
    pub registrations_per_ip: AttemptLimit,
    pub refreshes_per_session: AttemptLimit,
}

impl Limits {
    pub fn new(settings: &Settings) -> Self {
        Self {
            login_per_username: FailureLimit::new(settings.login_failures_per_username),
            login_per_ip: FailureLimit::new(settings.login_failures_per_ip),
            registrations_per_ip: AttemptLimit::new(settings.registrations_per_ip),
            refreshes_per_session: AttemptLimit::new(settings.refreshes_per_session),
        }
    }

    /// Drops state of keys that have been quiet long enough to be full again.
    pub fn forget_idle(&self) {
        self.login_per_username.forget_idle();
        self.login_per_ip.forget_idle();
        self.registrations_per_ip.forget_idle();
        self.refreshes_per_session.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_after_the_allowance() {
        let limit = FailureLimit::new(RateLimit { count: 3, per_seconds: 60 });
        for _ in 0..3 {
            assert!(limit.check("k").is_ok());
            assert!(limit.record_failure("k").is_ok());
        }
        let wait = limit.record_failure("k").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limit.check("k").is_err());
        assert!(limit.check("other").is_ok());
    }

    #[test]
    fn attempts_spend_units() {
        let limit = AttemptLimit::new(RateLimit { count: 2, per_seconds: 3600 });
        assert!(limit.check("ip").is_ok());
        assert!(limit.check("ip").is_ok());
        let wait = limit.check("ip").unwrap_err();
        assert!(wait > 60, "{wait}");
    }
}

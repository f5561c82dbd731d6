//! Rate limits (governor's GCRA): failed logins per username and per client
//! address, registrations per address, refreshes per session. They run on the
//! core's clock, so tests move them with everything else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::clock::SharedClock;
use crate::config::{RateLimit, Settings};

/// The core's clock as governor reads it: its monotonic reading.
#[derive(Clone)]
struct LimitClock(SharedClock);

impl GovernorClock for LimitClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, LimitClock, NoOpMiddleware<Duration>>;

fn keyed(limit: RateLimit, clock: &LimitClock) -> KeyedLimiter {
    RateLimiter::new(quota(limit), DefaultKeyedStateStore::default(), clock.clone())
}

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
pub struct AttemptLimit {
    spent: KeyedLimiter,
    clock: LimitClock,
}

impl AttemptLimit {
    fn new(limit: RateLimit, clock: &LimitClock) -> Self {
        Self {
            spent: keyed(limit, clock),
            clock: clock.clone(),
        }
    }

    /// Spends a unit for `key`, or says how many seconds to wait.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.spent
            .check_key(&key.to_string())
            .map_err(|not_until| seconds(not_until.wait_time_from(self.clock.now())))
    }

    fn forget_idle(&self) {
        self.spent.retain_recent();
        self.spent.shrink_to_fit();
    }
}

/// Only failures spend units; once a failure finds none left, the key is
/// refused until one comes back, successes included.
///
/// A failure is only known once its hash is done, so attempts sent all at once
/// would all pass a check made before any of them failed. Each key therefore
/// has at most its allowance of attempts under way at a time: however they are
/// timed, no more than twice the allowance are checked before the key is
/// refused.
pub struct FailureLimit {
    failures: KeyedLimiter,
    clock: LimitClock,
    /// Key → the monotonic reading it is blocked until.
    blocked_until: Mutex<HashMap<String, Duration>>,
    under_way: Mutex<HashMap<String, u32>>,
    allowance: u32,
}

/// An attempt admitted by [`FailureLimit::admit`]; it is under way until dropped.
pub struct Attempt<'a> {
    limit: &'a FailureLimit,
    key: String,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut under_way = self.limit.under_way.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = under_way.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                under_way.remove(&self.key);
            }
        }
    }
}

impl FailureLimit {
    fn new(limit: RateLimit, clock: &LimitClock) -> Self {
        Self {
            failures: keyed(limit, clock),
            clock: clock.clone(),
            blocked_until: Mutex::new(HashMap::new()),
            under_way: Mutex::new(HashMap::new()),
            allowance: limit.count.max(1),
        }
    }

    /// Starts an attempt for `key`, or Err(seconds to wait) while the key is
    /// blocked or has its allowance of attempts under way (then one second: a
    /// hash takes milliseconds).
    pub fn admit(&self, key: &str) -> Result<Attempt<'_>, u64> {
        {
            let blocked = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = blocked.get(key) {
                let now = self.clock.now();
                if *until > now {
                    return Err(seconds(*until - now));
                }
            }
        }
        let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
        let count = under_way.entry(key.to_string()).or_insert(0);
        if *count >= self.allowance {
            return Err(1);
        }
        *count += 1;
        Ok(Attempt {
            limit: self,
            key: key.to_string(),
        })
    }

    /// Records a failure; Err(seconds) if it was one too many.
    pub fn record_failure(&self, key: &str) -> Result<(), u64> {
        match self.failures.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let now = self.clock.now();
                let wait = not_until.wait_time_from(now);
                self.blocked_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string(), now + wait);
                Err(seconds(wait))
            }
        }
    }

    fn forget_idle(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = self.clock.now();
        self.blocked_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}

/// The key a client address is limited by: an IPv6 address by its /64, the
/// block one subscriber usually holds whole, so walking through it does not
/// give an attacker fresh allowances.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        },
        _ => ip.to_string(),
    }
}

pub struct Limits {
    pub login_per_username: FailureLimit,
    pub login_per_ip: FailureLimit,
    pub registrations_per_ip: AttemptLimit,
    pub refreshes_per_session: AttemptLimit,
}

impl Limits {
    pub fn new(settings: &Settings, clock: SharedClock) -> Self {
        let clock = LimitClock(clock);
        Self {
            login_per_username: FailureLimit::new(settings.login_failures_per_username, &clock),
            login_per_ip: FailureLimit::new(settings.login_failures_per_ip, &clock),
            registrations_per_ip: AttemptLimit::new(settings.registrations_per_ip, &clock),
            refreshes_per_session: AttemptLimit::new(settings.refreshes_per_session, &clock),
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
    use std::sync::Arc;

    use super::*;
    use crate::auth::clock::ManualClock;

    fn manual() -> (Arc<ManualClock>, LimitClock) {
        let clock = ManualClock::starting_now();
        (clock.clone(), LimitClock(clock))
    }

    #[test]
    fn failures_block_after_the_allowance() {
        let (_, clock) = manual();
        let limit = FailureLimit::new(
            RateLimit {
                count: 3,
                per_seconds: 60,
            },
            &clock,
        );
        for _ in 0..3 {
            let _attempt = limit.admit("k").unwrap();
            assert!(limit.record_failure("k").is_ok());
        }
        let wait = limit.record_failure("k").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limit.admit("k").is_err());
        assert!(limit.admit("other").is_ok());
    }

    #[test]
    fn a_blocked_key_is_admitted_again_once_the_clock_has_moved_on() {
        let (time, clock) = manual();
        let limit = FailureLimit::new(
            RateLimit {
                count: 1,
                per_seconds: 60,
            },
            &clock,
        );
        assert!(limit.record_failure("k").is_ok());
        let wait = limit.record_failure("k").unwrap_err();
        assert_eq!(limit.admit("k").err(), Some(wait), "the clock stood still");
        time.advance(i64::try_from(wait).unwrap());
        assert!(limit.admit("k").is_ok());
    }

    #[test]
    fn attempts_under_way_at_once_are_capped_at_the_allowance() {
        let (_, clock) = manual();
        let limit = FailureLimit::new(
            RateLimit {
                count: 2,
                per_seconds: 60,
            },
            &clock,
        );
        let first = limit.admit("k").unwrap();
        let _second = limit.admit("k").unwrap();
        assert_eq!(limit.admit("k").err(), Some(1));
        assert!(limit.admit("other").is_ok());
        drop(first);
        assert!(limit.admit("k").is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9"), address_key("2001:db8:1:2:aaaa::1"));
        assert_ne!(address_key("2001:db8:1:3::1"), address_key("2001:db8:1:2::1"));
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key(""), "");
    }

    #[test]
    fn attempts_spend_units() {
        let (time, clock) = manual();
        let limit = AttemptLimit::new(
            RateLimit {
                count: 2,
                per_seconds: 3600,
            },
            &clock,
        );
        assert!(limit.check("ip").is_ok());
        assert!(limit.check("ip").is_ok());
        let wait = limit.check("ip").unwrap_err();
        assert_eq!(wait, 1800, "one unit comes back every half hour");
        time.advance(1800);
        assert!(limit.check("ip").is_ok());
    }
}

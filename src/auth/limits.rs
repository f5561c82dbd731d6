//! Rate limits: failed logins per client address, per (username, address) and
//! per username, registrations per address, refreshes per session. Each runs
//! the GCRA of [`Rate`]; with PostgreSQL the state is the database's, shared by
//! every instance (`store::limits`), with SQLite it is this process's, in
//! memory. Either way the core's clock drives it, so tests move it with
//! everything else.
//!
//! A login attempt spends a unit of each of its three login limits before
//! its password is checked, and gets them back if the password was right: so
//! only failures count, and attempts sent all at once cannot all be checked
//! before the first of them fails, on one instance or many. An attempt whose
//! outcome is never known (a server fault, a client that hung up) counts as
//! failed.
//!
//! The address and the (username, address) limits refuse outright. The
//! username's limit, shared by every address, cannot: whoever spends it could
//! lock out its owner. Past it, each address must first wait its turn for that
//! username: the first attempt is refused with the delay to wait, and the
//! address holds a turn from then on (for `TURN_KEPT_MS`); coming back, it is
//! checked. The delay is one second, doubled for each failure beyond the
//! username's allowance not yet regained, at most `login_delay_max`: however
//! many addresses an attacker uses, an owner whose own address is not blocked
//! waits at most that long once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use super::clock::SharedClock;
use super::AuthError;
use crate::config::{RateLimit, Settings};
use crate::store::{Backend, PresentedToken, Rate, Store, StoreError};

/// How long a turn waits to be taken once its time has come (ms).
const TURN_KEPT_MS: i64 = 10 * 60 * 1000;
/// Usernames are cut to this many characters in limit keys: no account name
/// is longer, and a request cannot make a key of any size.
const MAX_KEY_CHARS: usize = 64;

/// A limit: its name (the `limit_name` of its rows) and its rate.
#[derive(Debug, Clone, Copy)]
struct Limit {
    name: &'static str,
    rate: Rate,
}

impl Limit {
    fn new(name: &'static str, limit: RateLimit) -> Self {
        Self {
            name,
            rate: Rate::new(limit.count, limit.per_seconds),
        }
    }
}

/// The turns of (username, address) pairs, held while a username is past its
/// allowance.
const LOGIN_TURN: &str = "login_turn";

/// Where the limits' state is kept.
enum Rows {
    /// One instance (SQLite): this process's memory, on the monotonic clock.
    Memory(Mutex<HashMap<(&'static str, String), MemoryRow>>),
    /// Every instance (PostgreSQL): the `rate_limits` table, on the wall clock
    /// the instances share.
    Shared(Store),
}

/// A row of [`Rows::Memory`], as the table's.
#[derive(Debug, Clone, Copy)]
struct MemoryRow {
    tat: i64,
    expires_at: i64,
}

impl Rows {
    fn memory<T>(
        rows: &Mutex<HashMap<(&'static str, String), MemoryRow>>,
        use_rows: impl FnOnce(&mut HashMap<(&'static str, String), MemoryRow>) -> T,
    ) -> T {
        use_rows(&mut rows.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn spend(&self, limit: Limit, key: &str, now: i64) -> Result<Result<(), i64>, StoreError> {
        match self {
            Self::Memory(rows) => Ok(Self::memory(rows, |rows| {
                let tat = rows.get(&(limit.name, key.to_string())).map_or(now, |row| row.tat);
                let tat = limit.rate.spend(tat, now)?;
                rows.insert((limit.name, key.to_string()), MemoryRow { tat, expires_at: tat });
                Ok(())
            })),
            Self::Shared(store) => store.spend_rate(limit.name, key, limit.rate, now).await,
        }
    }

    async fn force(&self, limit: Limit, key: &str, now: i64, overdraft: i64) -> Result<(), StoreError> {
        match self {
            Self::Memory(rows) => {
                Self::memory(rows, |rows| {
                    let row = rows.entry((limit.name, key.to_string())).or_insert(MemoryRow {
                        tat: now,
                        expires_at: now,
                    });
                    row.tat = limit.rate.force(row.tat, now, overdraft);
                    row.expires_at = row.tat;
                });
                Ok(())
            }
            Self::Shared(store) => store.force_rate(limit.name, key, limit.rate, now, overdraft).await,
        }
    }

    async fn refund(&self, limit: Limit, key: &str, now: i64) -> Result<(), StoreError> {
        match self {
            Self::Memory(rows) => {
                Self::memory(rows, |rows| {
                    if let Some(row) = rows.get_mut(&(limit.name, key.to_string())) {
                        row.tat = limit.rate.refund(row.tat, now);
                        row.expires_at = row.tat;
                    }
                });
                Ok(())
            }
            Self::Shared(store) => store.refund_rate(limit.name, key, limit.rate, now).await,
        }
    }

    async fn hold_turn(&self, key: &str, from: i64, now: i64) -> Result<i64, StoreError> {
        let until = from + TURN_KEPT_MS;
        match self {
            Self::Memory(rows) => Ok(Self::memory(rows, |rows| {
                let row = rows.entry((LOGIN_TURN, key.to_string())).or_insert(MemoryRow {
                    tat: from,
                    expires_at: until,
                });
                if row.expires_at <= now {
                    *row = MemoryRow {
                        tat: from,
                        expires_at: until,
                    };
                }
                row.tat
            })),
            Self::Shared(store) => store.hold_turn(LOGIN_TURN, key, from, until, now).await,
        }
    }

    async fn take_turn(&self, key: &str, now: i64) -> Result<bool, StoreError> {
        match self {
            Self::Memory(rows) => Ok(Self::memory(rows, |rows| {
                let turn = (LOGIN_TURN, key.to_string());
                let due = rows
                    .get(&turn)
                    .is_some_and(|row| row.tat <= now && now < row.expires_at);
                if due {
                    rows.remove(&turn);
                }
                due
            })),
            Self::Shared(store) => store.take_turn(LOGIN_TURN, key, now).await,
        }
    }

    async fn forget_expired(&self, now: i64) -> Result<(), StoreError> {
        match self {
            Self::Memory(rows) => {
                Self::memory(rows, |rows| {
                    rows.retain(|_, row| row.expires_at > now);
                    rows.shrink_to_fit();
                });
                Ok(())
            }
            Self::Shared(store) => store.delete_expired_rate_limits(now).await.map(drop),
        }
    }
}

/// Whole seconds to wait for `ms` milliseconds, at least one.
fn seconds(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).max(1).div_ceil(1000)
}

/// `limit` refused: wait `wait_ms` before trying again.
fn limited(limit: Limit, wait_ms: i64) -> AuthError {
    crate::metrics::rate_limited(limit.name);
    AuthError::RateLimited {
        retry_after: seconds(wait_ms),
    }
}

/// A username's delay (ms) when it is `over` units past its allowance: one
/// second doubled for each unit beyond the first, at most `max_ms`.
fn login_delay(over: i64, max_ms: i64) -> i64 {
    let doublings = u32::try_from((over - 1).clamp(0, 32)).unwrap_or(32);
    (1000_i64 << doublings).min(max_ms)
}

/// How many units past the allowance a username may run (see
/// [`Rate::force`]): enough for the delay to reach its maximum, no more, so
/// it comes back down soon after an attack stops.
fn login_overdraft(rate: Rate, max_ms: i64) -> i64 {
    let mut units = 0;
    while login_delay(units + 1, max_ms) < max_ms {
        units += 1;
    }
    rate.interval * units
}

/// The key a client address is limited by: an IPv6 address by its /64, the
/// block one subscriber usually holds whole, so walking through it does not
/// give an attacker fresh allowances. Without a known address (the router
/// served without connection info) every request shares the key `""`.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        },
        _ => ip.to_string(),
    }
}

/// A login attempt admitted by [`Limits::login_attempt`]: its units are spent
/// until [`Limits::login_succeeded`] gives them back.
#[derive(Debug)]
pub struct LoginAttempt {
    username: String,
    address: String,
    pair: String,
}

pub struct Limits {
    rows: Rows,
    clock: SharedClock,
    login_per_ip: Limit,
    login_per_username_and_ip: Limit,
    login_per_username: Limit,
    login_delay_max_ms: i64,
    registrations_per_ip: Limit,
    refreshes_per_session: Limit,
    password_resets_per_email: Limit,
    password_resets_per_ip: Limit,
    verification_mails_per_user: Limit,
    passkey_ceremonies_per_ip: Limit,
}

impl Limits {
    /// Limits kept in `store` if it serves several instances (PostgreSQL),
    /// else in memory.
    pub fn new(settings: &Settings, clock: SharedClock, store: &Store) -> Self {
        let rows = match store.backend() {
            Backend::Postgres => Rows::Shared(store.clone()),
            Backend::Sqlite => Rows::Memory(Mutex::default()),
        };
        Self::kept_in(rows, settings, clock)
    }

    fn kept_in(rows: Rows, settings: &Settings, clock: SharedClock) -> Self {
        Self {
            rows,
            clock,
            login_per_ip: Limit::new("login_per_ip", settings.login_failures_per_ip),
            login_per_username_and_ip: Limit::new(
                "login_per_username_and_ip",
                settings.login_failures_per_username_and_ip,
            ),
            login_per_username: Limit::new("login_per_username", settings.login_failures_per_username),
            login_delay_max_ms: settings.login_delay_max.saturating_mul(1000),
            registrations_per_ip: Limit::new("registrations_per_ip", settings.registrations_per_ip),
            refreshes_per_session: Limit::new("refreshes_per_session", settings.refreshes_per_session),
            password_resets_per_email: Limit::new("password_resets_per_email", settings.password_resets_per_email),
            password_resets_per_ip: Limit::new("password_resets_per_ip", settings.password_resets_per_ip),
            verification_mails_per_user: Limit::new("verification_mails_per_user", settings.verification_mails_per_user),
            passkey_ceremonies_per_ip: Limit::new("passkey_ceremonies_per_ip", settings.passkey_ceremonies_per_ip),
        }
    }

    /// Now in milliseconds: the shared wall clock for rows every instance
    /// reads, the monotonic one in memory (setting the wall clock back must
    /// not hand out fresh allowances there, nor freeze them).
    fn now(&self) -> i64 {
        match self.rows {
            Rows::Memory(_) => i64::try_from(self.clock.monotonic().as_millis()).unwrap_or(i64::MAX / 2),
            Rows::Shared(_) => self.clock.now().saturating_mul(1000),
        }
    }

    /// Spends a unit of `limit` for `key`, or refuses.
    async fn spend(&self, limit: Limit, key: &str, now: i64) -> Result<(), AuthError> {
        self.rows.spend(limit, key, now).await?.map_err(|wait| limited(limit, wait))
    }

    /// A registration from `address` (see [`address_key`]).
    pub async fn registration(&self, address: &str) -> Result<(), AuthError> {
        self.spend(self.registrations_per_ip, address, self.now()).await
    }

    /// A password-reset request for the case-folded address `email_key` from
    /// `address`: the same whether or not an account has that address, so
    /// the limit tells nothing about which addresses exist.
    pub async fn password_reset(&self, email_key: &str, address: &str) -> Result<(), AuthError> {
        let now = self.now();
        self.spend(self.password_resets_per_ip, address, now).await?;
        if let Err(refused) = self.spend(self.password_resets_per_email, email_key, now).await {
            self.rows.refund(self.password_resets_per_ip, address, now).await?;
            return Err(refused);
        }
        Ok(())
    }

    /// A verification mail for the account `user_id`.
    pub async fn verification_mail(&self, user_id: &str) -> Result<(), AuthError> {
        self.spend(self.verification_mails_per_user, user_id, self.now()).await
    }

    /// A passkey sign-in begun from `address`.
    pub async fn passkey_ceremony(&self, address: &str) -> Result<(), AuthError> {
        self.spend(self.passkey_ceremonies_per_ip, address, self.now()).await
    }

    /// A refresh of the presented token's session.
    pub async fn refresh(&self, presented: &mut PresentedToken) -> Result<(), AuthError> {
        let (limit, now) = (self.refreshes_per_session, self.now());
        let spent = match &self.rows {
            Rows::Memory(_) => self.rows.spend(limit, &presented.session.id, now).await?,
            Rows::Shared(store) => store.spend_session_rate(presented, limit.name, limit.rate, now).await?,
        };
        spent.map_err(|wait| limited(limit, wait))
    }

    /// Admits a password check for `username_key` from `address`, spending a
    /// unit of each login limit, or refuses it (see the module's notes).
    pub async fn login_attempt(&self, username_key: &str, address: &str) -> Result<LoginAttempt, AuthError> {
        let now = self.now();
        // PostgreSQL's text cannot hold NUL, which no account name has.
        let username: String = username_key
            .chars()
            .take(MAX_KEY_CHARS)
            .map(|c| if c == '\0' { char::REPLACEMENT_CHARACTER } else { c })
            .collect();
        // An address key has no space: the pair's parts cannot run together.
        let pair = format!("{address} {username}");
        self.spend(self.login_per_ip, address, now).await?;
        if let Err(refused) = self.spend(self.login_per_username_and_ip, &pair, now).await {
            self.rows.refund(self.login_per_ip, address, now).await?;
            return Err(refused);
        }
        let by_name = self.login_per_username;
        if let Err(wait) = self.rows.spend(by_name, &username, now).await? {
            if self.rows.take_turn(&pair, now).await? {
                let overdraft = login_overdraft(by_name.rate, self.login_delay_max_ms);
                self.rows.force(by_name, &username, now, overdraft).await?;
            } else {
                // Units past the allowance, this attempt's included.
                let over = (wait + by_name.rate.interval - 1) / by_name.rate.interval;
                let from = now + login_delay(over, self.login_delay_max_ms);
                let turn_at = self.rows.hold_turn(&pair, from, now).await?;
                self.rows.refund(self.login_per_username_and_ip, &pair, now).await?;
                self.rows.refund(self.login_per_ip, address, now).await?;
                return Err(limited(by_name, turn_at - now));
            }
        }
        Ok(LoginAttempt {
            username,
            address: address.to_string(),
            pair,
        })
    }

    /// The password was right: the attempt's units come back.
    pub async fn login_succeeded(&self, attempt: LoginAttempt) -> Result<(), AuthError> {
        let now = self.now();
        self.rows
            .refund(self.login_per_username, &attempt.username, now)
            .await?;
        self.rows
            .refund(self.login_per_username_and_ip, &attempt.pair, now)
            .await?;
        self.rows.refund(self.login_per_ip, &attempt.address, now).await?;
        Ok(())
    }

    /// Forgets state that says nothing any more.
    pub async fn forget_expired(&self) -> Result<(), StoreError> {
        self.rows.forget_expired(self.now()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::clock::ManualClock;

    fn limits(count: u32, max_delay: i64, clock: &Arc<ManualClock>) -> Limits {
        let limit = |count| RateLimit { count, per_seconds: 60 };
        let settings = Settings {
            login_failures_per_ip: limit(1000),
            login_failures_per_username_and_ip: limit(count),
            login_failures_per_username: limit(count),
            login_delay_max: max_delay,
            registrations_per_ip: limit(count),
            refreshes_per_session: limit(count),
            ..Settings::default()
        };
        Limits::kept_in(Rows::Memory(Mutex::default()), &settings, clock.clone())
    }

    fn wait(refused: Result<LoginAttempt, AuthError>) -> u64 {
        match refused {
            Err(AuthError::RateLimited { retry_after }) => retry_after,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_delay_doubles_up_to_its_maximum() {
        let delays: Vec<i64> = (1..=8).map(|over| login_delay(over, 60_000) / 1000).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(login_delay(1, 500), 500);
        assert_eq!(login_delay(i64::MAX, 60_000), 60_000);
        let rate = Rate::new(5, 60);
        assert_eq!(
            login_overdraft(rate, 60_000),
            6 * rate.interval,
            "the seventh unit over reaches a minute"
        );
        assert_eq!(login_overdraft(rate, 1000), 0);
    }

    #[tokio::test]
    async fn failures_from_one_address_block_it_and_successes_cost_nothing() {
        let clock = ManualClock::starting_now();
        let limits = limits(3, 60, &clock);
        for _ in 0..10 {
            let attempt = limits.login_attempt("alice", "192.0.2.1").await.unwrap();
            limits.login_succeeded(attempt).await.unwrap();
        }
        for _ in 0..3 {
            limits.login_attempt("alice", "192.0.2.1").await.unwrap();
        }
        let blocked = wait(limits.login_attempt("alice", "192.0.2.1").await);
        assert_eq!(blocked, 20, "a unit comes back every 20 s");
        assert_eq!(
            wait(limits.login_attempt("alice", "192.0.2.1").await),
            20,
            "right password or not"
        );
        assert!(
            limits.login_attempt("alice", "192.0.2.2").await.is_err(),
            "the name waits a turn elsewhere"
        );
        clock.advance(20);
        assert!(
            limits.login_attempt("alice", "192.0.2.1").await.is_ok(),
            "a unit came back"
        );
    }

    #[tokio::test]
    async fn past_the_username_allowance_every_address_waits_its_own_turn() {
        let clock = ManualClock::starting_now();
        let limits = limits(2, 60, &clock);
        // Two addresses spend alice's allowance.
        limits.login_attempt("alice", "198.51.100.1").await.unwrap();
        limits.login_attempt("alice", "198.51.100.2").await.unwrap();
        // A third address waits one second, then is checked.
        assert_eq!(wait(limits.login_attempt("alice", "192.0.2.7").await), 1);
        assert_eq!(
            wait(limits.login_attempt("alice", "192.0.2.7").await),
            1,
            "the turn held is kept"
        );
        clock.advance(1);
        let owner = limits.login_attempt("alice", "192.0.2.7").await.unwrap();
        // Attackers' failures from ever new addresses lengthen the delay for new turns...
        let mut delays = Vec::new();
        for i in 0..8 {
            let address = format!("203.0.113.{i}");
            let delay = wait(limits.login_attempt("alice", &address).await);
            delays.push(delay);
            clock.advance(i64::try_from(delay).unwrap());
            limits.login_attempt("alice", &address).await.unwrap();
        }
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]), "{delays:?}");
        assert!(delays[0] >= 2 && delays.iter().all(|d| *d <= 60), "{delays:?}");
        // ...but a success gives its unit back, and other names are untouched.
        limits.login_succeeded(owner).await.unwrap();
        assert!(limits.login_attempt("bob", "203.0.113.1").await.is_ok());
    }

    #[tokio::test]
    async fn a_turn_not_taken_in_time_lapses() {
        let clock = ManualClock::starting_now();
        let limits = limits(1, 60, &clock);
        limits.login_attempt("alice", "198.51.100.1").await.unwrap();
        let first = wait(limits.login_attempt("alice", "192.0.2.7").await);
        clock.advance(i64::try_from(first).unwrap() + TURN_KEPT_MS / 1000);
        // Regained meanwhile: no turn needed.
        assert!(limits.login_attempt("alice", "192.0.2.7").await.is_ok());
        limits.forget_expired().await.unwrap();
        let Rows::Memory(rows) = &limits.rows else {
            unreachable!()
        };
        assert!(rows.lock().unwrap().keys().all(|(name, _)| *name != LOGIN_TURN));
    }

    #[tokio::test]
    async fn attempts_spend_units() {
        let clock = ManualClock::starting_now();
        let limits = limits(2, 60, &clock);
        limits.registration("ip").await.unwrap();
        limits.registration("ip").await.unwrap();
        let refused = limits.registration("ip").await;
        assert!(
            matches!(refused, Err(AuthError::RateLimited { retry_after: 30 })),
            "{refused:?}"
        );
        clock.advance(30);
        assert!(limits.registration("ip").await.is_ok());
        assert!(limits.registration("other").await.is_ok());
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
}

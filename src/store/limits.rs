//! Rate-limit state: the GCRA arithmetic every limit runs on, and on
//! PostgreSQL the rows that share it between instances (table `rate_limits`),
//! one per limit and key, each changed by one atomic statement. SQLite serves
//! one instance, whose limits keep the same state in memory (`auth::limits`);
//! the table exists there unused.
//!
//! A row holds a theoretical arrival time (`tat`, milliseconds) and the time
//! from which it says nothing an absent row would not (`expires_at`), when the
//! upkeep deletes it. A row without a rate (a login's turn, see
//! `auth::limits`) holds in `tat` the time from which it may be taken.

use sqlx::{AnyConnection, Row};

use super::{PresentedToken, Store, StoreError};
use crate::metrics::DatabaseTimer;

/// The longest period a limit is counted over: a longer one limits no
/// differently in practice, and keeps the arithmetic far from overflowing.
const LONGEST_PERIOD_MS: i64 = 100 * 365 * 86_400 * 1000;

/// `count` units per period in GCRA terms (generic cell rate algorithm): a
/// unit comes back every `interval`, and the theoretical arrival time may run
/// at most `tolerance` ahead of now, so `count` units can be spent at once.
/// Times in milliseconds. The SQL below does the same sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: i64,
    pub tolerance: i64,
}

impl Rate {
    pub fn new(count: u32, per_seconds: u64) -> Self {
        let count = i64::from(count.max(1));
        let period = i64::try_from(per_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
            .min(LONGEST_PERIOD_MS);
        let interval = (period / count).max(1);
        Self {
            interval,
            tolerance: interval * count,
        }
    }

    /// The arrival time after a unit spent at `now`, or how long until one is
    /// back. A key never seen has `tat` at or before `now`.
    pub fn spend(self, tat: i64, now: i64) -> Result<i64, i64> {
        let next = tat.max(now) + self.interval;
        if next - now <= self.tolerance {
            Ok(next)
        } else {
            Err(next - self.tolerance - now)
        }
    }

    /// A unit spent whether one is left or not, running into debt by at most
    /// `overdraft` beyond the tolerance.
    pub fn force(self, tat: i64, now: i64, overdraft: i64) -> i64 {
        (tat.max(now) + self.interval).min(now + self.tolerance + overdraft)
    }

    /// A unit given back.
    pub fn refund(self, tat: i64, now: i64) -> i64 {
        (tat - self.interval).max(now)
    }
}

/// See [`Store::spend_rate`].
async fn spend_rate_in(
    conn: &mut AnyConnection,
    limit: &str,
    key: &str,
    rate: Rate,
    now: i64,
) -> Result<Result<(), i64>, StoreError> {
    let spent = sqlx::query(
        "INSERT INTO rate_limits (limit_name, limit_key, tat, expires_at) VALUES ($1, $2, $3 + $4, $3 + $4)
         ON CONFLICT (limit_name, limit_key) DO UPDATE
            SET tat = GREATEST(rate_limits.tat, $3) + $4, expires_at = GREATEST(rate_limits.tat, $3) + $4
          WHERE GREATEST(rate_limits.tat, $3) + $4 - $3 <= $5
         RETURNING tat",
    )
    .bind(limit)
    .bind(key)
    .bind(now)
    .bind(rate.interval)
    .bind(rate.tolerance)
    .fetch_optional(&mut *conn)
    .await?;
    if spent.is_some() {
        return Ok(Ok(()));
    }
    // Refused: how long for is read apart (a refusal is the rarer case).
    let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE limit_name = $1 AND limit_key = $2")
        .bind(limit)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    // A unit that came back in between is not taken here: wait a moment.
    Ok(Err(rate.spend(tat.unwrap_or(now), now).err().unwrap_or(1)))
}

impl Store {
    /// Spends a unit of `rate` for (`limit`, `key`), or says how long until
    /// one is back (ms). PostgreSQL only, as every method here.
    pub async fn spend_rate(
        &self,
        limit: &str,
        key: &str,
        rate: Rate,
        now: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let _timer = DatabaseTimer::start("spend_rate");
        spend_rate_in(&mut *self.acquire().await?, limit, key, rate, now).await
    }

    /// [`Store::spend_rate`] keyed by the presented token's session, on the
    /// connection its read kept: the pool may have none to spare for a
    /// request that holds one.
    pub async fn spend_session_rate(
        &self,
        presented: &mut PresentedToken,
        limit: &str,
        rate: Rate,
        now: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let _timer = DatabaseTimer::start("spend_session_rate");
        let session = presented.session.id.as_str();
        match &mut presented.conn {
            Some(conn) => spend_rate_in(conn, limit, session, rate, now).await,
            None => self.spend_rate(limit, session, rate, now).await,
        }
    }

    /// Spends a unit of `rate` whether one is left or not (see [`Rate::force`]).
    pub async fn force_rate(
        &self,
        limit: &str,
        key: &str,
        rate: Rate,
        now: i64,
        overdraft: i64,
    ) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("force_rate");
        sqlx::query(
            "INSERT INTO rate_limits (limit_name, limit_key, tat, expires_at) VALUES ($1, $2, $3 + $4, $3 + $4)
             ON CONFLICT (limit_name, limit_key) DO UPDATE
                SET tat = LEAST(GREATEST(rate_limits.tat, $3) + $4, $3 + $5 + $6),
                    expires_at = LEAST(GREATEST(rate_limits.tat, $3) + $4, $3 + $5 + $6)",
        )
        .bind(limit)
        .bind(key)
        .bind(now)
        .bind(rate.interval)
        .bind(rate.tolerance)
        .bind(overdraft)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a unit of `rate` back to (`limit`, `key`).
    pub async fn refund_rate(&self, limit: &str, key: &str, rate: Rate, now: i64) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("refund_rate");
        sqlx::query(
            "UPDATE rate_limits SET tat = GREATEST(tat - $3, $4), expires_at = GREATEST(tat - $3, $4)
              WHERE limit_name = $1 AND limit_key = $2",
        )
        .bind(limit)
        .bind(key)
        .bind(rate.interval)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The time from which the turn (`limit`, `key`) may be taken: the one
    /// held, or else a new one from `from` until `until`.
    pub async fn hold_turn(&self, limit: &str, key: &str, from: i64, until: i64, now: i64) -> Result<i64, StoreError> {
        let _timer = DatabaseTimer::start("hold_turn");
        let row = sqlx::query(
            "INSERT INTO rate_limits (limit_name, limit_key, tat, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (limit_name, limit_key) DO UPDATE
                SET tat = CASE WHEN rate_limits.expires_at <= $5 THEN EXCLUDED.tat ELSE rate_limits.tat END,
                    expires_at = CASE WHEN rate_limits.expires_at <= $5 THEN EXCLUDED.expires_at
                                      ELSE rate_limits.expires_at END
             RETURNING tat",
        )
        .bind(limit)
        .bind(key)
        .bind(from)
        .bind(until)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("tat")?)
    }

    /// Takes the turn (`limit`, `key`) if its time has come and not passed;
    /// whether it did. Two instances cannot both take it.
    pub async fn take_turn(&self, limit: &str, key: &str, now: i64) -> Result<bool, StoreError> {
        let _timer = DatabaseTimer::start("take_turn");
        let taken = sqlx::query(
            "DELETE FROM rate_limits WHERE limit_name = $1 AND limit_key = $2 AND tat <= $3 AND expires_at > $3
             RETURNING tat",
        )
        .bind(limit)
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Deletes the rows that say nothing any more; how many.
    pub async fn delete_expired_rate_limits(&self, now: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("delete_expired_rate_limits");
        let done = sqlx::query("DELETE FROM rate_limits WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_units_at_once_then_one_per_interval() {
        let rate = Rate::new(3, 60);
        assert_eq!(
            rate,
            Rate {
                interval: 20_000,
                tolerance: 60_000
            }
        );
        let mut tat = 0;
        for _ in 0..3 {
            tat = rate.spend(tat, 1_000).unwrap();
        }
        assert_eq!(rate.spend(tat, 1_000), Err(20_000));
        assert_eq!(rate.spend(tat, 11_000), Err(10_000));
        assert!(rate.spend(tat, 21_000).is_ok());
    }

    #[test]
    fn a_refund_gives_one_unit_back_and_never_credit() {
        let rate = Rate::new(2, 10);
        let tat = rate.spend(rate.spend(0, 0).unwrap(), 0).unwrap();
        assert!(rate.spend(tat, 0).is_err());
        let refunded = rate.refund(tat, 0);
        assert!(rate.spend(refunded, 0).is_ok());
        assert_eq!(rate.refund(0, 500), 500, "nothing to give back");
    }

    #[test]
    fn forced_units_run_into_debt_up_to_the_overdraft() {
        let rate = Rate::new(1, 10);
        let tat = rate.force(rate.force(0, 0, 30_000), 0, 30_000);
        assert_eq!(tat, 20_000);
        let capped = (0..10).fold(tat, |tat, _| rate.force(tat, 0, 30_000));
        assert_eq!(capped, 40_000, "tolerance and overdraft");
        assert_eq!(rate.spend(capped, 0), Err(40_000));
    }

    #[test]
    fn absurd_periods_are_cut_short_of_overflow() {
        let rate = Rate::new(1, u64::MAX);
        assert_eq!(rate.tolerance, LONGEST_PERIOD_MS);
        assert!(rate.spend(rate.spend(0, i64::from(u32::MAX)).unwrap(), 0).is_err());
        assert_eq!(Rate::new(1000, 1).interval, 1);
    }
}

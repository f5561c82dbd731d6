//! Refresh tokens as presented: reading one with its session
//! ([`Store::presented_token`]) and the conditional write of a rotation
//! ([`Store::claim`]). Which of these a presented token calls for is the
//! core's decision (`auth::rotation`); the store only reads and writes.

use sqlx::any::AnyArguments;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::sessions::{session_in, SESSION_COLUMNS};
use super::{Backend, SessionRecord, Store, StoreError};
use crate::metrics::DatabaseTimer;

/// A presented token `t` with its session `s`, user `u` and as `c` its
/// successor if it has one, else itself: the session's newest token while `t`
/// or its successor is current, which is all a rotation or a page load accepts
/// without a closer look.
const BY_TOKEN: &str = "FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
     JOIN refresh_tokens c ON c.hash = COALESCE(t.successor_hash, t.hash)";

/// Where a presented refresh token stands in its session's chain of tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// When it was rotated; `None` while it is the session's current token.
    pub rotated_at: Option<i64>,
    /// Its successor, sealed so that only this token's holder can open it.
    /// Written together with `rotated_at`.
    pub successor_sealed: Option<String>,
    /// When its successor was rotated in turn.
    pub successor_rotated_at: Option<i64>,
}

/// A refresh token as presented: its session, exact as of the read, and
/// where the token stands. On PostgreSQL it keeps the connection it was read
/// on, so that a claim that follows is one more statement there rather than
/// another acquire (sqlx pings a pooled connection on every acquire and
/// release, and each is a round trip). Give the connection back with
/// [`PresentedToken::into_parts`] (or drop the value) before waiting on
/// anything that needs the pool's connections, `Store::close` included.
pub struct PresentedToken {
    pub session: SessionRecord,
    pub token: TokenState,
    hash: String,
    pub(super) conn: Option<PoolConnection<Any>>,
}

impl PresentedToken {
    /// The session and the token's state, giving back the connection the read
    /// kept: whatever follows, other than a claim, takes its own.
    pub fn into_parts(self) -> (SessionRecord, TokenState) {
        (self.session, self.token)
    }
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("session", &self.session)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The successor to store when a token is rotated.
#[derive(Debug, Clone)]
pub struct Successor {
    pub hash: String,
    pub sealed: String,
}

impl Store {
    /// The refresh token whose hash is `hash`, with its session, whether
    /// current or not: what a refresh, a page load and a logout start from.
    /// Nothing is written; what to do with it is the core's decision.
    pub async fn presented_token(&self, hash: &str) -> Result<Option<PresentedToken>, StoreError> {
        let _timer = DatabaseTimer::start("presented_token");
        let mut conn = self.acquire().await?;
        let Some(mut presented) = presented_in(&mut conn, hash).await? else {
            return Ok(None);
        };
        if presented.token.successor_rotated_at.is_some() {
            // The joined last use and idle expiry are the successor's, which
            // is no longer the newest token: read the session's own.
            if let Some(session) = session_in(&mut conn, &presented.session.id).await? {
                presented.session = session;
            }
        }
        if self.backend == Backend::Postgres {
            presented.conn = Some(conn);
        }
        Ok(Some(presented))
    }

    /// Rotates a presented current token: marks it rotated into `successor`
    /// and stores the successor, idle until `idle_expires_at`, as one
    /// conditional write. Only the first presenter wins, and only while the
    /// token is not idle and its session neither revoked nor expired by the
    /// database's own rows: whatever changed since the read is settled here.
    /// The session as rotated if the claim was won, else `None` (nothing
    /// written).
    ///
    /// On PostgreSQL one statement on the connection the read used; on
    /// SQLite, which has no writing CTEs, a batch on the writing connection
    /// (the read's connection has gone back, so queued writers never hold the
    /// connections readers need).
    pub async fn claim(
        &self,
        presented: PresentedToken,
        successor: &Successor,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let _timer = DatabaseTimer::start("claim");
        let claim = Claim {
            presented: &presented.hash,
            successor,
            now,
            idle_expires_at,
        };
        let won = match (self.backend, presented.conn) {
            (Backend::Postgres, Some(mut conn)) => claim.in_one_statement(&mut conn).await?,
            (Backend::Postgres, None) => claim.in_one_statement(&mut *self.acquire().await?).await?,
            (Backend::Sqlite, _) => claim.in_one_batch(self).await?,
        };
        Ok(won.then_some(SessionRecord {
            last_used_at: now,
            idle_expires_at,
            ..presented.session
        }))
    }

    /// Dates the rotation of the token of `hash` made at `asked_at` by when
    /// it committed, `committed_at`. Nothing if it was rotated otherwise.
    pub async fn date_rotation(&self, hash: &str, asked_at: i64, committed_at: i64) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("date_rotation");
        let date = sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE hash = $2 AND rotated_at = $3")
            .bind(committed_at)
            .bind(hash)
            .bind(asked_at);
        self.write(date).await?;
        Ok(())
    }
}

/// Marks token `$4` rotated at `$1` into `$2` (sealed: `$3`) if it is current,
/// not idle past `$1`, and its session is neither revoked nor expired. Only
/// the first presenter of a current token wins it. The session's row is read,
/// not locked: on PostgreSQL a revocation committing while the claim runs is
/// ordered after it, as if it had come a moment later, and the tokens just
/// handed out belong to a revoked session, which every check refuses. A
/// macro, so the statements below can `concat!` it.
macro_rules! claim {
    () => {
        "UPDATE refresh_tokens SET rotated_at = $1, successor_hash = $2, successor_sealed = $3
     WHERE hash = $4 AND rotated_at IS NULL AND idle_expires_at > $1
       AND EXISTS (SELECT 1 FROM sessions s
                   WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL AND s.expires_at > $1)"
    };
}

/// PostgreSQL: the claim and the successor (idle until `$5`) in one
/// statement, so one round trip and its own transaction.
const CLAIM_POSTGRES: &str = concat!(
    "WITH claimed AS (",
    claim!(),
    " RETURNING session_id)
     INSERT INTO refresh_tokens (hash, session_id, issued_at, idle_expires_at)
     SELECT $2, session_id, $1, $5 FROM claimed"
);

/// SQLite: the claim and the successor as one batch. The successor is
/// inserted only beside a token this claim marked.
const CLAIM_SQLITE: &str = concat!(
    claim!(),
    "; INSERT INTO refresh_tokens (hash, session_id, issued_at, idle_expires_at)
     SELECT $2, session_id, $1, $5 FROM refresh_tokens WHERE hash = $4 AND successor_hash = $2
     RETURNING 1"
);

/// A rotation's writes: the presented token claimed, its successor stored.
struct Claim<'a> {
    presented: &'a str,
    successor: &'a Successor,
    now: i64,
    idle_expires_at: i64,
}

impl Claim<'_> {
    /// `sql` with the claim's parameters bound, owned.
    fn bound(&self, sql: &'static str) -> Query<'static, Any, AnyArguments<'static>> {
        sqlx::query(sql)
            .bind(self.now)
            .bind(self.successor.hash.clone())
            .bind(self.successor.sealed.clone())
            .bind(self.presented.to_owned())
            .bind(self.idle_expires_at)
    }

    /// PostgreSQL: true if the claim was won.
    async fn in_one_statement(&self, conn: &mut AnyConnection) -> Result<bool, StoreError> {
        let done = self.bound(CLAIM_POSTGRES).execute(conn).await?;
        Ok(done.rows_affected() == 1)
    }

    /// SQLite, one transaction on the writing connection: true if the claim
    /// was won.
    async fn in_one_batch(&self, store: &Store) -> Result<bool, StoreError> {
        let inserted = store.write_batch(self.bound(CLAIM_SQLITE)).await?;
        Ok(!inserted.is_empty())
    }
}

async fn presented_in(conn: &mut AnyConnection, hash: &str) -> Result<Option<PresentedToken>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, t.rotated_at AS token_rotated_at, t.successor_sealed,
                CASE WHEN t.successor_hash IS NULL THEN NULL ELSE c.rotated_at END AS successor_rotated_at
         {BY_TOKEN} WHERE t.hash = $1"
    );
    let Some(row) = sqlx::query(&sql).bind(hash).fetch_optional(conn).await? else {
        return Ok(None);
    };
    Ok(Some(PresentedToken {
        session: SessionRecord::from_row(&row)?,
        token: TokenState {
            rotated_at: row.try_get("token_rotated_at")?,
            successor_sealed: row.try_get("successor_sealed")?,
            successor_rotated_at: row.try_get("successor_rotated_at")?,
        },
        hash: hash.to_string(),
        conn: None,
    }))
}

//! Sessions and their refresh tokens, including the atomic rotation
//! ([`Store::rotate_refresh_token`]) that decides between a fresh rotation, a
//! replay inside the grace window and theft.
//!
//! A session's last use and idle expiry are those of its newest token: a
//! rotation writes the claimed token and its successor, never the session.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::audit::{bind_audit, insert_audit_columns, AuditRecord};
use super::{Backend, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionRecord {
    /// When the session ends if nothing else happens: idle timeout or absolute
    /// lifetime, whichever comes first.
    pub fn ends_at(&self) -> i64 {
        self.idle_expires_at.min(self.expires_at)
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.ends_at()
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            role: row.try_get("role")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            idle_expires_at: row.try_get("idle_expires_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            user_agent: row.try_get("user_agent")?,
            ip: row.try_get("ip")?,
        })
    }
}

/// A session's own columns and its user's (`s`, `u`), then its last use and
/// idle expiry from a token row `c` (see [`NEWEST_TOKEN`], [`BY_TOKEN`]).
const SESSION_COLUMNS: &str = "s.id, s.user_id, u.username, u.role, s.created_at, s.expires_at, s.revoked_at, \
     s.user_agent, s.ip, c.issued_at AS last_used_at, c.idle_expires_at";

/// Sessions `s` with their users `u` and their newest tokens `c`. Tokens of one
/// session issued in the same second share their idle expiry (unless the idle
/// timeout was changed within it), so any of its newest will do. Instances
/// whose clocks disagree by a few seconds may pick a token rotated a moment
/// ago: the session's idle expiry is then off by that much.
const NEWEST_TOKEN: &str = "FROM sessions s JOIN users u ON u.id = s.user_id
     JOIN refresh_tokens c ON c.hash = (SELECT hash FROM refresh_tokens
         WHERE session_id = s.id ORDER BY issued_at DESC LIMIT 1)";

/// A presented token `t` with its session `s`, user `u` and as `c` its
/// successor if it has one, else itself: the session's newest token while `t`
/// or its successor is current, which is all a rotation or a page load accepts
/// without a closer look.
const BY_TOKEN: &str = "FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
     JOIN refresh_tokens c ON c.hash = COALESCE(t.successor_hash, t.hash)";

/// A session about to be created, with its first refresh token's hash.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    /// The user's name and role, as the returned [`SessionRecord`] carries them.
    pub username: String,
    pub role: String,
    pub now: i64,
    pub idle_ttl: i64,
    pub max_age: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub token_hash: String,
    /// The password hash the login was checked against: if the user's hash is
    /// no longer this one (a password change committed while the login
    /// hashed), no session is made.
    pub password_hash: String,
}

/// A page load's session, and when the refresh token it was found by was
/// rotated (`None`: the token is current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLookup {
    pub session: SessionRecord,
    pub token_rotated_at: Option<i64>,
}

/// What presenting a refresh token amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now rotated and the successor is current.
    Rotated(SessionRecord),
    /// The token was rotated within the grace window and its successor is still
    /// current: a race between tabs or a retry. Nothing changed; the sealed
    /// successor is handed back.
    Replayed {
        session: SessionRecord,
        successor_sealed: String,
    },
    /// An already-rotated token outside the grace window, or an older one: the
    /// session has just been revoked.
    Reused(SessionRecord),
    /// The session was already revoked or has expired.
    Ended(SessionRecord),
    /// `admit` refused the session; nothing changed.
    Refused(SessionRecord),
    /// No such token.
    Unknown,
}

/// The clock and lifetimes a rotation applies, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct RotationRules {
    pub now: i64,
    /// How long a rotated token may still be replayed (a race between tabs).
    pub grace: i64,
    /// How long the session lives without a refresh.
    pub idle_ttl: i64,
}

/// The successor to store when a token is rotated.
#[derive(Debug, Clone)]
pub struct Successor {
    pub hash: String,
    pub sealed: String,
}

impl Store {
    /// Creates the session with its first refresh token and records `event`
    /// (the login or registration that started it) in the same transaction:
    /// a session never exists without its audit row, and it is one commit.
    /// `None`, writing nothing, if the user's password hash is no longer
    /// `new.password_hash`: a password change revokes every session, so a
    /// login checked against the old password must not add one after it.
    pub async fn create_session(
        &self,
        new: &NewSession,
        event: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let session = SessionRecord {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            username: new.username.clone(),
            role: new.role.clone(),
            created_at: new.now,
            last_used_at: new.now,
            idle_expires_at: new.now + new.idle_ttl,
            expires_at: new.now + new.max_age,
            revoked_at: None,
            user_agent: new.user_agent.clone(),
            ip: new.ip.clone(),
        };
        let statement = match self.backend {
            Backend::Postgres => CREATE_SESSION_POSTGRES,
            Backend::Sqlite => CREATE_SESSION_SQLITE,
        };
        let query = sqlx::query(statement)
            .bind(session.id.clone())
            .bind(session.user_id.clone())
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(session.user_agent.clone())
            .bind(session.ip.clone())
            .bind(new.token_hash.clone())
            .bind(session.idle_expires_at);
        let insert = bind_audit(query, event.clone()).bind(new.password_hash.clone());
        let created = !self.write_batch(insert).await?.is_empty();
        Ok(created.then_some(session))
    }

    /// Presents the refresh token whose hash is `hash`: asks `admit` whether
    /// its session may refresh now (a rate limit), then rotates the token if
    /// current, recognises a replay inside `grace` seconds, or revokes the
    /// session when an old token comes back.
    ///
    /// The token and its session are read first, so that a refusal writes
    /// nothing and the write lock (all of SQLite's writers share one) is held
    /// only for the writes. The claim then settles what may have changed in
    /// between: only the first presenter of a current token wins it, and only
    /// while its session is live. A token that could not be claimed is decided
    /// in a write transaction of its own ([`decide_unclaimed`]), on the
    /// session as it then stands.
    ///
    /// The claim and the successor are one round trip, their own transaction:
    /// on PostgreSQL one statement on the connection the read used (sqlx
    /// pings a pooled connection on every acquire and release, and each
    /// statement is a round trip); on SQLite, which has no writing CTEs, a
    /// batch on the writing connection, after the read's connection has gone
    /// back, so queued writers never hold the connections readers need.
    pub async fn rotate_refresh_token(
        &self,
        hash: &str,
        successor: &Successor,
        rules: RotationRules,
        admit: impl FnOnce(&SessionRecord) -> bool,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.acquire().await?;
        let Some(presented) = presented_in(&mut conn, hash).await? else {
            return Ok(Rotation::Unknown);
        };
        if !admit(&presented.session) {
            return Ok(Rotation::Refused(presented.session));
        }
        let session = presented.session;
        // Only a current token can be claimed; a rotated one is decided below,
        // where its session's idle expiry is known for certain.
        let current = presented.token_rotated_at.is_none();
        let ended = if current {
            !session.is_live(rules.now)
        } else {
            session.revoked_at.is_some() || rules.now >= session.expires_at
        };
        if ended {
            return Ok(Rotation::Ended(session));
        }
        let claim = Claim {
            presented: hash,
            successor,
            now: rules.now,
            idle_expires_at: rules.now + rules.idle_ttl,
        };
        let rotated = |session: SessionRecord| {
            Rotation::Rotated(SessionRecord {
                last_used_at: claim.now,
                idle_expires_at: claim.idle_expires_at,
                ..session
            })
        };
        let mut tx = match self.backend() {
            Backend::Postgres => {
                if current && claim.in_one_statement(&mut conn).await? {
                    return Ok(rotated(session));
                }
                self.begin_write_on(Some(conn)).await?
            }
            Backend::Sqlite => {
                drop(conn);
                if current && claim.in_one_batch(self).await? {
                    return Ok(rotated(session));
                }
                self.begin_write().await?
            }
        };
        let outcome = decide_unclaimed(&mut tx, hash, rules, session).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The live session a refresh token belongs to, without rotating it: what a
    /// page load uses to know who is asking. A token rotated less than `grace`
    /// seconds ago still counts (another tab may have just refreshed).
    pub async fn session_for_page(&self, hash: &str, now: i64, grace: i64) -> Result<Option<PageLookup>, StoreError> {
        let Some(found) = presented_in(&mut *self.acquire().await?, hash).await? else {
            return Ok(None);
        };
        let counts = found.token_rotated_at.is_none_or(|at| at >= now - grace) && found.session.is_live(now);
        Ok(counts.then_some(PageLookup {
            session: found.session,
            token_rotated_at: found.token_rotated_at,
        }))
    }

    /// The session a refresh token (current or not) belongs to. Its last use
    /// and idle expiry are exact while the token or its successor is current.
    pub async fn session_by_token(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let found = presented_in(&mut *self.acquire().await?, hash).await?;
        Ok(found.map(|found| found.session))
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} {NEWEST_TOKEN} WHERE s.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
    }

    /// A user's live sessions, most recently used first.
    pub async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} {NEWEST_TOKEN}
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND c.idle_expires_at > $2 AND s.expires_at > $2
             ORDER BY c.issued_at DESC, s.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).bind(now).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(SessionRecord::from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes one session; true if it was live until now.
    pub async fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let revoke = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id);
        let done = self.write(revoke).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes every unrevoked session of a user; returns their ids.
    pub async fn revoke_user_sessions(&self, user_id: &str, reason: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        // No session id is empty: none is kept.
        let ids = revoke_user_sessions_in(&mut tx, user_id, "", reason, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Sets a new password hash and revokes every other session of the user, in
    /// one transaction: never a new password with the old sessions still live.
    /// Returns the revoked session ids.
    pub async fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let ids = revoke_user_sessions_in(&mut tx, user_id, keep, "password_changed", now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Deletes at most `limit` of the sessions that ended before
    /// `ended_before` (revoked, past their absolute age, or idle: no token of
    /// theirs was still live then), and with them their refresh tokens. How
    /// many sessions it deleted.
    pub async fn delete_ended_sessions(&self, ended_before: i64, limit: i64) -> Result<u64, StoreError> {
        // Found by a read, outside the write lock: nothing indexes "ended", so
        // the search may read every session. An ended session never comes back
        // (a revocation stays, and a token past its idle expiry cannot be
        // rotated), so the ones found are still ended when they are deleted.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s
             WHERE s.revoked_at < $1 OR s.expires_at < $1
                OR NOT EXISTS (SELECT 1 FROM refresh_tokens t
                               WHERE t.session_id = s.id AND t.idle_expires_at >= $1)
             LIMIT $2",
        )
        .bind(ended_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!("DELETE FROM sessions WHERE id IN ({})", placeholders.join(", "));
        let delete = ids.iter().fold(sqlx::query(&sql), |query, id| query.bind(id));
        Ok(self.write(delete).await?.rows_affected())
    }

    /// Sessions revoked after `since`, with the time: what an instance loads at
    /// start so access tokens of recently revoked sessions stay refused.
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, revoked_at FROM sessions WHERE revoked_at > $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("revoked_at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

async fn revoke_user_sessions_in(
    tx: &mut AnyConnection,
    user_id: &str,
    keep: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    // The ids come from the update itself: on PostgreSQL a session committed
    // between a separate read and the update would be revoked in the database
    // but missing from the list, so its tokens and sockets would live on.
    let rows = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4
         RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .bind(keep)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Into::into)
}

/// The three inserts of a new session: the session, its first refresh token,
/// and the audit row of what started it (`$9` to `$17`, bound by
/// [`bind_audit`]), each selecting from `$from` so that none is made unless
/// the user still has the password hash `$18`. Macros, so both backends'
/// statements below are made of the same text.
macro_rules! insert_new_session {
    ($from:literal) => {
        concat!(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent, ip) SELECT $1, $2, $3, $4, $5, $6 FROM ",
            $from
        )
    };
}
macro_rules! insert_first_token {
    ($from:literal) => {
        concat!(
            "INSERT INTO refresh_tokens (hash, session_id, issued_at, idle_expires_at) SELECT $7, $1, $3, $8 FROM ",
            $from
        )
    };
}
macro_rules! insert_session_audit {
    ($from:literal) => {
        concat!(insert_audit_columns!(), " SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM ", $from)
    };
}

/// The three inserts written together, returning a row if the session was
/// made. Each statement is a round trip, to the server or to the SQLite
/// connection's thread: PostgreSQL takes them as one statement (writing CTEs),
/// SQLite as one batch (`Store::write_batch`).
///
/// On PostgreSQL the user's row is share-locked while the session is made:
/// a password change already under way is waited for (and then the hash no
/// longer matches), and one that comes later waits for this commit, so its
/// revocation sees the new session. SQLite's single writer orders them.
const CREATE_SESSION_POSTGRES: &str = concat!(
    "WITH u AS (SELECT 1 FROM users WHERE id = $2 AND password_hash = $18 FOR SHARE), s AS (",
    insert_new_session!("u"),
    " RETURNING id), t AS (",
    insert_first_token!("s"),
    ") ",
    insert_session_audit!("s"),
    " RETURNING 1"
);
const CREATE_SESSION_SQLITE: &str = concat!(
    insert_new_session!("users WHERE id = $2 AND password_hash = $18"),
    "; ",
    insert_first_token!("sessions WHERE id = $1"),
    "; ",
    insert_session_audit!("sessions WHERE id = $1"),
    " RETURNING 1"
);

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

/// A presented refresh token's session, and when the token was rotated.
struct Presented {
    session: SessionRecord,
    token_rotated_at: Option<i64>,
}

async fn presented_in(conn: &mut AnyConnection, hash: &str) -> Result<Option<Presented>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS}, t.rotated_at AS token_rotated_at {BY_TOKEN} WHERE t.hash = $1");
    let Some(row) = sqlx::query(&sql).bind(hash).fetch_optional(conn).await? else {
        return Ok(None);
    };
    Ok(Some(Presented {
        session: SessionRecord::from_row(&row)?,
        token_rotated_at: row.try_get("token_rotated_at")?,
    }))
}

async fn session_in(tx: &mut AnyConnection, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} {NEWEST_TOKEN} WHERE s.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await?;
    Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
}

/// What presenting a token that could not be claimed amounts to, decided on
/// the session as it now stands (`read` a moment ago): its end, a replay
/// inside the grace window, or reuse, which revokes it.
async fn decide_unclaimed(
    tx: &mut AnyConnection,
    hash: &str,
    rules: RotationRules,
    read: SessionRecord,
) -> Result<Rotation, StoreError> {
    let RotationRules { now, grace, .. } = rules;
    let session = session_in(tx, &read.id).await?.unwrap_or(read);
    if !session.is_live(now) {
        return Ok(Rotation::Ended(session));
    }
    let row = sqlx::query(
        "SELECT t.rotated_at, t.successor_sealed, n.rotated_at AS successor_rotated_at
         FROM refresh_tokens t LEFT JOIN refresh_tokens n ON n.hash = t.successor_hash
         WHERE t.hash = $1",
    )
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    let rotated_at: Option<i64> = row.try_get("rotated_at")?;
    let sealed: Option<String> = row.try_get("successor_sealed")?;
    let successor_rotated_at: Option<i64> = row.try_get("successor_rotated_at")?;
    match (rotated_at, sealed, successor_rotated_at) {
        // Still current, yet the claim found it idle or its session ended:
        // only where instances' clocks disagree. Refused.
        (None, _, _) => return Ok(Rotation::Ended(session)),
        (Some(rotated_at), Some(successor_sealed), None) if now - rotated_at <= grace => {
            return Ok(Rotation::Replayed {
                session,
                successor_sealed,
            });
        }
        _ => {}
    }
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'refresh_reuse' WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&session.id)
    .execute(&mut *tx)
    .await?;
    Ok(Rotation::Reused(SessionRecord {
        revoked_at: Some(now),
        ..session
    }))
}

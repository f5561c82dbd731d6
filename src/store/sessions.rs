//! Sessions and their refresh tokens, including the atomic rotation
//! ([`Store::rotate_refresh_token`]) that decides between a fresh rotation, a
//! replay inside the grace window and theft.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

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

const SESSION_COLUMNS: &str = "s.id, s.user_id, u.username, u.role, s.created_at, s.last_used_at, \
     s.idle_expires_at, s.expires_at, s.revoked_at, s.user_agent, s.ip";

/// A session about to be created, with its first refresh token's hash.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub now: i64,
    pub idle_ttl: i64,
    pub max_age: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub token_hash: String,
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
    pub async fn create_session(&self, new: &NewSession) -> Result<SessionRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, expires_at, user_agent, ip)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7)",
        )
        .bind(&new.id)
        .bind(&new.user_id)
        .bind(new.now)
        .bind(new.now + new.idle_ttl)
        .bind(new.now + new.max_age)
        .bind(&new.user_agent)
        .bind(&new.ip)
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES ($1, $2, $3)")
            .bind(&new.token_hash)
            .bind(&new.id)
            .bind(new.now)
            .execute(&mut **tx)
            .await?;
        let session = session_in(&mut tx, &new.id).await?.ok_or(StoreError::Missing)?;
        tx.commit().await?;
        Ok(session)
    }

    /// Presents the refresh token whose hash is `hash`: asks `admit` whether
    /// its session may refresh now (a rate limit), then rotates the token if
    /// current, recognises a replay inside `grace` seconds, or revokes the
    /// session when an old token comes back.
    ///
    /// The token and its session are read before the write transaction, so
    /// the write lock (all of SQLite's writers share one) is held only for the
    /// writes. What may change in between is settled inside it: only the first
    /// presenter of a current token claims it, and the session is extended
    /// only while still live, else nothing is written.
    ///
    /// On PostgreSQL the read and the writes share one connection: each
    /// acquire and release of a pooled connection costs a round trip (sqlx
    /// pings). On SQLite the connection goes back before queueing for the
    /// write turn, so queued writers never hold the connections readers need.
    pub async fn rotate_refresh_token(
        &self,
        hash: &str,
        successor: &Successor,
        rules: RotationRules,
        admit: impl FnOnce(&SessionRecord) -> bool,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.acquire().await?;
        let Some(session) = session_by_token_in(&mut conn, hash).await? else {
            return Ok(Rotation::Unknown);
        };
        if !admit(&session) {
            return Ok(Rotation::Refused(session));
        }
        if !session.is_live(rules.now) {
            return Ok(Rotation::Ended(session));
        }
        let held = (self.backend() == Backend::Postgres).then_some(conn);
        let mut tx = self.begin_write_on(held).await?;
        let outcome = rotate_in(&mut tx, hash, successor, rules, session).await?;
        if let Rotation::Ended(_) = outcome {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcome)
    }

    /// The live session a refresh token belongs to, without rotating it: what a
    /// page load uses to know who is asking. A token rotated less than `grace`
    /// seconds ago still counts (another tab may have just refreshed).
    pub async fn session_for_page(&self, hash: &str, now: i64, grace: i64) -> Result<Option<PageLookup>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, t.rotated_at AS token_rotated_at FROM refresh_tokens t
             JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
             WHERE t.hash = $1 AND (t.rotated_at IS NULL OR t.rotated_at >= $2)"
        );
        let row = sqlx::query(&sql).bind(hash).bind(now - grace).fetch_optional(&self.pool).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let found = PageLookup {
            session: SessionRecord::from_row(&row)?,
            token_rotated_at: row.try_get("token_rotated_at")?,
        };
        Ok(found.session.is_live(now).then_some(found))
    }

    /// The session a refresh token (current or not) belongs to.
    pub async fn session_by_token(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        session_by_token_in(&mut *self.acquire().await?, hash).await
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
    }

    /// A user's live sessions, most recently used first.
    pub async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.idle_expires_at > $2 AND s.expires_at > $2
             ORDER BY s.last_used_at DESC, s.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).bind(now).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(SessionRecord::from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes one session; true if it was live until now.
    pub async fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
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
            .execute(&mut **tx)
            .await?;
        let ids = revoke_user_sessions_in(&mut tx, user_id, keep, "password_changed", now).await?;
        tx.commit().await?;
        Ok(ids)
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
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    keep: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2")
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut **tx)
        .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .bind(keep)
    .execute(&mut **tx)
    .await?;
    Ok(ids)
}

async fn session_by_token_in(conn: &mut AnyConnection, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM refresh_tokens t
         JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
         WHERE t.hash = $1"
    );
    let row = sqlx::query(&sql).bind(hash).fetch_optional(conn).await?;
    Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
}

async fn session_in(tx: &mut Transaction<'static, Any>, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
}

/// The writes of a rotation, for a session read live a moment ago.
async fn rotate_in(
    tx: &mut Transaction<'static, Any>,
    hash: &str,
    successor: &Successor,
    rules: RotationRules,
    session: SessionRecord,
) -> Result<Rotation, StoreError> {
    let RotationRules { now, grace, idle_ttl } = rules;
    // Only the first presenter of a current token wins this update.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = $1, successor_hash = $2, successor_sealed = $3
         WHERE hash = $4 AND rotated_at IS NULL",
    )
    .bind(now)
    .bind(&successor.hash)
    .bind(&successor.sealed)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    if claimed.rows_affected() == 1 {
        let idle_expires_at = now + idle_ttl;
        // Revoked or expired since it was read: the caller rolls back.
        let extended = sqlx::query(
            "UPDATE sessions SET last_used_at = $1, idle_expires_at = $2
             WHERE id = $3 AND revoked_at IS NULL AND idle_expires_at > $1 AND expires_at > $1",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(&session.id)
        .execute(&mut **tx)
        .await?;
        if extended.rows_affected() != 1 {
            return ended_in(tx, session).await;
        }
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES ($1, $2, $3)")
            .bind(&successor.hash)
            .bind(&session.id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        return Ok(Rotation::Rotated(SessionRecord {
            last_used_at: now,
            idle_expires_at,
            ..session
        }));
    }

    // Already rotated (possibly a moment ago by a concurrent request).
    let row = sqlx::query(
        "SELECT t.rotated_at, t.successor_sealed, n.rotated_at AS successor_rotated_at, s.revoked_at
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         LEFT JOIN refresh_tokens n ON n.hash = t.successor_hash
         WHERE t.hash = $1",
    )
    .bind(hash)
    .fetch_one(&mut **tx)
    .await?;
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
        return ended_in(tx, session).await;
    }
    let rotated_at: Option<i64> = row.try_get("rotated_at")?;
    let sealed: Option<String> = row.try_get("successor_sealed")?;
    let successor_rotated_at: Option<i64> = row.try_get("successor_rotated_at")?;
    if let (Some(rotated_at), Some(successor_sealed), None) = (rotated_at, sealed, successor_rotated_at) {
        if now - rotated_at <= grace {
            return Ok(Rotation::Replayed {
                session,
                successor_sealed,
            });
        }
    }
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'refresh_reuse' WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&session.id)
    .execute(&mut **tx)
    .await?;
    Ok(Rotation::Reused(SessionRecord {
        revoked_at: Some(now),
        ..session
    }))
}

/// The session as it now stands, for a rotation that found it ended after
/// reading it live.
async fn ended_in(tx: &mut Transaction<'static, Any>, read: SessionRecord) -> Result<Rotation, StoreError> {
    let current = session_in(tx, &read.id).await?;
    Ok(Rotation::Ended(current.unwrap_or(read)))
}

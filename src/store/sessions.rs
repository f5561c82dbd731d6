//! Sessions: creating them with their first refresh token, reading them,
//! revoking them, deleting ended ones. A session's refresh tokens, and their
//! rotation, are in `refresh_tokens`.
//!
//! A session's last use and idle expiry are those of its newest token: a
//! rotation writes the claimed token and its successor, never the session.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::audit::{bind_audit, insert_audit, insert_audit_columns, AuditRecord};
use super::{Backend, Store, StoreError};
use crate::metrics::DatabaseTimer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub role: String,
    /// The user's e-mail address, which access tokens carry: the verified
    /// one, else the one asked for (then `email_verified` is false).
    pub email: Option<String>,
    pub email_verified: bool,
    /// How the user proved who they are, space-separated (`pwd`,
    /// `webauthn`, …), and when: the access token's `amr` and `auth_time`.
    pub amr: String,
    pub auth_time: i64,
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

    /// A live session of user `u` ("alice"), created at 0, for unit tests
    /// to vary.
    #[cfg(test)]
    pub fn sample() -> Self {
        Self {
            id: "s".into(),
            user_id: "u".into(),
            username: "alice".into(),
            role: "user".into(),
            email: None,
            email_verified: false,
            amr: "pwd".into(),
            auth_time: 0,
            created_at: 0,
            last_used_at: 0,
            idle_expires_at: 1_000,
            expires_at: 1_000,
            revoked_at: None,
            user_agent: None,
            ip: None,
        }
    }

    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let created_at: i64 = row.try_get("created_at")?;
        let verified: Option<String> = row.try_get("email")?;
        let pending: Option<String> = row.try_get("pending_email")?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            role: row.try_get("role")?,
            email_verified: verified.is_some(),
            email: verified.or(pending),
            amr: row.try_get("amr")?,
            // Unset only on rows written around the server (imports, tests):
            // the session was authenticated when it was made.
            auth_time: row.try_get::<Option<i64>, _>("auth_time")?.unwrap_or(created_at),
            created_at,
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
/// idle expiry from a token row `c` (see [`NEWEST_TOKEN`], and `BY_TOKEN` in
/// `refresh_tokens`).
pub(super) const SESSION_COLUMNS: &str =
    "s.id, s.user_id, u.username, u.role, u.email, u.pending_email, s.amr, s.auth_time, s.created_at, s.expires_at, s.revoked_at, \
     s.user_agent, s.ip, c.issued_at AS last_used_at, c.idle_expires_at";

/// Sessions `s` with their users `u` and their newest tokens `c`. Tokens of one
/// session issued in the same second share their idle expiry (unless the idle
/// timeout was changed within it), so any of its newest will do. Instances
/// whose clocks disagree by a few seconds may pick a token rotated a moment
/// ago: the session's idle expiry is then off by that much.
const NEWEST_TOKEN: &str = "FROM sessions s JOIN users u ON u.id = s.user_id
     JOIN refresh_tokens c ON c.hash = (SELECT hash FROM refresh_tokens
         WHERE session_id = s.id ORDER BY issued_at DESC LIMIT 1)";

/// A session about to be created, with its first refresh token's hash.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    /// The user's name, role and address, as the returned [`SessionRecord`] carries them.
    pub username: String,
    pub role: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// How the user proved who they are (see [`SessionRecord::amr`]).
    pub amr: String,
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
    /// The user's live sessions at most, this one included: the least
    /// recently used of the others are revoked to make room.
    pub max_live: i64,
}

/// A session just made, and the sessions revoked to make room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub session: SessionRecord,
    pub evicted: Vec<String>,
}

impl Store {
    /// Creates the session with its first refresh token and records `event`
    /// (the login or registration that started it) in the same transaction:
    /// a session never exists without its audit row. The user's live sessions
    /// beyond `new.max_live` are revoked in that transaction too, the least
    /// recently used first, each with the audit row `evicted` makes of its id:
    /// the cap holds at every commit.
    /// `None`, writing nothing, if the user's password hash is no longer
    /// `new.password_hash`: a password change revokes every session, so a
    /// login checked against the old password must not add one after it.
    pub async fn create_session(
        &self,
        new: &NewSession,
        event: &AuditRecord,
        evicted: impl Fn(&str) -> AuditRecord,
    ) -> Result<Option<CreatedSession>, StoreError> {
        let _timer = DatabaseTimer::start("create_session");
        let session = SessionRecord {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            username: new.username.clone(),
            role: new.role.clone(),
            email: new.email.clone(),
            email_verified: new.email_verified,
            amr: new.amr.clone(),
            auth_time: new.now,
            created_at: new.now,
            last_used_at: new.now,
            idle_expires_at: new.now + new.idle_ttl,
            expires_at: new.now + new.max_age,
            revoked_at: None,
            user_agent: new.user_agent.clone(),
            ip: new.ip.clone(),
        };
        if self.backend == Backend::Sqlite {
            // The usual case, a user with room for one more, is one batch that
            // commits with others (`write_batch`); SQLite's one writer makes
            // its count of live sessions exact.
            let insert =
                bind_new_session(sqlx::query(CREATE_SESSION_WITH_ROOM_SQLITE), new, &session, event).bind(new.max_live);
            if !self.write_batch(insert).await?.is_empty() {
                return Ok(Some(CreatedSession {
                    session,
                    evicted: Vec::new(),
                }));
            }
        }
        let mut tx = self.begin_write().await?;
        // On PostgreSQL the user's row is locked until the commit, so logins
        // of one user make their sessions one after another, each counting
        // what the one before committed; a password change waits for it too,
        // and then revokes the new session. SQLite's one writer orders them.
        let lock = match self.backend {
            Backend::Postgres => "SELECT 1 FROM users WHERE id = $1 AND password_hash = $2 FOR NO KEY UPDATE",
            Backend::Sqlite => "SELECT 1 FROM users WHERE id = $1 AND password_hash = $2",
        };
        let current = sqlx::query(lock)
            .bind(&new.user_id)
            .bind(&new.password_hash)
            .fetch_optional(&mut *tx)
            .await?;
        if current.is_none() {
            return Ok(None);
        }
        let statement = match self.backend {
            Backend::Postgres => CREATE_SESSION_POSTGRES,
            Backend::Sqlite => CREATE_SESSION_SQLITE,
        };
        let created = bind_new_session(sqlx::query(statement), new, &session, event)
            .fetch_all(&mut *tx)
            .await?;
        if created.is_empty() {
            return Ok(None);
        }
        let others = live_session_ids(&mut tx, &new.user_id, &new.id, new.now).await?;
        let keep = usize::try_from(new.max_live.saturating_sub(1)).unwrap_or(0);
        let over: Vec<String> = others.into_iter().skip(keep).collect();
        let evicted_ids = revoke_sessions_in(&mut tx, &over, "evicted", new.now).await?;
        for id in &evicted_ids {
            insert_audit(&evicted(id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(CreatedSession {
            session,
            evicted: evicted_ids,
        }))
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let _timer = DatabaseTimer::start("session");
        session_in(&mut *self.acquire().await?, id).await
    }

    /// The session's user proved who they are again at `now`, by the methods
    /// `amr` (space-separated): its `auth_time` and `amr` change. The session
    /// as it is now, or `None` if it has been revoked.
    pub async fn session_authenticated(&self, id: &str, amr: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let done = self
            .write(
                sqlx::query("UPDATE sessions SET amr = $1, auth_time = $2 WHERE id = $3 AND revoked_at IS NULL")
                    .bind(amr.to_string())
                    .bind(now)
                    .bind(id.to_string()),
            )
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.session(id).await
    }

    /// At most `limit` of a user's live sessions, newest first (by creation,
    /// then id: an order that a session's use does not change), starting after
    /// the session `after` names by its `(created_at, id)`.
    pub async fn live_sessions(
        &self,
        user_id: &str,
        now: i64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let _timer = DatabaseTimer::start("live_sessions");
        // Without `after`, from before any session there is.
        let (created_at, id) = after.unwrap_or((i64::MAX, ""));
        let sql = format!(
            "SELECT {SESSION_COLUMNS} {NEWEST_TOKEN}
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND c.idle_expires_at > $2 AND s.expires_at > $2
               AND (s.created_at < $3 OR (s.created_at = $3 AND s.id < $4))
             ORDER BY s.created_at DESC, s.id DESC
             LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(now)
            .bind(created_at)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(SessionRecord::from_row).collect::<Result<_, _>>()?)
    }

    /// How many sessions are live at `now`, every user's (for the
    /// `gatehouse_live_sessions` gauge).
    pub async fn count_live_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("count_live_sessions");
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions s
             JOIN refresh_tokens c ON c.hash = (SELECT hash FROM refresh_tokens
                 WHERE session_id = s.id ORDER BY issued_at DESC LIMIT 1)
             WHERE s.revoked_at IS NULL AND c.idle_expires_at > $1 AND s.expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Revokes one session; true if it was live until now.
    pub async fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let _timer = DatabaseTimer::start("revoke_session");
        let revoke = sqlx::query(REVOKE_SESSION).bind(now).bind(reason).bind(id);
        let done = self.write(revoke).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes one session and records `event` in the same transaction:
    /// neither exists without the other. True if it was unrevoked until now;
    /// otherwise nothing is written.
    pub async fn revoke_session_recorded(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        event: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let _timer = DatabaseTimer::start("revoke_session_recorded");
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(REVOKE_SESSION)
            .bind(now)
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if revoked {
            insert_audit(event).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// Revokes at most `limit` of the user's unrevoked sessions made at or
    /// before `now`, in a transaction of its own; returns their ids. Called
    /// until it returns none, it ends every one of them in short transactions:
    /// on SQLite each holds the write lock for one chunk, and other writes get
    /// their turn in between.
    pub async fn revoke_user_sessions_chunk(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let _timer = DatabaseTimer::start("revoke_user_sessions_chunk");
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND created_at <= $2 LIMIT $3",
        )
        .bind(user_id)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        // On PostgreSQL a session found here may be revoked by another
        // transaction before the update: only the ones this one revoked count.
        let revoked = revoke_sessions_in(&mut tx, &ids, reason, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Replaces the password hash `old` (empty: the account had no password)
    /// with `hash` and revokes every other session of the user, in one
    /// transaction: never a new password with the old sessions still live.
    /// Reset links mailed before are void. Returns the revoked session ids,
    /// or `None` if the hash was no longer `old` (changed meanwhile).
    pub async fn change_password(
        &self,
        user_id: &str,
        old: &str,
        hash: &str,
        keep: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let _timer = DatabaseTimer::start("change_password");
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3 AND password_hash = $4",
        )
        .bind(hash)
        .bind(now)
        .bind(user_id)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        let ids = revoke_user_sessions_in(&mut tx, user_id, keep, "password_changed", now).await?;
        // A reset link mailed before the change must not undo it.
        super::mail::void_tokens_in(&mut tx, user_id, super::mail::MailPurpose::PasswordReset).await?;
        tx.commit().await?;
        Ok(Some(ids))
    }

    /// Gives the user `role` and revokes every session of theirs, in one
    /// transaction: no session goes on with tokens of the old role. Returns
    /// the revoked session ids.
    pub async fn set_role(&self, user_id: &str, role: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let _timer = DatabaseTimer::start("set_role");
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        // No session id is empty: none is kept.
        let ids = revoke_user_sessions_in(&mut tx, user_id, "", "role_changed", now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Deletes at most `limit` of the sessions that ended before
    /// `ended_before` (revoked, past their absolute age, or idle: no token of
    /// theirs was still live then), and with them their refresh tokens. How
    /// many sessions it deleted.
    pub async fn delete_ended_sessions(&self, ended_before: i64, limit: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("delete_ended_sessions");
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
        let _timer = DatabaseTimer::start("revoked_since");
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

const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL";

pub(super) async fn revoke_user_sessions_in(
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

/// The ids of a user's live sessions other than `except`, most recently used
/// first.
async fn live_session_ids(
    conn: &mut AnyConnection,
    user_id: &str,
    except: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT s.id {NEWEST_TOKEN}
         WHERE s.user_id = $1 AND s.id <> $2 AND s.revoked_at IS NULL AND c.idle_expires_at > $3 AND s.expires_at > $3
         ORDER BY c.issued_at DESC, s.created_at DESC, s.id DESC"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(except)
        .bind(now)
        .fetch_all(conn)
        .await?)
}

/// Revokes the sessions `ids` that are unrevoked; returns the ids it revoked.
async fn revoke_sessions_in(
    conn: &mut AnyConnection,
    ids: &[String],
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (3..ids.len() + 3).map(|n| format!("${n}")).collect();
    let sql = format!(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE revoked_at IS NULL AND id IN ({}) RETURNING id",
        placeholders.join(", ")
    );
    let update = ids
        .iter()
        .fold(sqlx::query(&sql).bind(now).bind(reason), |query, id| query.bind(id));
    let rows = update.fetch_all(conn).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Into::into)
}

/// `query` with a new session's parameters bound, `$1` to `$19`.
fn bind_new_session<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    new: &NewSession,
    session: &SessionRecord,
    event: &AuditRecord,
) -> Query<'q, Any, AnyArguments<'q>> {
    let query = query
        .bind(session.id.clone())
        .bind(session.user_id.clone())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.user_agent.clone())
        .bind(session.ip.clone())
        .bind(new.token_hash.clone())
        .bind(session.idle_expires_at);
    bind_audit(query, event.clone()).bind(new.password_hash.clone()).bind(new.amr.clone())
}

/// The three inserts of a new session: the session (authenticated by `$19`
/// at its creation), its first refresh token, and the audit row of what
/// started it (`$9` to `$17`, bound by [`bind_audit`]), each selecting from
/// `$from` so that none is made unless the user still has the password hash
/// `$18`. Macros, so both backends'
/// statements below are made of the same text.
macro_rules! insert_new_session {
    ($from:literal) => {
        concat!(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent, ip, amr, auth_time) SELECT $1, $2, $3, $4, $5, $6, $19, $3 FROM ",
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
        concat!(
            insert_audit_columns!(),
            " SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM ",
            $from
        )
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
macro_rules! create_session_sqlite {
    ($users:literal) => {
        concat!(
            insert_new_session!($users),
            "; ",
            insert_first_token!("sessions WHERE id = $1"),
            "; ",
            insert_session_audit!("sessions WHERE id = $1"),
            " RETURNING 1"
        )
    };
}
const CREATE_SESSION_SQLITE: &str = create_session_sqlite!("users WHERE id = $2 AND password_hash = $18");
/// The same, made only while the user has fewer than `$20` live sessions.
const CREATE_SESSION_WITH_ROOM_SQLITE: &str = create_session_sqlite!(
    "users WHERE id = $2 AND password_hash = $18 AND (SELECT COUNT(*) FROM sessions s
         JOIN refresh_tokens c ON c.hash = (SELECT hash FROM refresh_tokens
             WHERE session_id = s.id ORDER BY issued_at DESC LIMIT 1)
         WHERE s.user_id = $2 AND s.revoked_at IS NULL AND c.idle_expires_at > $3 AND s.expires_at > $3) < $20"
);

pub(super) async fn session_in(conn: &mut AnyConnection, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} {NEWEST_TOKEN} WHERE s.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.as_ref().map(SessionRecord::from_row).transpose()?)
}

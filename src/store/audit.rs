//! The audit trail of security events.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::{Store, StoreError};
use crate::metrics::DatabaseTimer;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// The start of an audit row's insert: its columns, in the order
/// [`bind_audit`] binds them. A macro so statements can `concat!` it.
macro_rules! insert_audit_columns {
    () => {
        "INSERT INTO audit_events (id, at, kind, user_id, username, session_id, ip, user_agent, detail)"
    };
}
pub(super) use insert_audit_columns;

const INSERT_AUDIT: &str = concat!(insert_audit_columns!(), " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");

/// The insert of `event`, to run on the pool or inside a transaction.
pub(super) fn insert_audit(event: &AuditRecord) -> Query<'static, Any, AnyArguments<'static>> {
    bind_audit(sqlx::query(INSERT_AUDIT), event.clone())
}

/// `query` with `event`'s columns bound next, in [`INSERT_AUDIT`]'s order.
/// Owned, so the query can go to the task that writes it.
pub(super) fn bind_audit<'q>(query: Query<'q, Any, AnyArguments<'q>>, event: AuditRecord) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(event.id)
        .bind(event.at)
        .bind(event.kind)
        .bind(event.user_id)
        .bind(event.username)
        .bind(event.session_id)
        .bind(event.ip)
        .bind(event.user_agent)
        .bind(event.detail)
}

impl Store {
    pub async fn record_audit(&self, event: &AuditRecord) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("record_audit");
        self.write(insert_audit(event)).await?;
        Ok(())
    }

    /// Deletes at most `limit` of the events that happened before `before`
    /// (found through the index on `at`). How many it deleted.
    pub async fn delete_audit_before(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("delete_audit_before");
        let delete = sqlx::query("DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)")
            .bind(before)
            .bind(limit);
        let done = self.write(delete).await?;
        Ok(done.rows_affected())
    }

    /// At most `limit` events, the newest first (by time, then id), starting
    /// after the event `after` names by its `(at, id)`.
    pub async fn recent_audit(&self, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let _timer = DatabaseTimer::start("recent_audit");
        // Without `after`, from before any event there is.
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT id, at, kind, user_id, username, session_id, ip, user_agent, detail
             FROM audit_events WHERE at < $1 OR (at = $1 AND id < $2) ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    session_id: row.try_get("session_id")?,
                    ip: row.try_get("ip")?,
                    user_agent: row.try_get("user_agent")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

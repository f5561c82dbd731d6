//! Accounts.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};
use crate::metrics::DatabaseTimer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
    /// When the password was last set (an upgrade of its hash does not count).
    pub password_changed_at: i64,
    /// The verified e-mail address.
    pub email: Option<String>,
    /// An address asked for and not verified yet.
    pub pending_email: Option<String>,
}

impl UserRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            role: row.try_get("role")?,
            password_hash: row.try_get("password_hash")?,
            created_at: row.try_get("created_at")?,
            password_changed_at: row.try_get("password_changed_at")?,
            email: row.try_get("email")?,
            pending_email: row.try_get("pending_email")?,
        })
    }
}

pub(super) const COLUMNS: &str = "id, username, role, password_hash, created_at, password_changed_at, email, pending_email";

pub(super) fn insert_user<'q>(
    user: &'q UserRecord,
    username_key: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO users (id, username, username_key, password_hash, role, created_at, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(username_key)
    .bind(&user.password_hash)
    .bind(&user.role)
    .bind(user.created_at)
    .bind(user.password_changed_at)
}

impl Store {
    /// Adds a user; `StoreError::Conflict` if the name (case-folded) is taken.
    pub async fn create_user(&self, user: &UserRecord, username_key: &str) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("create_user");
        let result = self.write(insert_user(user, username_key)).await;
        match result {
            Ok(_) => Ok(()),
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(e),
        }
    }

    pub async fn user_by_name_key(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let _timer = DatabaseTimer::start("user_by_name_key");
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username_key = $1");
        let row = sqlx::query(&sql).bind(username_key).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(UserRecord::from_row).transpose()?)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let _timer = DatabaseTimer::start("user_by_id");
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(UserRecord::from_row).transpose()?)
    }

    /// Replaces a hash with the same password under newer parameters, unless the
    /// hash changed meanwhile. Whether it replaced it.
    pub async fn upgrade_password_hash(&self, user_id: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let _timer = DatabaseTimer::start("upgrade_password_hash");
        let done = self
            .write(
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                    .bind(new)
                    .bind(user_id)
                    .bind(old),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// At most `limit` users in the order of their case-folded names, starting
    /// after the name `after` (case-folded).
    pub async fn list_users(&self, after: Option<&str>, limit: i64) -> Result<Vec<UserRecord>, StoreError> {
        let _timer = DatabaseTimer::start("list_users");
        // Every name is longer than "", so without `after` the list starts at the first.
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username_key > $1 ORDER BY username_key LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after.unwrap_or_default())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(UserRecord::from_row).collect::<Result<_, _>>()?)
    }
}

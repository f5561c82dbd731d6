//! Passkeys and the WebAuthn ceremonies under way. The credential itself is
//! webauthn-rs's to read (JSON); the store keeps it with its owner, name and
//! use, and keeps a ceremony until the one request that takes it.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, UserRecord};
use crate::metrics::DatabaseTimer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    pub id: String,
    pub user_id: String,
    /// base64url of the credential id.
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey`, as JSON.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl PasskeyRecord {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            credential_id: row.try_get("credential_id")?,
            name: row.try_get("name")?,
            credential: row.try_get("credential")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

fn insert_passkey(
    passkey: &PasskeyRecord,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&passkey.id)
    .bind(&passkey.user_id)
    .bind(&passkey.credential_id)
    .bind(&passkey.name)
    .bind(&passkey.credential)
    .bind(passkey.created_at)
}

macro_rules! columns {
    () => {
        "id, user_id, credential_id, name, credential, created_at, last_used_at"
    };
}
const COLUMNS: &str = columns!();
const RENAME: &str = concat!("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3 RETURNING ", columns!());

/// What removing a passkey did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Removed: the passkey as it was.
    Removed(PasskeyRecord),
    NotFound,
    /// It is the account's last way to sign in: kept.
    LastWay,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey to an account.
    Register,
    /// Signing up with a passkey: the account is made when it finishes.
    SignUp,
    Login,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignUp => "sign_up",
            Self::Login => "login",
        }
    }
}

impl Store {
    /// The user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        let _timer = DatabaseTimer::start("passkeys_of");
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(PasskeyRecord::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        let _timer = DatabaseTimer::start("passkey_by_credential");
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
        let row = sqlx::query(&sql).bind(credential_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(PasskeyRecord::from_row).transpose()?)
    }

    /// Adds a passkey; `StoreError::Conflict` if its credential is registered already.
    pub async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("add_passkey");
        let result = self.write(insert_passkey(passkey)).await;
        match result {
            Ok(_) => Ok(()),
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Creates an account that signs in with passkeys only (an empty password
    /// hash) together with its first passkey, in one transaction: no account
    /// is left without a way to sign in. `Err(Conflict)` if the name
    /// (case-folded) is taken; `Ok(false)`, creating nothing, if the
    /// credential is registered already.
    pub async fn create_passkey_user(
        &self,
        user: &UserRecord,
        username_key: &str,
        passkey: &PasskeyRecord,
    ) -> Result<bool, StoreError> {
        let unique = |result: Result<_, sqlx::Error>| match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(StoreError::from(e)),
        };
        let mut tx = self.begin_write().await?;
        let created = unique(
            super::users::insert_user(user, username_key)
                .execute(&mut *tx)
                .await,
        )?;
        if !created {
            return Err(StoreError::Conflict);
        }
        let added = unique(insert_passkey(passkey).execute(&mut *tx).await)?;
        if added {
            tx.commit().await?;
        }
        Ok(added)
    }

    /// Renames the user's passkey `id`: the renamed one, or `None` if the
    /// user has no such passkey.
    pub async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        let _timer = DatabaseTimer::start("rename_passkey");
        let rows = self
            .write_batch(sqlx::query(RENAME).bind(name.to_string()).bind(id.to_string()).bind(user_id.to_string()))
            .await?;
        Ok(rows.first().map(PasskeyRecord::from_row).transpose()?)
    }

    /// Removes the user's passkey `id` unless it is their last way to sign in
    /// (no password and no other passkey), in one transaction.
    pub async fn remove_passkey(&self, user_id: &str, id: &str) -> Result<Removal, StoreError> {
        let _timer = DatabaseTimer::start("remove_passkey");
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE id = $1 AND user_id = $2");
        let found = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(&mut *tx).await?;
        let Some(found) = found.as_ref().map(PasskeyRecord::from_row).transpose()? else {
            return Ok(Removal::NotFound);
        };
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let has_password: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 AND password_hash <> ''")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if others == 0 && has_password.is_none() {
            return Ok(Removal::LastWay);
        }
        sqlx::query("DELETE FROM passkeys WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Removal::Removed(found))
    }

    /// A sign-in with the passkey `id` at `now`, with its credential as
    /// updated by it (counter, backup state).
    pub async fn passkey_used(&self, id: &str, credential: &str, now: i64) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("passkey_used");
        self.write(
            sqlx::query("UPDATE passkeys SET last_used_at = $1, credential = $2 WHERE id = $3")
                .bind(now)
                .bind(credential.to_string())
                .bind(id.to_string()),
        )
        .await?;
        Ok(())
    }

    /// Keeps a ceremony's state until `expires_at`, replacing one of the same id.
    pub async fn save_ceremony(
        &self,
        id: &str,
        kind: CeremonyKind,
        user_id: Option<&str>,
        state: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("save_ceremony");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO webauthn_ceremonies (id, kind, user_id, state, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(kind.as_str())
            .bind(user_id)
            .bind(state)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the ceremony `id` of `kind` if it has not expired: whose it is and
    /// its state. A ceremony is taken once, by whichever instance asks first.
    pub async fn take_ceremony(&self, id: &str, kind: CeremonyKind, now: i64) -> Result<Option<(Option<String>, String)>, StoreError> {
        let _timer = DatabaseTimer::start("take_ceremony");
        let rows = self
            .write_batch(
                sqlx::query("DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2 RETURNING user_id, state, expires_at")
                    .bind(id.to_string())
                    .bind(kind.as_str()),
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some((row.try_get("user_id")?, row.try_get("state")?)))
    }

    /// Deletes ceremonies that expired before `now`.
    pub async fn delete_expired_ceremonies(&self, now: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("delete_expired_ceremonies");
        let done = self
            .write(sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at < $1").bind(now))
            .await?;
        Ok(done.rows_affected())
    }
}

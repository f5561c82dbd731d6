//! Token signing keys, shared by every server instance through the database.

use sqlx::Row;

use super::{Store, StoreError};
use crate::metrics::DatabaseTimer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    /// Raw 32-byte Ed25519 public key, base64url.
    pub public_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Store {
    /// Keys retired after `retired_after` (or not retired), newest first.
    pub async fn signing_keys(&self, retired_after: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let _timer = DatabaseTimer::start("signing_keys");
        let rows = sqlx::query(
            "SELECT kid, private_key, public_key, created_at, retired_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(retired_after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyRecord {
                    kid: row.try_get("kid")?,
                    private_key: row.try_get("private_key")?,
                    public_key: row.try_get("public_key")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Adds `key` and retires every older active key, atomically.
    pub async fn add_signing_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("add_signing_key");
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.private_key)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the stored private key of `kid`, if it is still `old`.
    pub async fn replace_private_key(&self, kid: &str, old: &str, new: &str) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("replace_private_key");
        let replace = sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3")
            .bind(new)
            .bind(kid)
            .bind(old);
        self.write(replace).await?;
        Ok(())
    }
}

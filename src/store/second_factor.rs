//! Second factors: an account's authenticator-app secret and recovery codes,
//! and password sign-ins waiting for their second step. Every "used once"
//! rule is a conditional write, so two instances (or two tabs) racing with the
//! same code or token cannot both win.

use sqlx::Row;

use super::{Store, StoreError};

/// An account's authenticator-app setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// As stored: base32, or sealed (see `auth::key_encryption`).
    pub secret: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<i64>,
}

impl TotpRecord {
    /// Whether a code from the app was accepted: only then is it asked for at sign-in.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// A password sign-in waiting for its second step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub user_id: String,
    pub password_hash: String,
    pub expires_at: i64,
}

impl Store {
    pub async fn totp_of(&self, user_id: &str) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query("SELECT secret, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TotpRecord {
            secret: row.try_get("secret")?,
            created_at: row.try_get("created_at")?,
            confirmed_at: row.try_get("confirmed_at")?,
            last_step: row.try_get("last_step")?,
        }))
    }

    /// Keeps an unconfirmed setup, replacing an earlier unconfirmed one; false
    /// (nothing written) if the account has a confirmed one.
    pub async fn begin_totp(&self, user_id: &str, secret: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let confirmed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if confirmed.is_some() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_factors WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO totp_factors (user_id, secret, created_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Confirms the unconfirmed setup made at `created_at` (not one begun
    /// again since), spending `step`, and replaces the recovery codes with
    /// `code_hashes`, in one transaction; false if there was no such setup.
    pub async fn confirm_totp(
        &self,
        user_id: &str,
        created_at: i64,
        step: i64,
        code_hashes: &[String],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let confirmed = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = $1, last_step = $2
             WHERE user_id = $3 AND created_at = $4 AND confirmed_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(user_id)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        if confirmed.rows_affected() != 1 {
            return Ok(false);
        }
        replace_recovery_codes(&mut tx, user_id, code_hashes, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts time step `step` of the confirmed setup if no step at or after
    /// it was accepted before (RFC 6238 §5.2: each code once).
    pub async fn spend_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let done = self
            .write(
                sqlx::query(
                    "UPDATE totp_factors SET last_step = $1
                     WHERE user_id = $2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
                )
                .bind(step)
                .bind(user_id.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the setup and the recovery codes; false if there was no setup.
    pub async fn remove_totp(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    /// Replaces the recovery codes of an account with a confirmed setup;
    /// false (nothing written) without one.
    pub async fn replace_recovery_codes(&self, user_id: &str, code_hashes: &[String], now: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let confirmed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if confirmed.is_none() {
            return Ok(false);
        }
        replace_recovery_codes(&mut tx, user_id, code_hashes, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Uses the recovery code hashed `code_hash`, if it is the account's and unused.
    pub async fn spend_recovery_code(&self, user_id: &str, code_hash: &str, now: i64) -> Result<bool, StoreError> {
        let done = self
            .write(
                sqlx::query(
                    "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(now)
                .bind(user_id.to_string())
                .bind(code_hash.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn add_mfa_challenge(&self, token_hash: &str, challenge: &MfaChallenge) -> Result<(), StoreError> {
        self.write(
            sqlx::query("INSERT INTO mfa_challenges (token_hash, user_id, password_hash, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash.to_string())
                .bind(challenge.user_id.clone())
                .bind(challenge.password_hash.clone())
                .bind(challenge.expires_at),
        )
        .await?;
        Ok(())
    }

    /// The sign-in waiting under `token_hash`, if it has not expired.
    pub async fn mfa_challenge(&self, token_hash: &str, now: i64) -> Result<Option<MfaChallenge>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, password_hash, expires_at FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(MfaChallenge {
            user_id: row.try_get("user_id")?,
            password_hash: row.try_get("password_hash")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Takes the sign-in waiting under `token_hash`: true for the one
    /// request that does.
    pub async fn take_mfa_challenge(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let done = self
            .write(
                sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2")
                    .bind(token_hash.to_string())
                    .bind(now),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a wrong code against the sign-in; at `max_failures` it is gone.
    pub async fn mfa_challenge_failed(&self, token_hash: &str, max_failures: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1 AND failures >= $2")
            .bind(token_hash)
            .bind(max_failures)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes sign-ins that expired before `now`.
    pub async fn prune_mfa_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let done = self
            .write(sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1").bind(now))
            .await?;
        Ok(done.rows_affected())
    }
}

async fn replace_recovery_codes(
    tx: &mut super::WriteTransaction,
    user_id: &str,
    code_hashes: &[String],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    for hash in code_hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

//! E-mail: users' addresses, the one-time tokens mailed to them (only their
//! hashes), and the outbox the mails wait in. A token and its mail are
//! written in one transaction, so neither exists without the other.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sessions::revoke_user_sessions_in;
use super::{Backend, Store, StoreError, UserRecord};
use crate::metrics::DatabaseTimer;

/// What a mail token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    PasswordReset,
    Verification,
}

impl MailPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "reset",
            Self::Verification => "verify",
        }
    }
}

/// A token about to be stored with the mail that carries it.
#[derive(Debug, Clone)]
pub struct NewMailToken {
    pub hash: String,
    pub user_id: String,
    pub purpose: MailPurpose,
    /// For a verification: the case-folded address it verifies.
    pub email_key: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A mail in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: i64,
    /// Not worth sending after this: its link has expired.
    pub expires_at: i64,
    /// Tries so far, the one it was claimed for included.
    pub attempts: i64,
}

impl OutboxMail {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            recipient: row.try_get("recipient")?,
            subject: row.try_get("subject")?,
            text_body: row.try_get("text_body")?,
            html_body: row.try_get("html_body")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            attempts: row.try_get("attempts")?,
        })
    }
}

/// A user's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailState {
    /// The verified address.
    pub email: Option<String>,
    /// An address asked for and not yet verified.
    pub pending_email: Option<String>,
}

/// What redeeming a verification token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The address is the user's now.
    Done { user_id: String, email: String },
    /// Unknown, used, expired, or for an address no longer asked for.
    Invalid,
    /// Another account verified the address first.
    Taken,
}

/// What redeeming a reset token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub user_id: String,
    /// Every session of the user, revoked.
    pub revoked: Vec<String>,
}

const CLAIM_SQLITE: &str = "UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
     WHERE id IN (SELECT id FROM mail_outbox
         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2
           AND (claimed_until IS NULL OR claimed_until <= $2)
         ORDER BY next_attempt_at LIMIT $3)
     RETURNING id, recipient, subject, text_body, html_body, created_at, expires_at, attempts";
/// Instances claiming at once skip each other's rows instead of waiting for
/// them, and a row one has locked is never claimed by another.
const CLAIM_POSTGRES: &str = "UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
     WHERE id IN (SELECT id FROM mail_outbox
         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2
           AND (claimed_until IS NULL OR claimed_until <= $2)
         ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
     RETURNING id, recipient, subject, text_body, html_body, created_at, expires_at, attempts";

impl Store {
    /// The user whose verified address has the case-folded `email_key`.
    pub async fn user_by_email_key(&self, email_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let _timer = DatabaseTimer::start("user_by_email_key");
        let sql = format!("SELECT {} FROM users WHERE email_key = $1", super::users::COLUMNS);
        let row = sqlx::query(&sql).bind(email_key).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(UserRecord::from_row).transpose()?)
    }

    pub async fn email_state(&self, user_id: &str) -> Result<EmailState, StoreError> {
        let _timer = DatabaseTimer::start("email_state");
        let row = sqlx::query("SELECT email, pending_email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(EmailState::default());
        };
        Ok(EmailState {
            email: row.try_get("email")?,
            pending_email: row.try_get("pending_email")?,
        })
    }

    /// Records `email` as the user's address to verify, replacing any earlier
    /// one and its tokens, with the verification token and the mails.
    pub async fn ask_for_email(
        &self,
        user_id: &str,
        email: &str,
        token: &NewMailToken,
        mails: &[OutboxMail],
    ) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("ask_for_email");
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET pending_email = $1 WHERE id = $2")
            .bind(email)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        void_tokens_in(&mut tx, user_id, MailPurpose::Verification).await?;
        insert_token_in(&mut tx, token).await?;
        for mail in mails {
            queue_in(&mut tx, mail).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses the verification token `hash` at `now`: the address it was sent
    /// to becomes the user's if it is still the one asked for. Reset tokens
    /// sent to the old address are void from then on.
    pub async fn redeem_verification(&self, hash: &str, now: i64, key_of: impl Fn(&str) -> String) -> Result<Verified, StoreError> {
        let _timer = DatabaseTimer::start("redeem_verification");
        let mut tx = self.begin_write().await?;
        let Some((user_id, email_key)) = use_token_in(&mut tx, hash, MailPurpose::Verification, now).await? else {
            return Ok(Verified::Invalid);
        };
        let pending: Option<String> = sqlx::query_scalar("SELECT pending_email FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
        let Some(email) = pending.filter(|pending| Some(key_of(pending)) == email_key) else {
            return Ok(Verified::Invalid);
        };
        let updated = sqlx::query("UPDATE users SET email = $1, email_key = $2, pending_email = NULL WHERE id = $3")
            .bind(&email)
            .bind(key_of(&email))
            .bind(&user_id)
            .execute(&mut *tx)
            .await;
        match updated {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(Verified::Taken),
            other => other?,
        };
        void_tokens_in(&mut tx, &user_id, MailPurpose::PasswordReset).await?;
        tx.commit().await?;
        Ok(Verified::Done { user_id, email })
    }

    /// Stores a reset token with its mail, voiding the user's earlier ones.
    pub async fn issue_reset(&self, token: &NewMailToken, mail: Option<&OutboxMail>) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("issue_reset");
        let mut tx = self.begin_write().await?;
        void_tokens_in(&mut tx, &token.user_id, MailPurpose::PasswordReset).await?;
        insert_token_in(&mut tx, token).await?;
        if let Some(mail) = mail {
            queue_in(&mut tx, mail).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The user a live, unused token of `purpose` belongs to.
    pub async fn mail_token_user(&self, hash: &str, purpose: MailPurpose, now: i64) -> Result<Option<UserRecord>, StoreError> {
        let _timer = DatabaseTimer::start("mail_token_user");
        let sql = format!(
            "SELECT {} FROM users WHERE id = (SELECT user_id FROM mail_tokens
                 WHERE hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3)",
            super::users::COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(UserRecord::from_row).transpose()?)
    }

    /// Uses the reset token `hash`: sets the password hash, voids the user's
    /// other reset tokens and revokes every session, in one transaction.
    /// `None` if the token was not live and unused at `now`.
    pub async fn redeem_reset(&self, hash: &str, password_hash: &str, now: i64) -> Result<Option<PasswordReset>, StoreError> {
        let _timer = DatabaseTimer::start("redeem_reset");
        let mut tx = self.begin_write().await?;
        let Some((user_id, _)) = use_token_in(&mut tx, hash, MailPurpose::PasswordReset, now).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        void_tokens_in(&mut tx, &user_id, MailPurpose::PasswordReset).await?;
        // No session id is empty: none is kept.
        let revoked = revoke_user_sessions_in(&mut tx, &user_id, "", "password_reset", now).await?;
        tx.commit().await?;
        Ok(Some(PasswordReset { user_id, revoked }))
    }

    /// Claims at most `limit` mails due at `now` for this worker until
    /// `until`: no other worker, here or on another instance, takes them
    /// meanwhile.
    pub async fn claim_mails(&self, now: i64, until: i64, limit: i64) -> Result<Vec<OutboxMail>, StoreError> {
        let _timer = DatabaseTimer::start("claim_mails");
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let rows = self.write_batch(sqlx::query(sql).bind(until).bind(now).bind(limit)).await?;
        Ok(rows.iter().map(OutboxMail::from_row).collect::<Result<_, _>>()?)
    }

    /// The mail went out: its bodies, which hold a link, are emptied.
    pub async fn mail_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("mail_sent");
        self.write(
            sqlx::query(
                "UPDATE mail_outbox SET sent_at = $1, claimed_until = NULL, text_body = '', html_body = '', last_error = NULL
                 WHERE id = $2",
            )
            .bind(now)
            .bind(id.to_string()),
        )
        .await?;
        Ok(())
    }

    /// The mail did not go out: tried again at `retry_at`, or given up
    /// (bodies emptied) if `retry_at` is `None`.
    pub async fn mail_not_sent(&self, id: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("mail_not_sent");
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE mail_outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 WHERE id = $3",
            )
            .bind(at),
            None => sqlx::query(
                "UPDATE mail_outbox SET failed_at = $1, claimed_until = NULL, last_error = $2, text_body = '', html_body = ''
                 WHERE id = $3",
            )
            .bind(now),
        };
        self.write(query.bind(error.to_string()).bind(id.to_string())).await?;
        Ok(())
    }

    /// Deletes mail tokens and outbox rows that can no longer matter: used or
    /// expired before `before`. How many rows went.
    pub async fn delete_old_mail(&self, before: i64) -> Result<u64, StoreError> {
        let _timer = DatabaseTimer::start("delete_old_mail");
        let tokens = self
            .write(sqlx::query("DELETE FROM mail_tokens WHERE expires_at < $1").bind(before))
            .await?;
        let mails = self
            .write(
                sqlx::query(
                    "DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < $1",
                )
                .bind(before),
            )
            .await?;
        Ok(tokens.rows_affected() + mails.rows_affected())
    }
}

/// Deletes the user's unused tokens of `purpose`.
pub(super) async fn void_tokens_in(conn: &mut AnyConnection, user_id: &str, purpose: MailPurpose) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mail_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_token_in(conn: &mut AnyConnection, token: &NewMailToken) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_tokens (hash, user_id, purpose, email_key, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.hash)
    .bind(&token.user_id)
    .bind(token.purpose.as_str())
    .bind(&token.email_key)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the token used if it is live and unused: the user it belongs to and
/// the address it verifies. A conditional update, so two redemptions of one
/// token cannot both succeed.
async fn use_token_in(
    conn: &mut AnyConnection,
    hash: &str,
    purpose: MailPurpose,
    now: i64,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    let row = sqlx::query(
        "UPDATE mail_tokens SET used_at = $1
         WHERE hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1
         RETURNING user_id, email_key",
    )
    .bind(now)
    .bind(hash)
    .bind(purpose.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some((row.try_get("user_id")?, row.try_get("email_key")?)))
}

async fn queue_in(conn: &mut AnyConnection, mail: &OutboxMail) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, created_at, recipient, subject, text_body, html_body, expires_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $2)",
    )
    .bind(&mail.id)
    .bind(mail.created_at)
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.text_body)
    .bind(&mail.html_body)
    .bind(mail.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

//! Password recovery by mail. Asking is answered the same way, as fast, for
//! any address: the rate limits are checked first, the same for all, and the
//! lookup and the mail happen after the answer, off the request. A reset link
//! only works for a verified address, once, within `password_reset_ttl`, and
//! only the newest one; using it sets the password and ends every session.

use std::sync::Arc;

use super::audit::{AuditKind, Event};
use super::email::check_email;
use super::events::SessionEvent;
use super::letters;
use super::limits::address_key;
use super::mail_token::MailToken;
use super::password::Password;
use super::{Auth, AuthError, ClientInfo};
use crate::app::routes::RESET_PASSWORD;
use crate::protocol::password_rule;
use crate::store::{MailPurpose, NewMailToken, UserRecord};

impl Auth {
    /// Asks for a reset link to be mailed to `email`. The same `Ok` for an
    /// unknown, an unverified and a verified address; only a malformed
    /// address or a rate limit is refused.
    pub async fn ask_for_password_reset(self: &Arc<Self>, email: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let checked = check_email(email)?;
        self.limits
            .password_reset(&checked.key, &address_key(client.ip.as_deref().unwrap_or_default()))
            .await?;
        let auth = Arc::clone(self);
        let client = client.clone();
        // Off the request: whether the address is known must not show in how
        // long the answer takes.
        tokio::spawn(async move {
            if let Err(err) = auth.mail_password_reset(&checked.key, &client).await {
                tracing::error!(error = %super::WithSources(&err), "a password reset could not be queued");
            }
        });
        Ok(())
    }

    async fn mail_password_reset(&self, email_key: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let user = self.store.user_by_email_key(email_key).await?;
        let now = self.now();
        let Some(user) = user else {
            return self
                .audit(Event {
                    kind: AuditKind::PasswordResetAsked,
                    at: now,
                    account: None,
                    session_id: None,
                    client,
                    detail: Some("no account has this verified address: nothing sent".to_string()),
                })
                .await;
        };
        self.issue_reset(&user, Some(client), now).await?;
        self.audit(Event {
            kind: AuditKind::PasswordResetAsked,
            at: now,
            account: Some((&user).into()),
            session_id: None,
            client,
            detail: Some("reset link mailed".to_string()),
        })
        .await
    }

    /// A new reset token for `user`, voiding the older ones, mailed to their
    /// verified address if asked for by `requester`; its link.
    async fn issue_reset(&self, user: &UserRecord, requester: Option<&ClientInfo>, now: i64) -> Result<String, AuthError> {
        let ttl = self.settings.password_reset_ttl;
        let token = MailToken::generate();
        let link = self.mail_link(RESET_PASSWORD, &token);
        let letter = match (&user.email, requester) {
            (Some(address), Some(client)) => Some(
                letters::password_reset(address, &user.username, link.clone(), ttl / 60, now, client)
                    .into_outbox(now, now + ttl),
            ),
            _ => None,
        };
        let stored = NewMailToken {
            hash: token.hash(),
            user_id: user.id.clone(),
            purpose: MailPurpose::PasswordReset,
            email_key: None,
            created_at: now,
            expires_at: now + ttl,
        };
        self.store.issue_reset(&stored, letter.as_ref()).await?;
        if letter.is_some() {
            self.mails_queued(1);
        }
        Ok(link)
    }

    /// A reset link for an operator to hand over (`gatehouse user
    /// reset-link`), without mail or rate limits; it voids older links.
    pub async fn reset_link(&self, username: &str) -> Result<String, AuthError> {
        let key = crate::protocol::username_rule::key(username);
        let user = self.store.user_by_name_key(&key).await?.ok_or(AuthError::NotFound)?;
        let now = self.now();
        let link = self.issue_reset(&user, None, now).await?;
        self.audit(Event {
            kind: AuditKind::PasswordResetAsked,
            at: now,
            account: Some((&user).into()),
            session_id: None,
            client: &ClientInfo::default(),
            detail: Some("reset link made by an operator".to_string()),
        })
        .await?;
        Ok(link)
    }

    /// Sets a new password with a reset token and ends every session of the
    /// account. A weak password leaves the token usable for a better one.
    pub async fn reset_password(&self, token: &str, new_password: String, client: &ClientInfo) -> Result<(), AuthError> {
        let token = MailToken::parse(token).ok_or(AuthError::InvalidMailToken)?;
        let hash = token.hash();
        let user = self
            .store
            .mail_token_user(&hash, MailPurpose::PasswordReset, self.now())
            .await?
            .ok_or(AuthError::InvalidMailToken)?;
        let strength = password_rule::check(&new_password, &[&user.username]);
        if !strength.acceptable() {
            return Err(AuthError::WeakPassword(strength.reasons));
        }
        let password_hash = self.passwords.hash(Password::new(new_password)).await?;
        // After the hash, which may have waited for a hashing thread.
        let now = self.now();
        let reset = self
            .store
            .redeem_reset(&hash, &password_hash, now)
            .await?
            .ok_or(AuthError::InvalidMailToken)?;
        let detail = format!("{} sessions revoked", reset.revoked.len());
        self.sessions_revoked(&reset.user_id, reset.revoked, "password_reset", now).await;
        self.publish(SessionEvent::PasswordChanged {
            user_id: reset.user_id.clone(),
            session_id: String::new(),
            at: now,
        })
        .await;
        self.audit_after_revocation(Event {
            kind: AuditKind::PasswordReset,
            at: now,
            account: Some((&user).into()),
            session_id: None,
            client,
            detail: Some(detail),
        })
        .await;
        Ok(())
    }
}

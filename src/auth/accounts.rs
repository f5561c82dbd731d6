//! Accounts: registration, creating users (also from the command line),
//! changing a password, and who the caller is.

use super::audit::{AuditKind, Event};
use super::events::SessionEvent;
use super::limits::address_key;
use super::password::{Password, Verification};
use super::{Auth, AuthError, ClientInfo, NewTokens, ROLE_USER};
use super::email::{check_email, CheckedEmail};
use crate::protocol::{password_rule, username_rule, AccessClaims, Me, PasswordChange, Registration};
use crate::store::{StoreError, UserRecord};

impl Auth {
    /// Creates an account and its first session. An address, if given, is
    /// mailed a verification link; one that another account has verified is
    /// left out without saying so, so registering tells no one which
    /// addresses have accounts.
    pub async fn register(&self, registration: Registration, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let Registration { username, password, email } = registration;
        let email = email.filter(|e| !e.trim().is_empty()).map(|e| check_email(&e)).transpose()?;
        // Without a known address (the router served without connection
        // info) every such request shares one key, as at login.
        self.limits
            .registration(&address_key(client.ip.as_deref().unwrap_or_default()))
            .await?;
        let user = self.create_user(&username, Password::new(password), ROLE_USER).await?;
        self.registered(user, email, client, "pwd").await
    }

    /// The end of a registration (by password or passkey): the address it
    /// named asked for (one another account has verified is left out
    /// without a word), then its first session, proved by `amr`.
    pub(super) async fn registered(
        &self,
        mut user: UserRecord,
        email: Option<CheckedEmail>,
        client: &ClientInfo,
        amr: &str,
    ) -> Result<NewTokens, AuthError> {
        if let Some(email) = email {
            let address = email.address.clone();
            match self.ask_for_email_of(&user, email, client).await {
                Ok(()) => user.pending_email = Some(address),
                Err(AuthError::EmailTaken) => {}
                Err(err) => return Err(err),
            }
        }
        self.start_session(&user, client, AuditKind::Register, amr).await
    }

    /// Creates an account after checking the name and the password's strength.
    pub async fn create_user(&self, username: &str, password: Password, role: &str) -> Result<UserRecord, AuthError> {
        if let Some(problem) = username_rule::problem(username) {
            return Err(AuthError::InvalidUsername(problem));
        }
        let strength = password_rule::check(password.expose(), &[username]);
        if !strength.acceptable() {
            return Err(AuthError::WeakPassword(strength.reasons));
        }
        let key = self.free_username_key(username).await?;
        let password_hash = self.passwords.hash(password).await?;
        // After the hash, which may have waited for a hashing thread.
        let now = self.now();
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            role: role.to_string(),
            password_hash,
            created_at: now,
            password_changed_at: now,
            email: None,
            pending_email: None,
        };
        match self.store.create_user(&user, &key).await {
            Err(StoreError::Conflict) => Err(AuthError::UsernameTaken),
            other => other.map(|()| user).map_err(Into::into),
        }
    }

    /// The case-folded key of `username` if the name is allowed and no
    /// account has it (a registration checks again as it creates the account).
    pub(super) async fn free_username_key(&self, username: &str) -> Result<String, AuthError> {
        if let Some(problem) = username_rule::problem(username) {
            return Err(AuthError::InvalidUsername(problem));
        }
        let key = username_rule::key(username);
        if self.store.user_by_name_key(&key).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        Ok(key)
    }

    /// Changes the password and revokes every other session of the user. A
    /// wrong current password counts as a failed login of the user from the
    /// caller's address. An account without a password (passkeys only) sets
    /// its first one so, without a current password: whatever is sent as
    /// `current_password` is not looked at.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        change: PasswordChange,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        let user = self
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let name_key = username_rule::key(&user.username);
        let ip_key = address_key(client.ip.as_deref().unwrap_or_default());
        let attempt = self.limits.login_attempt(&name_key, &ip_key).await?;
        let has_password = !user.password_hash.is_empty();
        let verification = if !has_password {
            Verification::Match {
                needs_rehash: false,
            }
        } else if change.current_password.chars().count() > password_rule::MAX_CHARS {
            Verification::Mismatch
        } else {
            self.passwords
                .verify(Password::new(change.current_password), Some(user.password_hash.clone()))
                .await?
        };
        if verification == Verification::Mismatch {
            return Err(AuthError::WrongPassword);
        }
        self.limits.login_succeeded(attempt).await?;
        let strength = password_rule::check(&change.new_password, &[&user.username]);
        if !strength.acceptable() {
            return Err(AuthError::WeakPassword(strength.reasons));
        }
        let hash = self.passwords.hash(Password::new(change.new_password)).await?;
        let now = self.now();
        // Set meanwhile by another request (a first password, or a change):
        // this one's check was against a password that is gone.
        let revoked = self
            .store
            .change_password(&user.id, &user.password_hash, &hash, &claims.sid, now)
            .await?
            .ok_or(AuthError::WrongPassword)?;
        let first = if has_password { "" } else { "first password set, " };
        let detail = format!("{first}{} other sessions revoked", revoked.len());
        self.sessions_revoked(&user.id, revoked, "password_changed", now).await;
        self.publish(SessionEvent::PasswordChanged {
            user_id: user.id.clone(),
            session_id: claims.sid.clone(),
            at: now,
        })
        .await;
        self.audit(Event {
            kind: AuditKind::PasswordChanged,
            at: now,
            account: Some((&user).into()),
            session_id: Some(&claims.sid),
            client,
            detail: Some(detail),
        })
        .await
    }

    pub async fn me(&self, claims: &AccessClaims) -> Result<Me, AuthError> {
        // Names never change, and the address is the token's (a change or a
        // verification reaches it with the next token): `/api/me`, the most
        // frequent call, reads no table.
        if !claims.preferred_username.is_empty() {
            return Ok(Me {
                id: claims.sub.clone(),
                username: claims.preferred_username.clone(),
                role: claims.role.clone(),
                session_id: claims.sid.clone(),
                email: claims.email.clone(),
                email_verified: claims.email_verified,
            });
        }
        let user = self
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        Ok(Me {
            id: user.id,
            username: user.username,
            role: user.role,
            session_id: claims.sid.clone(),
            email_verified: user.email.is_some(),
            email: user.email.or(user.pending_email),
        })
    }
}

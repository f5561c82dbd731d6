//! Password login, and the start of a session (shared with registration).

use super::audit::{AuditKind, Event};
use super::events::SessionEvent;
use super::limits::address_key;
use super::password::{Password, Verification};
use super::refresh_token::RefreshToken;
use super::second_factor::LoginOutcome;
use super::{Auth, AuthError, ClientInfo, NewTokens};
use crate::metrics::LoginMethod;
use crate::protocol::{password_rule, username_rule, Credentials};
use crate::store::{NewSession, SessionRecord, UserRecord};

impl Auth {
    /// Checks the password and starts a session, or for an account with a
    /// second factor the sign-in's second step. Logged at `info` with its
    /// outcome, never the name or password.
    #[tracing::instrument(name = "login", skip_all)]
    pub async fn login(&self, credentials: Credentials, client: &ClientInfo) -> Result<LoginOutcome, AuthError> {
        let result = self.check_password_and_start(credentials, client).await;
        let outcome = match &result {
            Ok(LoginOutcome::SignedIn(_)) => "ok",
            Ok(LoginOutcome::SecondFactor { .. }) => "second_factor",
            Err(err) => failed_login_outcome(err),
        };
        tracing::info!(outcome, "login");
        crate::metrics::login(LoginMethod::Password, outcome);
        result
    }

    async fn check_password_and_start(
        &self,
        credentials: Credentials,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let Credentials { username, password } = credentials;
        let name_key = username_rule::key(&username);
        let ip_key = address_key(client.ip.as_deref().unwrap_or_default());
        // Counted as failed unless the password is right (see `limits`).
        let attempt = self.limits.login_attempt(&name_key, &ip_key).await?;

        // Over-long passwords are refused before any hashing work. A name no
        // account can have is looked up nowhere but still costs a (dummy) verify,
        // so it answers like any unknown user.
        let (known, verification) = if password.chars().count() > password_rule::MAX_CHARS {
            (None, Verification::Mismatch)
        } else {
            let known = match username_rule::problem(&username) {
                None => self.store.user_by_name_key(&name_key).await?,
                Some(_) => None,
            };
            let stored = known.as_ref().map(|u| u.password_hash.clone());
            (
                known,
                self.passwords.verify(Password::new(password.clone()), stored).await?,
            )
        };
        let Verification::Match { needs_rehash } = verification else {
            let shown: String = username.chars().filter(|c| !c.is_control()).take(64).collect();
            self.audit(Event {
                kind: AuditKind::LoginFailed,
                at: self.now(),
                account: known.as_ref().map(Into::into),
                session_id: None,
                client,
                detail: Some(format!("username: {shown}")),
            })
            .await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.limits.login_succeeded(attempt).await?;
        let Some(user) = known else {
            return Err(AuthError::InvalidCredentials);
        };
        let user = if needs_rehash {
            self.upgraded(user, Password::new(password)).await?
        } else {
            user
        };
        self.password_accepted(&user, client).await
    }

    /// `user` with its password hash made again under the current argon2
    /// parameters. A login running alongside may have upgraded it first: then
    /// that hash is the one the session is made against, unless the password
    /// itself was changed meanwhile.
    async fn upgraded(&self, user: UserRecord, password: Password) -> Result<UserRecord, AuthError> {
        let upgraded = self.passwords.hash(password).await?;
        if self
            .store
            .upgrade_password_hash(&user.id, &user.password_hash, &upgraded)
            .await?
        {
            return Ok(UserRecord {
                password_hash: upgraded,
                ..user
            });
        }
        match self.store.user_by_id(&user.id).await? {
            Some(current) if current.password_changed_at == user.password_changed_at => Ok(current),
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Starts a session for `user`, who proved who they are by `amr` (space-
    /// separated methods), recording `started_by` (a login or a registration)
    /// with it, unless the user's password has changed from
    /// `user.password_hash` meanwhile; ends the user's least recently used
    /// sessions beyond `max_sessions_per_user` with it; then tells the user's
    /// sockets.
    pub(super) async fn start_session(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
        started_by: AuditKind,
        amr: &str,
    ) -> Result<NewTokens, AuthError> {
        // After the password check, which may have waited for a hashing thread.
        let now = self.now();
        let refresh = RefreshToken::generate();
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event {
            kind: started_by,
            at: now,
            account: Some(user.into()),
            session_id: Some(&id),
            client,
            detail: None,
        }
        .record();
        let made_room = format!("made room for session {id}");
        let evicted = |evicted_id: &str| {
            Event {
                kind: AuditKind::SessionEvicted,
                at: now,
                account: Some(user.into()),
                session_id: Some(evicted_id),
                client,
                detail: Some(made_room.clone()),
            }
            .record()
        };
        let created = self
            .store
            .create_session(
                &NewSession {
                    id: id.clone(),
                    user_id: user.id.clone(),
                    username: user.username.clone(),
                    role: user.role.clone(),
                    email: user.email.clone().or_else(|| user.pending_email.clone()),
                    email_verified: user.email.is_some(),
                    amr: amr.to_string(),
                    now,
                    idle_ttl: self.settings.refresh_idle_ttl,
                    max_age: self.settings.session_max_age,
                    user_agent: client.stored_user_agent(),
                    ip: client.ip.clone(),
                    token_hash: refresh.hash(),
                    password_hash: user.password_hash.clone(),
                    max_live: self.settings.max_sessions_per_user,
                },
                &event,
                evicted,
            )
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let session = created.session;
        self.sessions_revoked(&user.id, created.evicted, "evicted", now).await;
        let access = self.tokens.issue((&session).into(), now)?;
        self.session_created(&session).await;
        Ok(NewTokens {
            access,
            refresh,
            session,
        })
    }

    async fn session_created(&self, session: &SessionRecord) {
        self.publish(SessionEvent::SessionCreated {
            user_id: session.user_id.clone(),
            session_id: session.id.clone(),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            at: session.created_at,
        })
        .await;
    }
}

/// How a failed sign-in is counted and logged: by what a client was told,
/// never by whom.
pub(super) fn failed_login_outcome(err: &AuthError) -> &'static str {
    match err {
        AuthError::InvalidCredentials => "invalid_credentials",
        AuthError::RateLimited { .. } => "rate_limited",
        _ => "error",
    }
}

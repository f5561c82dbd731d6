//! The auth core: accounts, passwords, access tokens, sessions and refresh
//! rotation, revocation, rate limits and the audit trail. No HTTP in here: the
//! server module translates requests into these calls and errors into status
//! codes.
//!
//! Where things happen:
//! - refresh rotation and reuse detection: [`Auth::refresh`] over
//!   [`Store::rotate_refresh_token`](crate::store::Store::rotate_refresh_token);
//! - access-token checks: [`Auth::authenticate`] (signature etc. in
//!   [`access_token`], revocation in [`revocation`]).

pub mod access_token;
mod cache;
pub mod clock;
mod ed25519;
pub mod events;
pub mod keys;
pub mod limits;
mod page_lookups;
pub mod password;
pub mod refresh_token;
pub mod revocation;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use access_token::{AccessTokens, IssuedAccessToken, TokenError};
use clock::SharedClock;
use events::{EventBus, LiveUpdate, SessionEvent};
use keys::{Jwks, KeyRing};
use limits::Limits;
use page_lookups::PageLookups;
use password::{Password, PasswordHasher, Verification};
use refresh_token::RefreshToken;
use revocation::RevokedSessions;

use crate::config::Settings;
use crate::protocol::{
    password_rule, username_rule, AccessClaims, AuditEventView, Credentials, Me, PageAuth, PasswordChange,
    SessionView, UserView,
};
use crate::store::{
    AuditRecord, NewSession, Rotation, RotationRules, SessionRecord, Store, StoreError, Successor, UserRecord,
};

pub use crate::protocol::{ROLE_ADMIN, ROLE_USER};

/// The session behind a page request, as the page guard found it: the claims
/// for the server's own use while rendering, and what the browser receives.
#[derive(Debug, Clone)]
pub struct PageSession {
    pub claims: AccessClaims,
    pub hydration: PageAuth,
}

/// How many users or events the admin listings return at most.
const ADMIN_LIST_LIMIT: i64 = 200;
/// Stored user agents are cut to this many characters.
const MAX_USER_AGENT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid username or password.")]
    InvalidCredentials,
    #[error("That username is taken.")]
    UsernameTaken,
    #[error("{0}")]
    InvalidUsername(String),
    #[error("The password is too easy to guess.")]
    WeakPassword(Vec<String>),
    #[error("Too many attempts. Try again in {retry_after} seconds.")]
    RateLimited { retry_after: u64 },
    #[error("The access token has expired.")]
    TokenExpired,
    #[error("The access token is invalid.")]
    InvalidToken,
    #[error("The session has ended.")]
    SessionRevoked,
    #[error("The refresh token is not valid. Log in again.")]
    RefreshRejected,
    #[error("The current password is wrong.")]
    WrongPassword,
    #[error("This needs the admin role.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    #[error("The database is unavailable.")]
    Unavailable,
    #[error("storage failure: {0}")]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable,
            other => Self::Store(other),
        }
    }
}

impl From<TokenError> for AuthError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => Self::TokenExpired,
            TokenError::Invalid | TokenError::UnknownKey => Self::InvalidToken,
        }
    }
}

/// Who is asking, as far as the network can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How often ended sessions and old audit events are deleted (seconds), once
/// no backlog is left.
const PRUNE_EVERY: i64 = 3600;
/// Sessions and audit events deleted per upkeep at most. A session takes its
/// refresh tokens with it (one per refresh), so its batch is the smaller.
const PRUNE_SESSIONS: i64 = 100;
const PRUNE_EVENTS: i64 = 1000;

/// What a login, registration or refresh hands out.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access: IssuedAccessToken,
    pub refresh: RefreshToken,
    pub session: SessionRecord,
}

/// What the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Register,
    LoginOk,
    LoginFailed,
    RefreshReuse,
    Logout,
    LogoutAll,
    SessionRevoked,
    PasswordChanged,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::LoginOk => "login_ok",
            Self::LoginFailed => "login_failed",
            Self::RefreshReuse => "refresh_reuse",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
        }
    }
}

pub struct Auth {
    store: Store,
    clock: SharedClock,
    settings: Settings,
    passwords: PasswordHasher,
    tokens: AccessTokens,
    page_lookups: PageLookups,
    revoked: RevokedSessions,
    limits: Limits,
    events: EventBus,
    /// When this instance next deletes ended sessions and old audit events.
    prune_due_at: AtomicI64,
}

impl Auth {
    /// Prepares the core: password hasher, signing keys (created on first
    /// start) and the set of recently revoked sessions.
    pub async fn new(settings: Settings, store: Store, clock: SharedClock) -> Result<Self, AuthError> {
        let now = clock.now();
        let passwords = PasswordHasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            settings.hash_concurrency,
        )
        .await?;
        let keys = Arc::new(KeyRing::load(store.clone(), settings.access_ttl, now).await?);
        let tokens = AccessTokens::new(keys, settings.issuer.clone(), settings.audience.clone(), settings.access_ttl);
        let page_lookups = PageLookups::new(settings.refresh_grace);
        let auth = Self {
            limits: Limits::new(&settings),
            store,
            clock,
            settings,
            passwords,
            tokens,
            page_lookups,
            revoked: RevokedSessions::default(),
            events: EventBus::default(),
            prune_due_at: AtomicI64::new(i64::MIN),
        };
        auth.load_revocations(now).await?;
        Ok(auth)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// After this, no access token of a session revoked at `revoked_at` can be
    /// live any more.
    fn forget_revocation_at(&self, revoked_at: i64) -> i64 {
        revoked_at + self.settings.access_ttl + 60
    }

    /// Refuses the sessions' access tokens from now on, here at once and on
    /// every other instance as soon as the notice arrives; their sockets close.
    async fn sessions_revoked(&self, user_id: &str, session_ids: Vec<String>, reason: &str) {
        let now = self.now();
        for session_id in &session_ids {
            self.revoked.insert(session_id, self.forget_revocation_at(now));
        }
        if session_ids.is_empty() {
            return;
        }
        self.publish(SessionEvent::SessionsRevoked {
            user_id: user_id.to_string(),
            session_ids,
            reason: reason.to_string(),
            at: now,
        })
        .await;
    }

    /// Whether the session was revoked (as far as this instance knows, which
    /// is at most one notice behind).
    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.contains(session_id)
    }

    /// Session events as they happen, on this instance and the others.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveUpdate> {
        self.events.subscribe()
    }

    /// Periodic upkeep: forget old revocations, expired verified tokens and idle
    /// rate-limit state, pick up keys rotated and sessions revoked by other
    /// instances sharing the database, and delete what is kept no longer (see
    /// [`Auth::delete_expired_records`]): once an hour, or at every upkeep
    /// while a backlog lasts.
    pub async fn maintain(&self) -> Result<(), AuthError> {
        let now = self.now();
        self.revoked.prune(now);
        self.tokens.forget_expired(now);
        self.page_lookups.forget_expired(now);
        self.limits.forget_idle();
        self.load_revocations(now).await?;
        self.tokens.keys().reload(now).await?;
        if now >= self.prune_due_at.load(Ordering::Relaxed) {
            let backlog = self.delete_expired_records(now).await?;
            self.prune_due_at
                .store(if backlog { now } else { now + PRUNE_EVERY }, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes sessions that ended longer ago than `ended_session_retention`,
    /// with their refresh tokens, and audit events older than
    /// `audit_retention`, a batch of each: otherwise every refresh and failed
    /// login would grow the database for ever. Whether a batch was full (more
    /// may be left).
    async fn delete_expired_records(&self, now: i64) -> Result<bool, AuthError> {
        let sessions = self
            .store
            .delete_ended_sessions(now - self.settings.ended_session_retention, PRUNE_SESSIONS)
            .await?;
        let events = match self.settings.audit_retention {
            0 => 0,
            retention => self.store.delete_audit_before(now - retention, PRUNE_EVENTS).await?,
        };
        if sessions + events > 0 {
            tracing::info!(sessions, events, "deleted ended sessions and old audit events");
        }
        Ok(sessions >= PRUNE_SESSIONS as u64 || events >= PRUNE_EVENTS as u64)
    }

    /// Every session revoked recently enough for one of its access tokens to
    /// be live, into the in-memory set.
    async fn load_revocations(&self, now: i64) -> Result<(), AuthError> {
        for (session_id, revoked_at) in self.store.revoked_since(now - self.settings.access_ttl - 60).await? {
            self.revoked.insert(&session_id, self.forget_revocation_at(revoked_at));
        }
        Ok(())
    }

    pub async fn register(&self, credentials: Credentials, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let Credentials { username, password } = credentials;
        if let Some(ip) = &client.ip {
            self.limits
                .registrations_per_ip
                .check(&limits::address_key(ip))
                .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        }
        let user = self.create_user(&username, Password::new(password), ROLE_USER).await?;
        let tokens = self.start_session(&user, client, AuditKind::Register).await?;
        self.session_created(&tokens.session).await;
        Ok(tokens)
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
        let key = username_rule::key(username);
        if self.store.user_by_name_key(&key).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        let now = self.now();
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            role: role.to_string(),
            password_hash: self.passwords.hash(password).await?,
            created_at: now,
            password_changed_at: now,
        };
        match self.store.create_user(&user, &key).await {
            Err(StoreError::Conflict) => Err(AuthError::UsernameTaken),
            other => other.map(|()| user).map_err(Into::into),
        }
    }

    pub async fn login(&self, credentials: Credentials, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let Credentials { username, password } = credentials;
        let name_key = username_rule::key(&username);
        let ip_key = limits::address_key(client.ip.as_deref().unwrap_or_default());
        let limited = |retry_after| AuthError::RateLimited { retry_after };
        // Held until this login is decided (see `FailureLimit`).
        let _by_ip = self.limits.login_per_ip.admit(&ip_key).map_err(limited)?;
        let _by_name = self.limits.login_per_username.admit(&name_key).map_err(limited)?;

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
            (known, self.passwords.verify(Password::new(password.clone()), stored).await?)
        };
        let Verification::Match { needs_rehash } = verification else {
            let shown: String = username.chars().filter(|c| !c.is_control()).take(64).collect();
            let detail = format!("username: {shown}");
            // Counted first: a failed audit write must not leave the attempt uncounted.
            let by_ip = self.limits.login_per_ip.record_failure(&ip_key);
            let by_name = self.limits.login_per_username.record_failure(&name_key);
            self.audit(AuditKind::LoginFailed, known.as_ref(), None, client, Some(detail)).await?;
            return match (by_ip, by_name) {
                (Err(retry_after), _) | (_, Err(retry_after)) => Err(AuthError::RateLimited { retry_after }),
                _ => Err(AuthError::InvalidCredentials),
            };
        };
        let Some(user) = known else {
            return Err(AuthError::InvalidCredentials);
        };
        let user = if needs_rehash {
            self.upgraded(user, Password::new(password)).await?
        } else {
            user
        };
        let tokens = self.start_session(&user, client, AuditKind::LoginOk).await?;
        self.session_created(&tokens.session).await;
        Ok(tokens)
    }

    /// `user` with its password hash made again under the current argon2
    /// parameters. A login running alongside may have upgraded it first: then
    /// that hash is the one the session is made against, unless the password
    /// itself was changed meanwhile.
    async fn upgraded(&self, user: UserRecord, password: Password) -> Result<UserRecord, AuthError> {
        let upgraded = self.passwords.hash(password).await?;
        if self.store.upgrade_password_hash(&user.id, &user.password_hash, &upgraded).await? {
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

    /// Starts a session for `user`, recording `started_by` (a login or a
    /// registration) with it, unless the user's password has changed from
    /// `user.password_hash` meanwhile.
    async fn start_session(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
        started_by: AuditKind,
    ) -> Result<NewTokens, AuthError> {
        let now = self.now();
        let refresh = RefreshToken::generate();
        let id = uuid::Uuid::new_v4().to_string();
        let event = self.audit_record(started_by, Some(user), Some(&id), client, None);
        let session = self
            .store
            .create_session(
                &NewSession {
                    id,
                    user_id: user.id.clone(),
                    username: user.username.clone(),
                    role: user.role.clone(),
                    now,
                    idle_ttl: self.settings.refresh_idle_ttl,
                    max_age: self.settings.session_max_age,
                    user_agent: client
                        .user_agent
                        .as_ref()
                        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
                    ip: client.ip.clone(),
                    token_hash: refresh.hash(),
                    password_hash: user.password_hash.clone(),
                },
                &event,
            )
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let access = self.tokens.issue(&user.id, &user.username, &user.role, &session.id, now)?;
        Ok(NewTokens {
            access,
            refresh,
            session,
        })
    }

    /// Rotates the presented refresh token. A replay inside the grace window gets
    /// the same successor; an older token revokes the whole session.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let presented = RefreshToken::parse(presented).ok_or(AuthError::RefreshRejected)?;
        let hash = presented.hash();
        let now = self.now();
        let successor = RefreshToken::generate();
        let sealed = Successor {
            hash: successor.hash(),
            sealed: presented.seal(&successor),
        };
        let rules = RotationRules {
            now,
            grace: self.settings.refresh_grace,
            idle_ttl: self.settings.refresh_idle_ttl,
        };
        let mut retry_after = 0;
        let admit = |session: &SessionRecord| match self.limits.refreshes_per_session.check(&session.id) {
            Ok(()) => true,
            Err(wait) => {
                retry_after = wait;
                false
            }
        };
        let rotation = self
            .store
            .rotate_refresh_token(&hash, &sealed, rules, admit)
            .await?;
        let (session, refresh) = match rotation {
            Rotation::Rotated(session) => (session, successor),
            Rotation::Replayed {
                session,
                successor_sealed,
            } => {
                let earlier = presented.unseal(&successor_sealed).ok_or(AuthError::RefreshRejected)?;
                (session, earlier)
            }
            Rotation::Reused(session) => {
                self.sessions_revoked(&session.user_id, vec![session.id.clone()], "refresh_reuse")
                    .await;
                tracing::warn!(session = %session.id, user = %session.user_id, "refresh token reuse: session revoked");
                let user = self.store.user_by_id(&session.user_id).await?;
                self.audit(
                    AuditKind::RefreshReuse,
                    user.as_ref(),
                    Some(&session.id),
                    client,
                    Some("an already-rotated refresh token was presented".to_string()),
                )
                .await?;
                return Err(AuthError::RefreshRejected);
            }
            Rotation::Refused(_) => return Err(AuthError::RateLimited { retry_after }),
            Rotation::Ended(_) | Rotation::Unknown => return Err(AuthError::RefreshRejected),
        };
        let access = self
            .tokens
            .issue(&session.user_id, &session.username, &session.role, &session.id, now)?;
        Ok(NewTokens {
            access,
            refresh,
            session,
        })
    }

    /// Who the refresh cookie belongs to, for rendering a page: the session is
    /// looked up but not rotated (a page load must not race the tabs' refreshes),
    /// and an access token is handed over for it (minted, or the session's
    /// previous page token while it has half its lifetime left). A lookup made
    /// in the same second answers again (see `page_lookups`); revocation is
    /// checked on every load.
    pub async fn page_session(&self, cookie: Option<&str>) -> Result<Option<PageSession>, AuthError> {
        self.cookie_session(cookie, true).await
    }

    /// As [`Auth::page_session`], for a form post that acts for the session:
    /// always read from the database, so a session revoked a moment ago on
    /// another instance cannot act before the notice arrives.
    pub async fn form_session(&self, cookie: Option<&str>) -> Result<Option<PageSession>, AuthError> {
        self.cookie_session(cookie, false).await
    }

    async fn cookie_session(&self, cookie: Option<&str>, recent_lookup: bool) -> Result<Option<PageSession>, AuthError> {
        let Some(token) = cookie.and_then(RefreshToken::parse) else {
            return Ok(None);
        };
        let now = self.now();
        let hash = token.hash();
        let recent = recent_lookup.then(|| self.page_lookups.get(&hash, now)).flatten();
        let session = match recent {
            Some(session) => session,
            None => {
                let grace = self.settings.refresh_grace;
                let Some(found) = self.store.session_for_page(&hash, now, grace).await? else {
                    return Ok(None);
                };
                self.page_lookups.remember(&hash, &found, now);
                found.session
            }
        };
        if self.revoked.contains(&session.id) {
            return Ok(None);
        }
        let access = self
            .tokens
            .issue_for_page(&session.user_id, &session.username, &session.role, &session.id, now)?;
        Ok(Some(PageSession {
            claims: access.claims,
            hydration: PageAuth {
                access_token: access.token,
                expires_in: access.expires_in,
                username: session.username,
            },
        }))
    }

    /// Ends the session the refresh token belongs to. Quietly does nothing
    /// without a valid one: logging out twice is not an error.
    pub async fn logout(&self, presented: Option<&str>, client: &ClientInfo) -> Result<(), AuthError> {
        let Some(token) = presented.and_then(RefreshToken::parse) else {
            return Ok(());
        };
        let Some(session) = self.store.session_by_token(&token.hash()).await? else {
            return Ok(());
        };
        if self.store.revoke_session(&session.id, "logout", self.now()).await? {
            self.sessions_revoked(&session.user_id, vec![session.id.clone()], "logout")
                .await;
            self.audit_ended(AuditKind::Logout, &session.user_id, &session.id, client, None)
                .await;
        }
        Ok(())
    }

    /// Records a logout whose revocation has committed. The sessions are
    /// ended either way, and the caller is told so: a failure here is only
    /// logged, since answering with an error would keep a cookie, and a belief
    /// in a live session, that are no longer good.
    async fn audit_ended(
        &self,
        kind: AuditKind,
        user_id: &str,
        session_id: &str,
        client: &ClientInfo,
        detail: Option<String>,
    ) {
        let recorded = match self.store.user_by_id(user_id).await {
            Ok(user) => self.audit(kind, user.as_ref(), Some(session_id), client, detail).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = recorded {
            tracing::warn!(error = %err, kind = kind.as_str(), "a logout's audit event could not be written");
        }
    }

    /// Checks an access token completely: signature, header, claims, expiry and
    /// whether its session was revoked. No database read unless the token names
    /// a key this instance has not seen (rotated elsewhere).
    pub async fn authenticate(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        let now = self.now();
        let claims = match self.tokens.verify(token, now) {
            Err(TokenError::UnknownKey) if self.tokens.keys().reload_if_stale(now).await? => {
                self.tokens.verify(token, now)?
            }
            other => other?,
        };
        if self.revoked.contains(&claims.sid) {
            return Err(AuthError::SessionRevoked);
        }
        Ok(claims)
    }

    pub async fn logout_all(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<(), AuthError> {
        let revoked = self
            .store
            .revoke_user_sessions(&claims.sub, "logout_all", self.now())
            .await?;
        let detail = format!("{} sessions revoked", revoked.len());
        self.sessions_revoked(&claims.sub, revoked, "logout_all").await;
        self.audit_ended(AuditKind::LogoutAll, &claims.sub, &claims.sid, client, Some(detail))
            .await;
        Ok(())
    }

    pub async fn sessions(&self, claims: &AccessClaims) -> Result<Vec<SessionView>, AuthError> {
        let sessions = self.store.live_sessions(&claims.sub, self.now()).await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.id == claims.sid,
                expires_at: s.ends_at(),
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }

    /// Revokes one of the caller's own sessions; another user's is "not found".
    pub async fn revoke_session(
        &self,
        claims: &AccessClaims,
        session_id: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        // Session ids are UUIDs; anything else names no session at all.
        if uuid::Uuid::parse_str(session_id).is_err() {
            return Err(AuthError::NotFound);
        }
        let session = self.store.session(session_id).await?;
        let Some(session) = session.filter(|s| s.user_id == claims.sub && s.is_live(self.now())) else {
            return Err(AuthError::NotFound);
        };
        if self.store.revoke_session(&session.id, "revoked_by_user", self.now()).await? {
            self.sessions_revoked(&claims.sub, vec![session.id.clone()], "revoked_by_user")
                .await;
            let user = self.store.user_by_id(&claims.sub).await?;
            self.audit(AuditKind::SessionRevoked, user.as_ref(), Some(&session.id), client, None)
                .await?;
        }
        Ok(())
    }

    /// Changes the password and revokes every other session of the user.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        change: PasswordChange,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let name_key = username_rule::key(&user.username);
        let _attempt = self
            .limits
            .login_per_username
            .admit(&name_key)
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        let verification = if change.current_password.chars().count() > password_rule::MAX_CHARS {
            Verification::Mismatch
        } else {
            self.passwords
                .verify(Password::new(change.current_password), Some(user.password_hash.clone()))
                .await?
        };
        if verification == Verification::Mismatch {
            return Err(match self.limits.login_per_username.record_failure(&name_key) {
                Err(retry_after) => AuthError::RateLimited { retry_after },
                Ok(()) => AuthError::WrongPassword,
            });
        }
        let strength = password_rule::check(&change.new_password, &[&user.username]);
        if !strength.acceptable() {
            return Err(AuthError::WeakPassword(strength.reasons));
        }
        let hash = self.passwords.hash(Password::new(change.new_password)).await?;
        let revoked = self
            .store
            .change_password(&user.id, &hash, &claims.sid, self.now())
            .await?;
        let detail = format!("{} other sessions revoked", revoked.len());
        self.sessions_revoked(&user.id, revoked, "password_changed").await;
        self.publish(SessionEvent::PasswordChanged {
            user_id: user.id.clone(),
            session_id: claims.sid.clone(),
            at: self.now(),
        })
        .await;
        self.audit(AuditKind::PasswordChanged, Some(&user), Some(&claims.sid), client, Some(detail))
            .await
    }

    pub async fn me(&self, claims: &AccessClaims) -> Result<Me, AuthError> {
        // Names never change: the token's word is enough, and `/api/me` (the
        // most frequent call) reads no table.
        if !claims.preferred_username.is_empty() {
            return Ok(Me {
                id: claims.sub.clone(),
                username: claims.preferred_username.clone(),
                role: claims.role.clone(),
                session_id: claims.sid.clone(),
            });
        }
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        Ok(Me {
            id: user.id,
            username: user.username,
            role: user.role,
            session_id: claims.sid.clone(),
        })
    }

    fn require_admin(claims: &AccessClaims) -> Result<(), AuthError> {
        if claims.role == ROLE_ADMIN {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    pub async fn admin_users(&self, claims: &AccessClaims) -> Result<Vec<UserView>, AuthError> {
        Self::require_admin(claims)?;
        let users = self.store.list_users(ADMIN_LIST_LIMIT).await?;
        Ok(users
            .into_iter()
            .map(|u| UserView {
                id: u.id,
                username: u.username,
                role: u.role,
                created_at: u.created_at,
            })
            .collect())
    }

    pub async fn admin_events(&self, claims: &AccessClaims) -> Result<Vec<AuditEventView>, AuthError> {
        Self::require_admin(claims)?;
        let events = self.store.recent_audit(ADMIN_LIST_LIMIT).await?;
        Ok(events
            .into_iter()
            .map(|e| AuditEventView {
                id: e.id,
                at: e.at,
                kind: e.kind,
                user_id: e.user_id,
                username: e.username,
                session_id: e.session_id,
                ip: e.ip,
                user_agent: e.user_agent,
                detail: e.detail,
            })
            .collect())
    }

    pub fn jwks(&self) -> Jwks {
        self.tokens.keys().jwks(self.now())
    }

    async fn audit(
        &self,
        kind: AuditKind,
        user: Option<&UserRecord>,
        session_id: Option<&str>,
        client: &ClientInfo,
        detail: Option<String>,
    ) -> Result<(), AuthError> {
        let event = self.audit_record(kind, user, session_id, client, detail);
        self.store.record_audit(&event).await.map_err(Into::into)
    }

    fn audit_record(
        &self,
        kind: AuditKind,
        user: Option<&UserRecord>,
        session_id: Option<&str>,
        client: &ClientInfo,
        detail: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now(),
            kind: kind.as_str().to_string(),
            user_id: user.map(|u| u.id.clone()),
            username: user.map(|u| u.username.clone()),
            session_id: session_id.map(str::to_string),
            ip: client.ip.clone(),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            detail,
        }
    }
}

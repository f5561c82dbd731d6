//! The auth core: accounts, passwords, access tokens, sessions and refresh
//! rotation, revocation, rate limits and the audit trail. No HTTP in here: the
//! server module turns requests into these calls and errors into status codes.
//!
//! [`Auth`] is the core's one entry point; its use cases are `impl Auth`
//! blocks, a file each:
//! - [`accounts`]: registration, creating users, changing a password, `me`;
//! - [`login`]: password login and the start of a session;
//! - [`refresh`]: refresh-token rotation and reuse detection, by the rules in
//!   [`rotation`] (one pure function, RFC 9700 §4.14.2);
//! - [`page_session`]: who a page load or a no-JS form post acts for, from
//!   the refresh cookie;
//! - [`sessions`]: checking access tokens, logout, listing and revoking
//!   sessions;
//! - [`email`]: asking for and verifying an e-mail address; [`recovery`]:
//!   password reset by mail (tokens: [`mail_token`], texts: [`letters`]);
//! - [`passkeys`]: adding passkeys and signing in with them (WebAuthn);
//! - [`second_factor`]: authenticator apps ([`totp`]), recovery codes and the
//!   second step of a password sign-in; [`step_up`]: the recent sign-in that
//!   sensitive changes need, `POST /auth/reauth`, and the second-factor policy;
//! - [`admin`]: the admin listings, paged by [`paging`]; [`audit`]: the audit trail;
//! - [`upkeep`]: periodic pruning and catching up with other instances;
//!   [`events`]: session events to sockets and other instances.
//!
//! The parts they are built from: [`password`] (argon2id), [`access_token`]
//! and [`keys`] (Ed25519 JWTs, encrypted at rest by [`key_encryption`]), [`refresh_token`], [`revocation`] (revoked
//! sessions in memory), [`limits`] (rate limits), [`clock`] (time, injected).
//! Each use case reads the clock once and passes that instant down.

pub mod access_token;
mod accounts;
mod admin;
mod audit;
mod cache;
pub mod clock;
mod ed25519;
pub mod email;
mod error;
pub mod events;
pub mod key_encryption;
pub mod keys;
mod letters;
pub mod limits;
mod login;
pub mod mail_token;
mod page_lookups;
mod page_session;
pub mod paging;
mod passkeys;
pub mod password;
mod recovery;
mod refresh;
pub mod refresh_token;
pub mod revocation;
pub mod rotation;
mod second_factor;
mod sessions;
mod step_up;
pub mod totp;
mod upkeep;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use tokio::sync::Notify;

use access_token::{AccessTokens, IssuedAccessToken};
use clock::SharedClock;
use events::EventBus;
use key_encryption::KeyEncryptionKey;
use keys::{Jwks, KeyRing};
use limits::Limits;
use page_lookups::PageLookups;
use password::PasswordHasher;
use refresh_token::RefreshToken;
use revocation::RevokedSessions;

pub use audit::AuditKind;
pub use error::{AuthError, WithSources};
pub use page_session::{CookieChange, CookieSession, PageSession};
pub use second_factor::{LoginOutcome, MFA_TOKEN_SECONDS};
pub use step_up::ReauthProof;

use crate::config::Settings;
use crate::store::{SessionRecord, Store};

pub use crate::protocol::{ROLE_ADMIN, ROLE_USER};

/// Who is asking, as far as the network can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Stored user agents are cut to this many characters.
const MAX_USER_AGENT: usize = 256;

impl ClientInfo {
    /// The user agent as stored: at most [`MAX_USER_AGENT`] characters.
    fn stored_user_agent(&self) -> Option<String> {
        self.user_agent.as_ref().map(|ua| ua.chars().take(MAX_USER_AGENT).collect())
    }
}

/// What a login, registration or refresh hands out.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access: IssuedAccessToken,
    pub refresh: RefreshToken,
    pub session: SessionRecord,
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
    /// When revocations were last read from the database (SQLite's poll).
    revocations_read_at: AtomicI64,
    /// The relying party for passkeys; `None` where they cannot work.
    webauthn: Option<webauthn_rs::Webauthn>,
    /// Told when a mail is queued, so this instance's outbox worker sends it
    /// at once rather than at its next poll.
    mail_queued: Arc<Notify>,
    /// Seals authenticator-app secrets at rest, where a key-encryption key is set.
    sealing: Option<KeyEncryptionKey>,
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
        let encryption = KeyEncryptionKey::configured(&settings)?;
        let sealing = encryption.clone();
        let keys = Arc::new(KeyRing::load(store.clone(), settings.access_ttl, encryption, now).await?);
        let tokens = AccessTokens::new(keys, settings.issuer.clone(), settings.audience.clone(), settings.access_ttl);
        let webauthn = passkeys::relying_party(&settings);
        let auth = Self {
            limits: Limits::new(&settings, clock.clone(), &store),
            page_lookups: PageLookups::new(settings.refresh_grace),
            revoked: RevokedSessions::new(settings.revocation_memory()),
            store,
            clock,
            settings,
            passwords,
            tokens,
            events: EventBus::default(),
            prune_due_at: AtomicI64::new(i64::MIN),
            revocations_read_at: AtomicI64::new(now),
            mail_queued: Arc::default(),
            webauthn,
            sealing,
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

    /// Whether a key to sign new access tokens with is loaded (readiness).
    pub fn has_signing_key(&self) -> bool {
        self.tokens.keys().active().is_some()
    }

    /// Whether the signing keys are encrypted at rest.
    pub fn signing_keys_encrypted(&self) -> bool {
        self.tokens.keys().is_encrypted()
    }

    /// `count` mails were committed to the outbox: this instance's worker
    /// sends them at once.
    fn mails_queued(&self, count: usize) {
        crate::metrics::mails_queued(count);
        self.mail_queued.notify_one();
    }

    /// What this instance's outbox worker waits on between polls.
    pub fn mail_queued(&self) -> Arc<Notify> {
        Arc::clone(&self.mail_queued)
    }

    pub fn jwks(&self) -> Jwks {
        self.tokens.keys().jwks(self.now())
    }
}

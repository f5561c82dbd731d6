//! A second factor: setting up an authenticator app, its recovery codes, and
//! the second step of a password sign-in (`POST /auth/login/mfa`).
//!
//! A password sign-in of an account with a confirmed app makes no session:
//! it leaves an `mfa_token` (256 random bits, stored as a hash) that a code
//! redeems once, within [`MFA_TOKEN_SECONDS`]; [`MFA_MAX_FAILURES`] wrong
//! codes end it. Every code tried counts against the login limits, as a
//! password does. An app code is accepted once: its time step is spent by a
//! conditional write, so a replay within the window, on any instance, fails.

use sha2::{Digest, Sha256};

use super::audit::{AuditKind, Event};
use super::events::SessionEvent;
use super::key_encryption::is_sealed;
use super::limits::address_key;
use super::refresh_token::RefreshToken;
use super::step_up::amr_with;
use super::totp::{generate_recovery_codes, qr_svg, recovery_code_hash, SecondFactorCode, TotpSecret};
use super::{Auth, AuthError, ClientInfo, NewTokens};
use crate::metrics::LoginMethod;
use crate::protocol::{username_rule, AccessClaims, MfaLogin, RecoveryCodes, SecondFactorStatus, TotpSetup};
use crate::store::{MfaChallenge, TotpRecord, UserRecord};

/// How long a sign-in waits for its second step.
pub const MFA_TOKEN_SECONDS: i64 = 300;
/// Wrong codes that end a sign-in waiting for its second step.
const MFA_MAX_FAILURES: i64 = 5;

/// What a password login leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    SignedIn(Box<NewTokens>),
    /// The account has a second factor: `mfa_token` and a code finish it.
    SecondFactor { mfa_token: RefreshToken },
}

impl LoginOutcome {
    /// The session, if the password was all it took.
    pub fn signed_in(self) -> Option<NewTokens> {
        match self {
            Self::SignedIn(tokens) => Some(*tokens),
            Self::SecondFactor { .. } => None,
        }
    }
}

/// The second factor a code proved, as the access token's `amr` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorMethod {
    App,
    Recovery,
}

impl SecondFactorMethod {
    pub fn amr(self) -> &'static str {
        match self {
            Self::App => "otp",
            Self::Recovery => "recovery",
        }
    }
}

fn mfa_token_hash(token: &RefreshToken) -> String {
    hex::encode(Sha256::new_with_prefix(b"gatehouse/mfa-token/v1\0").chain_update(token.expose()).finalize())
}

/// The associated data a user's sealed app secret is bound to.
fn sealing_label(user_id: &str) -> String {
    format!("totp:{user_id}")
}

impl Auth {
    /// The app secret as stored: sealed where a key-encryption key is set.
    fn seal_totp(&self, user_id: &str, secret: &TotpSecret) -> Result<String, AuthError> {
        match &self.sealing {
            Some(key) => key.seal(&sealing_label(user_id), secret.as_bytes()).map_err(AuthError::Keys),
            None => Ok(secret.to_base32()),
        }
    }

    fn open_totp(&self, user_id: &str, stored: &str) -> Result<TotpSecret, AuthError> {
        if is_sealed(stored) {
            let key = self
                .sealing
                .as_ref()
                .ok_or(AuthError::SecondFactor("an app secret is sealed and no key-encryption key is set"))?;
            return key.open(&sealing_label(user_id), stored).map(TotpSecret::from_bytes).map_err(AuthError::Keys);
        }
        TotpSecret::from_base32(stored).ok_or(AuthError::SecondFactor("a stored app secret is not base32"))
    }

    /// The user's confirmed app secret, if they have one.
    async fn confirmed_totp(&self, user_id: &str) -> Result<Option<TotpSecret>, AuthError> {
        match self.store.totp_of(user_id).await? {
            Some(record) if record.is_confirmed() => Ok(Some(self.open_totp(user_id, &record.secret)?)),
            _ => Ok(None),
        }
    }

    pub async fn second_factor_status(&self, claims: &AccessClaims) -> Result<SecondFactorStatus, AuthError> {
        let record = self.store.totp_of(&claims.sub).await?;
        let totp = record.as_ref().is_some_and(TotpRecord::is_confirmed);
        let recovery_codes_left = if totp { self.store.recovery_codes_left(&claims.sub).await? } else { 0 };
        let setup = match record {
            Some(pending) if !pending.is_confirmed() => {
                let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
                Some(self.setup_view(&user, &self.open_totp(&user.id, &pending.secret)?)?)
            }
            _ => None,
        };
        Ok(SecondFactorStatus {
            totp,
            recovery_codes_left,
            setup,
        })
    }

    /// What an app needs to be set up with `secret`: the key, its URI, the QR code.
    fn setup_view(&self, user: &UserRecord, secret: &TotpSecret) -> Result<TotpSetup, AuthError> {
        let setup_failed = || AuthError::SecondFactor("the setup could not be drawn");
        let otpauth_uri = secret
            .otpauth_uri(&self.settings.totp_issuer, &user.username)
            .ok_or_else(setup_failed)?;
        let qr_svg = qr_svg(&otpauth_uri).ok_or_else(setup_failed)?;
        Ok(TotpSetup {
            secret: secret.to_base32(),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Begins setting up an app: a new secret, kept unconfirmed (and asked
    /// for nowhere) until [`Auth::confirm_totp`]. A sensitive change.
    pub async fn begin_totp(&self, claims: &AccessClaims) -> Result<TotpSetup, AuthError> {
        self.require_recent_auth(claims)?;
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let secret = TotpSecret::generate();
        let setup = self.setup_view(&user, &secret)?;
        let stored = self.seal_totp(&user.id, &secret)?;
        if !self.store.begin_totp(&user.id, &stored, self.now()).await? {
            return Err(AuthError::TotpEnabled);
        }
        Ok(setup)
    }

    /// Confirms the setup under way with a code from the app: from now on
    /// sign-in asks for one. Answers the recovery codes, shown this once.
    /// The session that confirmed it has proved the app (`amr` gains `otp`).
    pub async fn confirm_totp(&self, claims: &AccessClaims, code: &str, client: &ClientInfo) -> Result<RecoveryCodes, AuthError> {
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let pending = self
            .store
            .totp_of(&user.id)
            .await?
            .filter(|record| !record.is_confirmed())
            .ok_or(AuthError::TotpNotEnabled)?;
        let secret = self.open_totp(&user.id, &pending.secret)?;
        let attempt = self.limits.login_attempt(&username_rule::key(&user.username), &client_key(client)).await?;
        let now = self.now();
        let Some(step) = secret.check(code, now) else {
            self.second_factor_failed(&user, claims.sid.as_str(), client, "setup").await?;
            return Err(AuthError::InvalidCode);
        };
        self.limits.login_succeeded(attempt).await?;
        let codes = generate_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|code| recovery_code_hash(code)).collect();
        if !self.store.confirm_totp(&user.id, pending.created_at, step, &hashes, now).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        self.store
            .session_authenticated(&claims.sid, &amr_with(&claims.amr, SecondFactorMethod::App.amr()), now)
            .await?;
        self.second_factor_changed(&user, claims, client, AuditKind::TotpEnabled, "totp_enabled", now).await?;
        Ok(RecoveryCodes { recovery_codes: codes })
    }

    /// Turns the app off, with its recovery codes. A sensitive change.
    pub async fn remove_totp(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        if !self.store.remove_totp(&user.id).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        self.second_factor_changed(&user, claims, client, AuditKind::TotpDisabled, "totp_disabled", self.now())
            .await
    }

    /// Removes the app and recovery codes of `username`, for an operator
    /// (`gatehouse user remove-second-factor`) when both are lost: the
    /// person then signs in with the password alone, and sets one up again.
    pub async fn remove_second_factor_of(&self, username: &str) -> Result<(), AuthError> {
        let key = username_rule::key(username);
        let user = self.store.user_by_name_key(&key).await?.ok_or(AuthError::NotFound)?;
        if !self.store.remove_totp(&user.id).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        let now = self.now();
        self.audit(Event {
            kind: AuditKind::TotpDisabled,
            at: now,
            account: Some((&user).into()),
            session_id: None,
            client: &ClientInfo::default(),
            detail: Some("removed by an operator".to_string()),
        })
        .await?;
        self.publish(SessionEvent::AccountChanged {
            user_id: user.id.clone(),
            change: "totp_disabled".to_string(),
            at: now,
        })
        .await;
        Ok(())
    }

    /// New recovery codes, voiding the old ones. A sensitive change.
    pub async fn regenerate_recovery_codes(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<RecoveryCodes, AuthError> {
        self.require_recent_auth(claims)?;
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let codes = generate_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|code| recovery_code_hash(code)).collect();
        let now = self.now();
        if !self.store.replace_recovery_codes(&user.id, &hashes, now).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        self.second_factor_changed(&user, claims, client, AuditKind::RecoveryCodesRenewed, "recovery_codes_renewed", now)
            .await?;
        Ok(RecoveryCodes { recovery_codes: codes })
    }

    /// After a right password: a session, or for an account with an app,
    /// the sign-in waiting for its second step.
    pub(super) async fn password_accepted(&self, user: &UserRecord, client: &ClientInfo) -> Result<LoginOutcome, AuthError> {
        // Whether one is confirmed is enough here: the secret is read at the second step.
        let has_app = self.store.totp_of(&user.id).await?.as_ref().is_some_and(TotpRecord::is_confirmed);
        if !has_app {
            let tokens = self.start_session(user, client, AuditKind::LoginOk, "pwd").await?;
            return Ok(LoginOutcome::SignedIn(Box::new(tokens)));
        }
        let token = RefreshToken::generate();
        let challenge = MfaChallenge {
            user_id: user.id.clone(),
            password_hash: user.password_hash.clone(),
            expires_at: self.now() + MFA_TOKEN_SECONDS,
        };
        self.store.add_mfa_challenge(&mfa_token_hash(&token), &challenge).await?;
        Ok(LoginOutcome::SecondFactor { mfa_token: token })
    }

    /// The second step of a password sign-in: a session if `code` is right.
    /// Every failure is `InvalidCode`: a wrong, replayed or spent code, and
    /// an unknown, used or expired `mfa_token` alike.
    #[tracing::instrument(name = "login_second_step", skip_all)]
    pub async fn login_second_step(&self, step: MfaLogin, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let token = RefreshToken::parse(step.mfa_token.trim()).ok_or(AuthError::InvalidCode)?;
        let hash = mfa_token_hash(&token);
        let now = self.now();
        let challenge = self.store.mfa_challenge(&hash, now).await?.ok_or(AuthError::InvalidCode)?;
        let user = self.store.user_by_id(&challenge.user_id).await?.ok_or(AuthError::InvalidCode)?;
        let attempt = self.limits.login_attempt(&username_rule::key(&user.username), &client_key(client)).await?;
        let Some(method) = self.check_second_factor(&user.id, &step.code, now).await? else {
            self.store.mfa_challenge_failed(&hash, MFA_MAX_FAILURES).await?;
            self.second_factor_failed(&user, "", client, "sign-in").await?;
            tracing::info!(outcome = "invalid_code", "login second step");
            crate::metrics::login(LoginMethod::Password, "invalid_code");
            return Err(AuthError::InvalidCode);
        };
        if !self.store.take_mfa_challenge(&hash, now).await? {
            return Err(AuthError::InvalidCode);
        }
        self.limits.login_succeeded(attempt).await?;
        let user = UserRecord {
            password_hash: challenge.password_hash,
            ..user
        };
        let tokens = self
            .start_session(&user, client, AuditKind::LoginOk, &format!("pwd {}", method.amr()))
            .await?;
        if method == SecondFactorMethod::Recovery {
            self.recovery_code_used(&user, &tokens.session.id, client, now).await?;
        }
        tracing::info!(outcome = "ok", method = method.amr(), "login second step");
        crate::metrics::login(LoginMethod::Password, "code_ok");
        Ok(tokens)
    }

    /// Which second factor `code` proves for the user, spending it: an app
    /// code's time step, or a recovery code. `None` if it proves nothing.
    pub(super) async fn check_second_factor(
        &self,
        user_id: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<SecondFactorMethod>, AuthError> {
        match SecondFactorCode::parse(code) {
            Some(SecondFactorCode::App(code)) => {
                let Some(secret) = self.confirmed_totp(user_id).await? else {
                    return Ok(None);
                };
                let Some(step) = secret.check(&code, now) else {
                    return Ok(None);
                };
                let spent = self.store.spend_totp_step(user_id, step).await?;
                Ok(spent.then_some(SecondFactorMethod::App))
            }
            Some(SecondFactorCode::Recovery(code)) => {
                let spent = self.store.spend_recovery_code(user_id, &recovery_code_hash(&code), now).await?;
                Ok(spent.then_some(SecondFactorMethod::Recovery))
            }
            None => Ok(None),
        }
    }

    pub(super) async fn recovery_code_used(
        &self,
        user: &UserRecord,
        session_id: &str,
        client: &ClientInfo,
        now: i64,
    ) -> Result<(), AuthError> {
        let left = self.store.recovery_codes_left(&user.id).await?;
        self.audit(Event {
            kind: AuditKind::RecoveryCodeUsed,
            at: now,
            account: Some(user.into()),
            session_id: Some(session_id),
            client,
            detail: Some(format!("{left} left")),
        })
        .await?;
        self.publish(SessionEvent::AccountChanged {
            user_id: user.id.clone(),
            change: "recovery_code_used".to_string(),
            at: now,
        })
        .await;
        Ok(())
    }

    async fn second_factor_failed(
        &self,
        user: &UserRecord,
        session_id: &str,
        client: &ClientInfo,
        during: &str,
    ) -> Result<(), AuthError> {
        self.audit(Event {
            kind: AuditKind::SecondFactorFailed,
            at: self.now(),
            account: Some(user.into()),
            session_id: (!session_id.is_empty()).then_some(session_id),
            client,
            detail: Some(format!("wrong code during {during}")),
        })
        .await
    }

    async fn second_factor_changed(
        &self,
        user: &UserRecord,
        claims: &AccessClaims,
        client: &ClientInfo,
        kind: AuditKind,
        change: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.audit(Event {
            kind,
            at: now,
            account: Some(user.into()),
            session_id: Some(&claims.sid),
            client,
            detail: None,
        })
        .await?;
        self.publish(SessionEvent::AccountChanged {
            user_id: user.id.clone(),
            change: change.to_string(),
            at: now,
        })
        .await;
        Ok(())
    }
}

/// The key a client's address is limited by.
pub(super) fn client_key(client: &ClientInfo) -> String {
    address_key(client.ip.as_deref().unwrap_or_default())
}

//! The audit trail: what happened to whose account, from where.

use super::{Auth, AuthError, ClientInfo};
use crate::store::{AuditRecord, SessionRecord, UserRecord};

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
    /// A session ended to make room for a new one (`max_sessions_per_user`).
    SessionEvicted,
    PasswordChanged,
    RoleChanged,
    /// An address was asked for; its verification mail queued.
    EmailChangeAsked,
    EmailVerified,
    /// A reset link was asked for (whether or not one was sent).
    PasswordResetAsked,
    /// A reset link was used.
    PasswordReset,
    PasskeyAdded,
    /// A sign-in with a passkey.
    PasskeyLogin,
    PasskeyRenamed,
    PasskeyRemoved,
    TotpEnabled,
    TotpDisabled,
    RecoveryCodesRenewed,
    /// A sign-in or re-authentication with a recovery code.
    RecoveryCodeUsed,
    /// A wrong code: at sign-in's second step or confirming a setup.
    SecondFactorFailed,
    /// `POST /auth/reauth` made a session's sign-in recent.
    Reauthenticated,
    ReauthFailed,
    /// A sign-in refused because the passkey's signature counter did not go
    /// up: another authenticator may hold a copy of its key.
    PasskeyPossiblyCloned,
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
            Self::SessionEvicted => "session_evicted",
            Self::PasswordChanged => "password_changed",
            Self::RoleChanged => "role_changed",
            Self::EmailChangeAsked => "email_change_asked",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetAsked => "password_reset_asked",
            Self::PasswordReset => "password_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyLogin => "passkey_login",
            Self::PasskeyRenamed => "passkey_renamed",
            Self::PasskeyRemoved => "passkey_removed",
            Self::TotpEnabled => "totp_enabled",
            Self::TotpDisabled => "totp_disabled",
            Self::RecoveryCodesRenewed => "recovery_codes_renewed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::Reauthenticated => "reauth",
            Self::ReauthFailed => "reauth_failed",
            Self::PasskeyPossiblyCloned => "passkey_possibly_cloned",
        }
    }
}

/// Whose account an event concerns: its id and name as recorded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Account<'a> {
    pub id: &'a str,
    pub username: &'a str,
}

impl<'a> From<&'a UserRecord> for Account<'a> {
    fn from(user: &'a UserRecord) -> Self {
        Self {
            id: &user.id,
            username: &user.username,
        }
    }
}

impl<'a> From<&'a SessionRecord> for Account<'a> {
    fn from(session: &'a SessionRecord) -> Self {
        Self {
            id: &session.user_id,
            username: &session.username,
        }
    }
}

/// One event to record, happened at `at`.
pub(super) struct Event<'a> {
    pub kind: AuditKind,
    pub at: i64,
    pub account: Option<Account<'a>>,
    pub session_id: Option<&'a str>,
    pub client: &'a ClientInfo,
    pub detail: Option<String>,
}

impl Event<'_> {
    pub fn record(self) -> AuditRecord {
        AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.at,
            kind: self.kind.as_str().to_string(),
            user_id: self.account.map(|a| a.id.to_string()),
            username: self.account.map(|a| a.username.to_string()),
            session_id: self.session_id.map(str::to_string),
            ip: self.client.ip.clone(),
            user_agent: self.client.stored_user_agent(),
            detail: self.detail,
        }
    }
}

impl Auth {
    pub(super) async fn audit(&self, event: Event<'_>) -> Result<(), AuthError> {
        self.store.record_audit(&event.record()).await.map_err(Into::into)
    }

    /// Records an event after a revocation that has committed. The sessions
    /// are ended either way, and the caller is told so: a failure here is
    /// only logged, since answering with an error would keep a cookie, and a
    /// belief in a live session, that are no longer good.
    pub(super) async fn audit_after_revocation(&self, event: Event<'_>) {
        let kind = event.kind;
        if let Err(err) = self.audit(event).await {
            tracing::warn!(error = %super::WithSources(&err), kind = kind.as_str(), "an audit event could not be written after a revocation");
        }
    }
}

//! Step-up: a sensitive change (password, address, passkeys, the second
//! factor, recovery codes, logging out everywhere) needs a sign-in within
//! `reauth_window`, else it is refused with `ReauthRequired`;
//! `POST /auth/reauth` makes this session's sign-in recent again. And the
//! policy that some users must sign in with a second factor.

use super::access_token::IssuedAccessToken;
use super::audit::{AuditKind, Event};
use super::password::{Password, Verification};
use super::second_factor::client_key;
use super::{Auth, AuthError, ClientInfo};
use crate::protocol::{password_rule, username_rule, AccessClaims};

/// How a person proves it is them again.
pub enum ReauthProof {
    Password(String),
    /// An authenticator-app code or a recovery code.
    Code(String),
    /// An answer to a passkey sign-in ceremony (`POST /auth/passkeys/login/start`)
    /// with one of the user's own passkeys.
    Passkey {
        ceremony: String,
        credential: Box<webauthn_rs::prelude::PublicKeyCredential>,
    },
}

/// `amr` methods that are a second factor, or two factors in one (a passkey
/// with user verification).
const SECOND_FACTORS: [&str; 3] = ["otp", "recovery", "webauthn"];

/// `amr` with `method` added (once), space-separated as sessions keep it.
pub(super) fn amr_with(amr: &[String], method: &str) -> String {
    let mut methods: Vec<&str> = amr.iter().map(String::as_str).collect();
    if !methods.contains(&method) {
        methods.push(method);
    }
    methods.join(" ")
}

impl Auth {
    /// Refuses a sensitive change unless the session's user signed in or
    /// re-authenticated within `reauth_window`.
    pub fn require_recent_auth(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        let age = self.now().saturating_sub(claims.auth_time);
        if claims.auth_time > 0 && age <= self.settings.reauth_window {
            Ok(())
        } else {
            Err(AuthError::ReauthRequired)
        }
    }

    /// Whether the policy (`require_second_factor`) wants a second factor
    /// from this session's user that the session has not shown.
    pub fn lacks_required_second_factor(&self, claims: &AccessClaims) -> bool {
        let applies = match self.settings.require_second_factor.as_str() {
            "everyone" => true,
            "admins" => claims.role == crate::protocol::ROLE_ADMIN,
            _ => false,
        };
        applies && !claims.amr.iter().any(|method| SECOND_FACTORS.contains(&method.as_str()))
    }

    /// Makes the session's sign-in recent: its `auth_time` becomes now and
    /// its `amr` gains the method used. Answers an access token that says so.
    /// Wrong passwords and codes count against the login limits.
    #[tracing::instrument(name = "reauth", skip_all)]
    pub async fn reauthenticate(
        &self,
        claims: &AccessClaims,
        proof: ReauthProof,
        client: &ClientInfo,
    ) -> Result<IssuedAccessToken, AuthError> {
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let attempt = self.limits.login_attempt(&username_rule::key(&user.username), &client_key(client)).await?;
        let now = self.now();
        let proved = match proof {
            ReauthProof::Password(password) => {
                let verification = if password.chars().count() > password_rule::MAX_CHARS {
                    Verification::Mismatch
                } else {
                    self.passwords
                        .verify(Password::new(password), Some(user.password_hash.clone()))
                        .await?
                };
                match verification {
                    Verification::Match { .. } => Ok("pwd"),
                    Verification::Mismatch => Err(AuthError::InvalidCredentials),
                }
            }
            ReauthProof::Code(code) => match self.check_second_factor(&user.id, &code, now).await? {
                Some(method) => Ok(method.amr()),
                None => Err(AuthError::InvalidCode),
            },
            ReauthProof::Passkey { ceremony, credential } => {
                match self.check_passkey_assertion(&ceremony, &credential, client).await {
                    Ok(passkey) if passkey.user_id == user.id => {
                        self.passkey_changed(&passkey, crate::protocol::live::PasskeyChange::Used, now).await;
                        Ok("webauthn")
                    }
                    Ok(_) | Err(AuthError::InvalidCredentials) => Err(AuthError::InvalidCredentials),
                    Err(err) => return Err(err),
                }
            }
        };
        let method = match proved {
            Ok(method) => method,
            Err(refused) => {
                self.audit(Event {
                    kind: AuditKind::ReauthFailed,
                    at: now,
                    account: Some((&user).into()),
                    session_id: Some(&claims.sid),
                    client,
                    detail: None,
                })
                .await?;
                return Err(refused);
            }
        };
        self.limits.login_succeeded(attempt).await?;
        let session = self
            .store
            .session_authenticated(&claims.sid, &amr_with(&claims.amr, method), now)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        self.audit(Event {
            kind: AuditKind::Reauthenticated,
            at: now,
            account: Some((&user).into()),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("by {method}")),
        })
        .await?;
        if method == "recovery" {
            self.recovery_code_used(&user, &claims.sid, client, now).await?;
        }
        self.tokens.issue((&session).into(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_added_once_and_order_is_kept() {
        let amr = vec!["pwd".to_string()];
        assert_eq!(amr_with(&amr, "otp"), "pwd otp");
        assert_eq!(amr_with(&amr, "pwd"), "pwd");
        assert_eq!(amr_with(&[], "webauthn"), "webauthn");
    }
}

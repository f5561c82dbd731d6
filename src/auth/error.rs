//! The core's one error type. The HTTP layer maps it to status codes in one
//! place (`server::error`); server faults keep their cause as `source`, for
//! the log, and never reach a response.

use super::access_token::TokenError;
use super::keys::KeyError;
use super::password::HashingError;
use crate::store::StoreError;

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
    #[error("That is not an e-mail address we can send to.")]
    InvalidEmail,
    #[error("That address belongs to another account.")]
    EmailTaken,
    /// A mailed token that is unknown, used, expired or superseded.
    #[error("The link is not valid any more. Ask for a new one.")]
    InvalidMailToken,
    /// A passkey the server would not register (a failed ceremony, a
    /// credential it knows already, an expired or unknown ceremony).
    #[error("The passkey could not be added. Try again.")]
    PasskeyRefused,
    #[error("A passkey's name has 1 to 64 characters.")]
    PasskeyName,
    #[error("That passkey is registered already.")]
    PasskeyTaken,
    #[error("This is the account's last way to sign in: add another passkey or a password first.")]
    LastSignInMethod,
    #[error("Passkeys need the server's public URL to be a domain name.")]
    PasskeysUnavailable,
    /// A wrong, replayed or spent code, or a second step that is unknown,
    /// used, expired or ended by wrong codes.
    #[error("That code is not right, or this sign-in has expired: try again, or sign in again.")]
    InvalidCode,
    #[error("Confirm it is you: sign in again to make this change.")]
    ReauthRequired,
    #[error("Set up a second factor first.")]
    SecondFactorRequired,
    #[error("An authenticator app is set up already: remove it first.")]
    TotpEnabled,
    #[error("No authenticator app is set up.")]
    TotpNotEnabled,
    #[error("This needs the admin role.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    /// A list asked for with a limit out of range or a cursor it did not give out.
    #[error("{0}")]
    BadPage(String),
    #[error("The database is unavailable.")]
    Unavailable(#[source] StoreError),
    #[error("storage failure")]
    Store(#[source] StoreError),
    #[error("password hashing failed")]
    Hashing(#[source] HashingError),
    #[error("signing key failure")]
    Keys(#[source] KeyError),
    /// A stored authenticator-app secret that cannot be read, or a setup
    /// that cannot be drawn.
    #[error("second factor failure: {0}")]
    SecondFactor(&'static str),
}

impl AuthError {
    /// A failure on the server's side, not the caller's: logged, and answered
    /// without detail.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Store(_) | Self::Hashing(_) | Self::Keys(_) | Self::SecondFactor(_)
        )
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable(err),
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

/// An error with its causes, one after another, for logs and the command line:
/// `storage failure: database error: …`.
pub struct WithSources<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for WithSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_shown_in_order() {
        let err = AuthError::from(StoreError::Conflict);
        assert!(err.is_server_fault());
        assert_eq!(WithSources(&err).to_string(), "storage failure: already exists");
        assert!(!AuthError::InvalidCredentials.is_server_fault());
    }
}

//! Tokens mailed in links (password reset, address verification): 256 random
//! bits from the OS, like refresh tokens, handed out once in a mail and stored
//! only as a hash under a purpose of their own, so a copy of the database
//! cannot be used to reset a password and no refresh token hash is one.

use sha2::{Digest, Sha256};

use super::refresh_token::RefreshToken;

#[derive(Clone, PartialEq, Eq)]
pub struct MailToken(RefreshToken);

impl MailToken {
    pub fn generate() -> Self {
        Self(RefreshToken::generate())
    }

    /// Accepts only what [`generate`](Self::generate) produces, with the
    /// spaces and line breaks a person may paste around it.
    pub fn parse(text: &str) -> Option<Self> {
        RefreshToken::parse(text.trim()).map(Self)
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// What the database keeps: SHA-256, hex; lookups by hash need no
    /// constant-time compare.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::new_with_prefix(b"gatehouse/mail-token/v1\0").chain_update(self.expose()).finalize())
    }
}

impl std::fmt::Debug for MailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_token_hashes_apart_from_a_refresh_token() {
        let token = MailToken::generate();
        let as_refresh = RefreshToken::parse(token.expose()).unwrap();
        assert_ne!(token.hash(), as_refresh.hash());
        assert_eq!(MailToken::parse(&format!("  {}\n", token.expose())), Some(token.clone()));
        assert_eq!(MailToken::parse("short"), None);
        assert_eq!(format!("{token:?}"), "MailToken(<redacted>)");
    }
}

//! E-mail addresses: asking for one (at registration or later) and verifying
//! it through a mailed link. An address counts only once verified; a change
//! keeps the old address until the new one is verified, and tells the old one.

use super::audit::{AuditKind, Event};
use super::letters;
use super::mail_token::MailToken;
use super::{Auth, AuthError, ClientInfo};
use crate::app::routes::VERIFY_EMAIL;
use crate::protocol::AccessClaims;
use crate::store::{MailPurpose, NewMailToken, UserRecord, Verified};

/// The longest address SMTP can carry (RFC 5321's path limit, less the brackets).
const MAX_EMAIL_CHARS: usize = 254;

/// An address as typed (trimmed) and its case-folded key, the form two
/// addresses are compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEmail {
    pub address: String,
    pub key: String,
}

/// Checks an address's syntax with `email_address` (RFC 5322's addr-spec) and
/// that lettre can send to it; no display names, no comments.
pub fn check_email(input: &str) -> Result<CheckedEmail, AuthError> {
    let address = input.trim();
    let acceptable = !address.is_empty()
        && address.chars().count() <= MAX_EMAIL_CHARS
        && !address.chars().any(char::is_control)
        && email_address::EmailAddress::parse_with_options(address, email_address::Options::default().without_display_text())
            .is_ok()
        && address.parse::<lettre::Address>().is_ok();
    if !acceptable {
        return Err(AuthError::InvalidEmail);
    }
    Ok(CheckedEmail {
        address: address.to_string(),
        key: email_key(address),
    })
}

/// The case-folded form addresses are compared and looked up in.
pub fn email_key(address: &str) -> String {
    address.trim().to_lowercase()
}

impl Auth {
    /// Asks for `email` to become the caller's address: a verification mail
    /// to it, and a notice to the verified address it would replace.
    pub async fn ask_for_email(&self, claims: &AccessClaims, email: &str, client: &ClientInfo) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        let checked = check_email(email)?;
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        self.ask_for_email_of(&user, checked, client).await
    }

    /// The address of a registration that named one.
    pub(super) async fn ask_for_email_of(&self, user: &UserRecord, checked: CheckedEmail, client: &ClientInfo) -> Result<(), AuthError> {
        match self.store.user_by_email_key(&checked.key).await? {
            Some(owner) if owner.id == user.id => return Ok(()),
            Some(_) => return Err(AuthError::EmailTaken),
            None => {}
        }
        self.limits.verification_mail(&user.id).await?;
        let now = self.now();
        let ttl = self.settings.email_verification_ttl;
        let token = MailToken::generate();
        let link = self.mail_link(VERIFY_EMAIL, &token);
        let mut mails = vec![letters::verification(&checked.address, &user.username, link, ttl / 3600, now, client)
            .into_outbox(now, now + ttl)];
        if let Some(old) = &user.email {
            mails.push(letters::change_asked(old, &user.username, &checked.address, now, client).into_outbox(now, now + ttl));
        }
        let stored = NewMailToken {
            hash: token.hash(),
            user_id: user.id.clone(),
            purpose: MailPurpose::Verification,
            email_key: Some(checked.key.clone()),
            created_at: now,
            expires_at: now + ttl,
        };
        self.store.ask_for_email(&user.id, &checked.address, &stored, &mails).await?;
        self.mails_queued(mails.len());
        self.audit(Event {
            kind: AuditKind::EmailChangeAsked,
            at: now,
            account: Some(user.into()),
            session_id: None,
            client,
            detail: Some(format!("verification mailed to {}", checked.address)),
        })
        .await
    }

    /// Redeems a verification token: the address it was mailed to becomes its
    /// account's. Reset links mailed to the old address stop working.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let token = MailToken::parse(token).ok_or(AuthError::InvalidMailToken)?;
        let now = self.now();
        let verified = self.store.redeem_verification(&token.hash(), now, email_key).await?;
        let (user_id, email) = match verified {
            Verified::Done { user_id, email } => (user_id, email),
            Verified::Invalid => return Err(AuthError::InvalidMailToken),
            Verified::Taken => return Err(AuthError::EmailTaken),
        };
        let user = self.store.user_by_id(&user_id).await?;
        self.audit(Event {
            kind: AuditKind::EmailVerified,
            at: now,
            account: user.as_ref().map(Into::into),
            session_id: None,
            client,
            detail: Some(email),
        })
        .await
    }

    /// A link to `page` on this site carrying `token`: the public URL where
    /// one is set. Never the request's `Host`, which the requester chooses.
    pub(super) fn mail_link(&self, page: &str, token: &MailToken) -> String {
        format!("{}{page}?token={}", self.site_url(), token.expose())
    }

    /// This site's origin as links name it: `public_url`, else the address
    /// the server listens on (development).
    pub fn site_url(&self) -> String {
        let configured = self.settings.public_url.trim_end_matches('/');
        if !configured.is_empty() {
            return configured.to_string();
        }
        let listening = std::env::var("LEPTOS_SITE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
        format!("http://{listening}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_folded_and_checked_by_the_crate() {
        let checked = check_email("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(checked.address, "Ada.Lovelace@Example.COM");
        assert_eq!(checked.key, "ada.lovelace@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "ada@exa mple.com",
            "ada\r\n@example.com",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(matches!(check_email(bad), Err(AuthError::InvalidEmail)), "{bad:?}");
        }
    }
}

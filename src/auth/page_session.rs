//! Who a page load or a no-JS form post acts for: the session behind the
//! refresh cookie, with an access token for it. The cookie is presented by
//! the same rules as a refresh ([`Auth::present`]): a rotated token past its
//! grace window is theft here too, and a session that has used up half of its
//! idle life gets its token rotated in the answer, so a person who browses
//! without JavaScript stays logged in while active.

use super::refresh::{Presentation, RotateWhen};
use super::refresh_token::RefreshToken;
use super::{Auth, AuthError, ClientInfo};
use crate::protocol::{AccessClaims, PageAuth};

/// The session behind a page request, as the page guard found it: the claims
/// for the server's own use while rendering, and what the browser receives.
#[derive(Debug, Clone)]
pub struct PageSession {
    pub claims: AccessClaims,
    pub hydration: PageAuth,
}

/// What the answer does with the refresh cookie.
#[derive(Debug)]
pub enum CookieChange {
    Keep,
    /// Rotated (or a lost rotation's successor handed out again): set it,
    /// for the session's life until `ends_at`.
    Renew {
        token: RefreshToken,
        ends_at: i64,
    },
    /// The token was already rotated: its session is revoked; clear it.
    Clear,
}

/// What presenting the refresh cookie on a page load or form post came to.
#[derive(Debug)]
pub struct CookieSession {
    /// Who the request acts for, if anyone.
    pub session: Option<PageSession>,
    pub cookie: CookieChange,
}

impl CookieSession {
    fn nobody(cookie: CookieChange) -> Self {
        Self { session: None, cookie }
    }
}

impl Auth {
    /// The session for rendering a page, with an access token handed over for
    /// it (minted, or the session's previous page token while it has half its
    /// lifetime left). A lookup made in the same second answers again (see
    /// `page_lookups`); revocation is checked on every load.
    #[tracing::instrument(name = "page_session", level = "debug", skip_all)]
    pub async fn page_session(&self, cookie: Option<&str>, client: &ClientInfo) -> Result<CookieSession, AuthError> {
        self.cookie_session(cookie, client, true).await
    }

    /// As [`Auth::page_session`], for a form post that acts for the session:
    /// always read from the database, so a session revoked a moment ago on
    /// another instance cannot act before the notice arrives.
    #[tracing::instrument(name = "form_session", level = "debug", skip_all)]
    pub async fn form_session(&self, cookie: Option<&str>, client: &ClientInfo) -> Result<CookieSession, AuthError> {
        self.cookie_session(cookie, client, false).await
    }

    async fn cookie_session(
        &self,
        cookie: Option<&str>,
        client: &ClientInfo,
        recent_lookup: bool,
    ) -> Result<CookieSession, AuthError> {
        let Some(token) = cookie.and_then(RefreshToken::parse) else {
            return Ok(CookieSession::nobody(CookieChange::Keep));
        };
        let now = self.now();
        let hash = token.hash();
        let recent = recent_lookup.then(|| self.page_lookups.get(&hash, now)).flatten();
        let (session, cookie) = match recent {
            Some(session) => (session, CookieChange::Keep),
            None => match self.present(&token, client, now, RotateWhen::Aging).await? {
                Presentation::Current(session) => {
                    self.page_lookups.remember(&hash, &session, now);
                    (session, CookieChange::Keep)
                }
                Presentation::Renewed(session, token) => {
                    let ends_at = session.ends_at();
                    (session, CookieChange::Renew { token, ends_at })
                }
                Presentation::Reuse => return Ok(CookieSession::nobody(CookieChange::Clear)),
                Presentation::Refused => {
                    tracing::debug!(outcome = "no_session", "page session");
                    return Ok(CookieSession::nobody(CookieChange::Keep));
                }
            },
        };
        if self.revoked.contains(&session.id) {
            tracing::debug!(outcome = "session_revoked", "page session");
            return Ok(CookieSession::nobody(CookieChange::Keep));
        }
        let access = self.tokens.issue_for_page((&session).into(), now)?;
        Ok(CookieSession {
            session: Some(PageSession {
                claims: access.claims,
                hydration: PageAuth {
                    access_token: access.token,
                    expires_in: access.expires_in,
                    username: session.username,
                },
            }),
            cookie,
        })
    }
}

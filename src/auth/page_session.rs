//! Who a page load or a no-JS form post acts for: the session behind the
//! refresh cookie, with an access token for it. The cookie is looked up, not
//! rotated (a page load must not race the tabs' refreshes), by the same rules
//! as a refresh ([`rotation::may_act_without_rotating`]).

use super::refresh_token::RefreshToken;
use super::rotation::{self, RotationRules};
use super::{Auth, AuthError};
use crate::protocol::{AccessClaims, PageAuth};
use crate::store::SessionRecord;

/// The session behind a page request, as the page guard found it: the claims
/// for the server's own use while rendering, and what the browser receives.
#[derive(Debug, Clone)]
pub struct PageSession {
    pub claims: AccessClaims,
    pub hydration: PageAuth,
}

impl Auth {
    /// The session for rendering a page, with an access token handed over for
    /// it (minted, or the session's previous page token while it has half its
    /// lifetime left). A lookup made in the same second answers again (see
    /// `page_lookups`); revocation is checked on every load.
    #[tracing::instrument(name = "page_session", level = "debug", skip_all)]
    pub async fn page_session(&self, cookie: Option<&str>) -> Result<Option<PageSession>, AuthError> {
        self.cookie_session(cookie, true).await
    }

    /// As [`Auth::page_session`], for a form post that acts for the session:
    /// always read from the database, so a session revoked a moment ago on
    /// another instance cannot act before the notice arrives.
    #[tracing::instrument(name = "form_session", level = "debug", skip_all)]
    pub async fn form_session(&self, cookie: Option<&str>) -> Result<Option<PageSession>, AuthError> {
        self.cookie_session(cookie, false).await
    }

    async fn cookie_session(
        &self,
        cookie: Option<&str>,
        recent_lookup: bool,
    ) -> Result<Option<PageSession>, AuthError> {
        let Some(token) = cookie.and_then(RefreshToken::parse) else {
            return Ok(None);
        };
        let now = self.now();
        let hash = token.hash();
        let recent = recent_lookup.then(|| self.page_lookups.get(&hash, now)).flatten();
        let session = match recent {
            Some(session) => session,
            None => match self.look_up(&hash, now).await? {
                Some(session) => session,
                None => {
                    tracing::debug!(outcome = "no_session", "page session");
                    return Ok(None);
                }
            },
        };
        if self.revoked.contains(&session.id) {
            tracing::debug!(outcome = "session_revoked", "page session");
            return Ok(None);
        }
        let access = self.tokens.issue_for_page((&session).into(), now)?;
        Ok(Some(PageSession {
            claims: access.claims,
            hydration: PageAuth {
                access_token: access.token,
                expires_in: access.expires_in,
                username: session.username,
            },
        }))
    }

    /// The session the token of `hash` may act for at `now`, read from the
    /// database and kept for the rest of this second.
    async fn look_up(&self, hash: &str, now: i64) -> Result<Option<SessionRecord>, AuthError> {
        let Some(presented) = self.store.presented_token(hash).await? else {
            return Ok(None);
        };
        let rules = RotationRules {
            now,
            grace: self.settings.refresh_grace,
        };
        let (session, token) = presented.into_parts();
        if !rotation::may_act_without_rotating(&token, &session, rules) {
            return Ok(None);
        }
        self.page_lookups.remember(hash, &session, token.rotated_at, now);
        Ok(Some(session))
    }
}

//! Sessions as their owner sees them: checking an access token, logging out
//! (here or everywhere), listing and revoking sessions, and how a revocation
//! reaches this instance's memory, the other instances and the sockets.

use std::sync::Arc;

use super::access_token::TokenError;
use super::audit::{Account, AuditKind, Event};
use super::events::SessionEvent;
use super::paging::{timed_key, List, PageRequest};
use super::refresh_token::RefreshToken;
use super::rotation::{self, RotationRules, Verdict};
use super::{Auth, AuthError, ClientInfo};
use crate::protocol::{AccessClaims, Paged, SessionView};

/// Sessions one transaction of `logout_all` revokes: on SQLite the write lock
/// is held for one such chunk at a time (a few milliseconds), so other writes
/// wait that long at most.
const LOGOUT_ALL_CHUNK: i64 = 500;

impl Auth {
    /// Checks an access token completely (RFC 9068 §4, RFC 8725): signature,
    /// header, claims, expiry and whether its session was revoked. No database
    /// read unless the token names a key this instance has not seen (rotated
    /// elsewhere).
    #[tracing::instrument(name = "authenticate", level = "debug", skip_all)]
    pub async fn authenticate(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        let now = self.now();
        let claims = match self.tokens.verify(token, now) {
            Err(TokenError::UnknownKey) if self.tokens.keys().reload_if_stale(now).await? => {
                self.tokens.verify(token, now)
            }
            other => other,
        };
        let claims = claims.inspect_err(|err| tracing::debug!(outcome = %err, "access token refused"))?;
        if self.revoked.contains(&claims.sid) {
            tracing::debug!(outcome = "session_revoked", "access token refused");
            return Err(AuthError::SessionRevoked);
        }
        Ok(claims)
    }

    /// Whether the session was revoked (as far as this instance knows, which
    /// is at most one notice behind).
    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.contains(session_id)
    }

    /// Ends the session the refresh token belongs to. Quietly does nothing
    /// without a valid one: logging out twice is not an error. A token
    /// rotated past its grace window is theft here as anywhere: the session is
    /// revoked as reuse, with that event.
    pub async fn logout(&self, presented: Option<&str>, client: &ClientInfo) -> Result<(), AuthError> {
        let Some(token) = presented.and_then(RefreshToken::parse) else {
            return Ok(());
        };
        let Some(presented) = self.store.presented_token(&token.hash()).await? else {
            return Ok(());
        };
        let now = self.now();
        let rules = RotationRules {
            now,
            grace: self.settings.refresh_grace,
        };
        let verdict = rotation::decide(&presented.token, &presented.session, rules);
        let (session, _) = presented.into_parts();
        match verdict {
            Verdict::Ended => return Ok(()),
            Verdict::Reuse => return self.reuse_detected(&session, client, now).await,
            Verdict::Rotate | Verdict::Replay => {}
        }
        if self.store.revoke_session(&session.id, "logout", now).await? {
            self.sessions_revoked(&session.user_id, vec![session.id.clone()], "logout", now)
                .await;
            self.audit_after_revocation(Event {
                kind: AuditKind::Logout,
                at: now,
                account: Some((&session).into()),
                session_id: Some(&session.id),
                client,
                detail: None,
            })
            .await;
        }
        Ok(())
    }

    /// Revokes every session of the user made until now, a chunk at a time,
    /// each chunk refused here and told to the others as soon as it commits.
    pub async fn logout_all(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        let now = self.now();
        let mut count = 0;
        loop {
            let revoked = self
                .store
                .revoke_user_sessions_chunk(&claims.sub, "logout_all", now, LOGOUT_ALL_CHUNK)
                .await?;
            if revoked.is_empty() {
                break;
            }
            count += revoked.len();
            self.sessions_revoked(&claims.sub, revoked, "logout_all", now).await;
        }
        let detail = format!("{count} sessions revoked");
        // The token's name, as `me` takes it; read only for a token without one.
        let user = if claims.preferred_username.is_empty() {
            self.store.user_by_id(&claims.sub).await.ok().flatten()
        } else {
            None
        };
        let username = user
            .as_ref()
            .map_or(claims.preferred_username.as_str(), |u| u.username.as_str());
        self.audit_after_revocation(Event {
            kind: AuditKind::LogoutAll,
            at: now,
            account: Some(Account {
                id: &claims.sub,
                username,
            }),
            session_id: Some(&claims.sid),
            client,
            detail: Some(detail),
        })
        .await;
        Ok(())
    }

    /// The caller's live sessions, the newest first, a page at a time.
    pub async fn sessions(&self, claims: &AccessClaims, page: &PageRequest) -> Result<Paged<SessionView>, AuthError> {
        let after = page.after_timed(List::Sessions)?;
        let after = after.as_ref().map(|(created_at, id)| (*created_at, id.as_str()));
        let sessions = self
            .store
            .live_sessions(&claims.sub, self.now(), after, page.rows())
            .await?;
        Ok(page.page(
            List::Sessions,
            sessions,
            |s| timed_key(s.created_at, &s.id),
            |s| SessionView {
                current: s.id == claims.sid,
                expires_at: s.ends_at(),
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                user_agent: s.user_agent,
                ip: s.ip,
            },
        ))
    }

    /// Revokes one of the caller's own sessions; another user's is "not
    /// found". The revocation and its audit event are one transaction.
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
        let now = self.now();
        let session = self.store.session(session_id).await?;
        let Some(session) = session.filter(|s| s.user_id == claims.sub && s.is_live(now)) else {
            return Err(AuthError::NotFound);
        };
        let event = Event {
            kind: AuditKind::SessionRevoked,
            at: now,
            account: Some((&session).into()),
            session_id: Some(&session.id),
            client,
            detail: None,
        }
        .record();
        if self
            .store
            .revoke_session_recorded(&session.id, "revoked_by_user", now, &event)
            .await?
        {
            self.sessions_revoked(&claims.sub, vec![session.id.clone()], "revoked_by_user", now)
                .await;
        }
        Ok(())
    }

    /// Refuses the sessions' access tokens from now on, here at once and on
    /// every other instance as soon as the notice arrives; their sockets close.
    pub(super) async fn sessions_revoked(&self, user_id: &str, session_ids: Vec<String>, reason: &str, at: i64) {
        for session_id in &session_ids {
            self.revoked.insert(session_id, at);
        }
        if session_ids.is_empty() {
            return;
        }
        self.publish(SessionEvent::SessionsRevoked {
            user_id: user_id.to_string(),
            session_ids,
            reason: reason.to_string(),
            at,
        })
        .await;
    }
}

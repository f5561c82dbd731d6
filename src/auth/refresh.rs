//! Refreshing: a refresh token presented for a new access token. Where
//! rotation and reuse detection happen: the store reads the token, the rules
//! in [`rotation`](super::rotation) decide, and this carries the verdict out.

use super::audit::{AuditKind, Event};
use super::refresh_token::RefreshToken;
use super::rotation::{self, RotationRules, Verdict};
use super::{Auth, AuthError, ClientInfo, NewTokens, WithSources};
use crate::store::{SessionRecord, Successor};

impl Auth {
    /// Rotates the presented refresh token (RFC 6749 §6, RFC 9700 §4.14.2).
    /// A replay inside the grace window gets the same successor; an older
    /// token revokes the whole session, with its audit event, in one
    /// transaction. Each outcome is logged on the `refresh` span: rotations
    /// and refusals at `debug`, replays and rate limits at `info`, reuse at
    /// `warn`.
    #[tracing::instrument(name = "refresh", skip_all)]
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<NewTokens, AuthError> {
        let Some(token) = RefreshToken::parse(presented) else {
            tracing::debug!(outcome = "malformed", "refresh refused");
            return Err(AuthError::RefreshRejected);
        };
        let now = self.now();
        let hash = token.hash();
        let Some(mut found) = self.store.presented_token(&hash).await? else {
            tracing::debug!(outcome = "unknown", "refresh refused");
            return Err(AuthError::RefreshRejected);
        };
        if let Err(refused) = self.limits.refresh(&mut found).await {
            if matches!(refused, AuthError::RateLimited { .. }) {
                tracing::info!(outcome = "rate_limited", session = %found.session.id, "refresh refused");
            }
            return Err(refused);
        }
        let rules = RotationRules {
            now,
            grace: self.settings.refresh_grace,
        };
        let mut verdict = rotation::decide(&found.token, &found.session, rules);
        if verdict == Verdict::Rotate {
            let successor = RefreshToken::generate();
            let sealed = Successor {
                hash: successor.hash(),
                sealed: token.seal(&successor),
            };
            let idle_expires_at = now + self.settings.refresh_idle_ttl;
            if let Some(session) = self.store.claim(found, &sealed, now, idle_expires_at).await? {
                tracing::debug!(outcome = "rotated", session = %session.id, "refresh");
                return self.tokens_for(session, successor, now);
            }
            // Lost the claim: another tab or a retry claimed it first, or the
            // session ended meanwhile. Decided again as the token now reads.
            found = self
                .store
                .presented_token(&hash)
                .await?
                .ok_or(AuthError::RefreshRejected)?;
            verdict = rotation::decide(&found.token, &found.session, rules);
        }
        let (session, state) = found.into_parts();
        match verdict {
            // A revocation that committed after the read is known here.
            Verdict::Replay if !self.revoked.contains(&session.id) => {
                let sealed = state.successor_sealed.as_deref().unwrap_or_default();
                let successor = token.unseal(sealed).ok_or(AuthError::RefreshRejected)?;
                tracing::info!(outcome = "replayed", session = %session.id, "refresh within the grace window");
                self.tokens_for(session, successor, now)
            }
            Verdict::Reuse => {
                // The presented token is dead whatever happens next: refused,
                // and its cookie cleared, even if its revocation could not be
                // written (it is tried again each time the token comes back).
                if let Err(err) = self.reuse_detected(&session, client, now).await {
                    tracing::error!(error = %WithSources(&err), session = %session.id, "refresh token reuse: the session could not be revoked");
                }
                Err(AuthError::RefreshRejected)
            }
            // Rotate here: still current after a lost claim, which found it
            // idle or its session ended. Only where instances' clocks disagree.
            Verdict::Replay | Verdict::Ended | Verdict::Rotate => {
                tracing::debug!(outcome = "ended", session = %session.id, "refresh refused");
                Err(AuthError::RefreshRejected)
            }
        }
    }

    /// A rotated token came back: revokes its session with the audit event,
    /// in one transaction, then everywhere in memory and on sockets. Should
    /// the audit row not be writable, the session is revoked without it: a
    /// revocation never waits on its record.
    async fn reuse_detected(&self, session: &SessionRecord, client: &ClientInfo, now: i64) -> Result<(), AuthError> {
        const REASON: &str = "refresh_reuse";
        let event = Event {
            kind: AuditKind::RefreshReuse,
            at: now,
            account: Some(session.into()),
            session_id: Some(&session.id),
            client,
            detail: Some("an already-rotated refresh token was presented".to_string()),
        }
        .record();
        let revoked = match self
            .store
            .revoke_session_recorded(&session.id, REASON, now, &event)
            .await
        {
            Ok(revoked) => revoked,
            Err(err) => {
                tracing::error!(error = %WithSources(&err), session = %session.id, "refresh token reuse: the audit event could not be written; revoking without it");
                self.store.revoke_session(&session.id, REASON, now).await?
            }
        };
        if revoked {
            self.sessions_revoked(&session.user_id, vec![session.id.clone()], REASON, now)
                .await;
            tracing::warn!(outcome = "reuse", session = %session.id, user = %session.user_id, "refresh token reuse: session revoked");
        } else {
            tracing::debug!(outcome = "ended", session = %session.id, "refresh refused");
        }
        Ok(())
    }

    /// A new access token for `session`, handed out with `refresh`.
    fn tokens_for(&self, session: SessionRecord, refresh: RefreshToken, now: i64) -> Result<NewTokens, AuthError> {
        let access = self.tokens.issue((&session).into(), now)?;
        Ok(NewTokens {
            access,
            refresh,
            session,
        })
    }
}

//! Refreshing: a refresh token presented for a new access token. Where
//! rotation and reuse detection happen: the store reads the token, the rules
//! in [`rotation`](super::rotation) decide, and [`Auth::present`] carries the
//! verdict out, for `/auth/refresh` and for every other place the refresh
//! cookie is accepted (page loads, form posts, logout).

use super::audit::{AuditKind, Event};
use super::refresh_token::RefreshToken;
use super::rotation::{self, RotationRules, Verdict};
use super::{Auth, AuthError, ClientInfo, NewTokens, WithSources};
use crate::metrics::{self, RefreshVerdict};
use crate::store::{SessionRecord, Successor};

/// When presenting a current refresh token rotates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RotateWhen {
    /// Every time: `/auth/refresh`.
    Always,
    /// Once the session has used up half of its idle life: page loads and
    /// form posts, which keep an active session alive without rotating on
    /// every click (and racing the tabs' own refreshes).
    Aging,
}

/// What presenting a refresh token came to.
pub(super) enum Presentation {
    /// The token is current and was not rotated (see [`RotateWhen::Aging`]).
    Current(SessionRecord),
    /// The session goes on with this refresh token: the presented one's
    /// successor, new or handed out again within the grace window.
    Renewed(SessionRecord, RefreshToken),
    /// An already-rotated token came back: its session is revoked (if it
    /// could be written) and the cookie must be cleared.
    Reuse,
    /// Unknown token, or its session has ended: refused, nothing changed.
    Refused,
}

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
            metrics::refresh(RefreshVerdict::Refused);
            return Err(AuthError::RefreshRejected);
        };
        let now = self.now();
        match self.present(&token, client, now, RotateWhen::Always).await? {
            Presentation::Renewed(session, refresh) => self.tokens_for(session, refresh, now),
            Presentation::Current(_) | Presentation::Reuse | Presentation::Refused => Err(AuthError::RefreshRejected),
        }
    }

    /// Presents `token` at `now` by the rotation rules, wherever the refresh
    /// cookie is accepted: rotates it (always, or only once the session is
    /// aging), hands a replay its successor again, or revokes the session on
    /// reuse. Every presentation that reaches the database counts against
    /// `refreshes_per_session`, and each verdict in `gatehouse_refreshes_total`
    /// (a current token left as it is, by a page load, in neither).
    pub(super) async fn present(
        &self,
        token: &RefreshToken,
        client: &ClientInfo,
        now: i64,
        when: RotateWhen,
    ) -> Result<Presentation, AuthError> {
        let hash = token.hash();
        let Some(mut found) = self.store.presented_token(&hash).await? else {
            tracing::debug!(outcome = "unknown", "refresh refused");
            metrics::refresh(RefreshVerdict::Refused);
            return Ok(Presentation::Refused);
        };
        if let Err(refused) = self.limits.refresh(&mut found).await {
            if matches!(refused, AuthError::RateLimited { .. }) {
                tracing::info!(outcome = "rate_limited", session = %found.session.id, "refresh refused");
                metrics::refresh(RefreshVerdict::Refused);
            }
            return Err(refused);
        }
        let rules = RotationRules {
            now,
            grace: self.settings.refresh_grace,
        };
        let mut verdict = rotation::decide(&found.token, &found.session, rules);
        if verdict == Verdict::Rotate && when == RotateWhen::Aging && !self.is_aging(&found.session, now) {
            let (session, _) = found.into_parts();
            return Ok(Presentation::Current(session));
        }
        if verdict == Verdict::Rotate {
            let successor = RefreshToken::generate();
            let sealed = Successor {
                hash: successor.hash(),
                sealed: token.seal(&successor),
            };
            let idle_expires_at = now + self.settings.refresh_idle_ttl;
            if let Some(session) = self.store.claim(found, &sealed, now, idle_expires_at).await? {
                self.stamp_commit(&hash, now).await;
                tracing::debug!(outcome = "rotated", session = %session.id, "refresh");
                metrics::refresh(RefreshVerdict::Rotated);
                return Ok(Presentation::Renewed(session, successor));
            }
            // Lost the claim: another tab or a retry claimed it first, or the
            // session ended meanwhile. Decided again as the token now reads.
            let Some(again) = self.store.presented_token(&hash).await? else {
                metrics::refresh(RefreshVerdict::Refused);
                return Ok(Presentation::Refused);
            };
            found = again;
            verdict = rotation::decide(&found.token, &found.session, rules);
        }
        let (session, state) = found.into_parts();
        match verdict {
            // A revocation that committed after the read is known here.
            Verdict::Replay if !self.revoked.contains(&session.id) => {
                let sealed = state.successor_sealed.as_deref().unwrap_or_default();
                let Some(successor) = token.unseal(sealed) else {
                    metrics::refresh(RefreshVerdict::Refused);
                    return Ok(Presentation::Refused);
                };
                tracing::info!(outcome = "replayed", session = %session.id, "refresh within the grace window");
                metrics::refresh(RefreshVerdict::Replayed);
                Ok(Presentation::Renewed(session, successor))
            }
            Verdict::Reuse => {
                // The presented token is dead whatever happens next: refused,
                // and its cookie cleared, even if its revocation could not be
                // written (it is tried again each time the token comes back).
                if let Err(err) = self.reuse_detected(&session, client, now).await {
                    tracing::error!(error = %WithSources(&err), session = %session.id, "refresh token reuse: the session could not be revoked");
                }
                metrics::refresh(RefreshVerdict::Reuse);
                Ok(Presentation::Reuse)
            }
            // Rotate here: still current after a lost claim, which found it
            // idle or its session ended. Only where instances' clocks disagree.
            Verdict::Replay | Verdict::Ended | Verdict::Rotate => {
                tracing::debug!(outcome = "ended", session = %session.id, "refresh refused");
                metrics::refresh(RefreshVerdict::Refused);
                Ok(Presentation::Refused)
            }
        }
    }

    /// Whether a page load or form post should rotate the session's token:
    /// less than half of its idle life is left.
    fn is_aging(&self, session: &SessionRecord, now: i64) -> bool {
        session.idle_expires_at - now < self.settings.refresh_idle_ttl / 2
    }

    /// A rotation that committed later than the second it was asked in (its
    /// write waited for the database) is dated by its commit: the grace
    /// window for an answer lost on the way back counts from there. Best
    /// effort: should it fail, the window counts from the request.
    async fn stamp_commit(&self, hash: &str, asked_at: i64) {
        let committed_at = self.now();
        if committed_at > asked_at {
            if let Err(err) = self.store.date_rotation(hash, asked_at, committed_at).await {
                tracing::warn!(error = %WithSources(&err), "a rotation could not be dated by its commit");
            }
        }
    }

    /// A rotated token came back: revokes its session with the audit event,
    /// in one transaction, then everywhere in memory and on sockets. Should
    /// the audit row not be writable, the session is revoked without it: a
    /// revocation never waits on its record.
    pub(super) async fn reuse_detected(
        &self,
        session: &SessionRecord,
        client: &ClientInfo,
        now: i64,
    ) -> Result<(), AuthError> {
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

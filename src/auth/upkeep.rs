//! Periodic upkeep: forgetting what no longer matters, catching up with
//! other instances, and deleting what is kept no longer.

use std::sync::atomic::Ordering;

use super::{Auth, AuthError};

/// How often ended sessions and old audit events are deleted (seconds), once
/// no backlog is left.
const PRUNE_EVERY: i64 = 3600;
/// Sessions and audit events deleted per upkeep at most. A session takes its
/// refresh tokens with it (one per refresh), so its batch is the smaller.
const PRUNE_SESSIONS: i64 = 100;
const PRUNE_EVENTS: i64 = 1000;
const DAY: i64 = 86_400;

impl Auth {
    /// Forgets old revocations, expired verified tokens and spent rate-limit
    /// state (in memory, or the rows shared on PostgreSQL), picks up keys
    /// rotated and sessions revoked by other instances sharing the database,
    /// and deletes what is kept no longer (see
    /// [`Auth::delete_expired_records`]): once an hour, or at every upkeep
    /// while a backlog lasts.
    pub async fn maintain(&self) -> Result<(), AuthError> {
        let now = self.now();
        self.revoked.prune(now);
        self.tokens.forget_expired(now);
        self.page_lookups.forget_expired(now);
        self.limits.forget_expired().await?;
        self.load_revocations(now).await?;
        self.tokens.keys().reload(now).await?;
        if now >= self.prune_due_at.load(Ordering::Relaxed) {
            let backlog = self.delete_expired_records(now).await?;
            self.prune_due_at
                .store(if backlog { now } else { now + PRUNE_EVERY }, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes sessions that ended longer ago than `ended_session_retention`,
    /// with their refresh tokens, audit events older than `audit_retention`,
    /// a batch of each, mail, passkey ceremonies and second sign-in steps that can no longer matter: otherwise every refresh and failed
    /// login would grow the database for ever. Whether a batch was full (more
    /// may be left).
    async fn delete_expired_records(&self, now: i64) -> Result<bool, AuthError> {
        let sessions = self
            .store
            .delete_ended_sessions(now - self.settings.ended_session_retention, PRUNE_SESSIONS)
            .await?;
        let events = match self.settings.audit_retention {
            0 => 0,
            retention => self.store.delete_audit_before(now - retention, PRUNE_EVENTS).await?,
        };
        // Mail tokens past their expiry, and mails sent or given up a day ago
        // (their bodies were emptied then).
        self.store.delete_old_mail(now - DAY).await?;
        self.store.delete_expired_ceremonies(now).await?;
        self.store.prune_mfa_challenges(now).await?;
        if sessions + events > 0 {
            tracing::info!(sessions, events, "deleted ended sessions and old audit events");
        }
        Ok(sessions >= PRUNE_SESSIONS as u64 || events >= PRUNE_EVENTS as u64)
    }

    /// Revocations committed since the last read (by another process), into
    /// memory. True if there were any this instance did not know of.
    pub(super) async fn read_new_revocations(&self) -> Result<bool, AuthError> {
        let now = self.now();
        // A second's overlap: a revocation committed within the second of
        // the last read may not have been visible to it.
        let since = self
            .revocations_read_at
            .swap(now, Ordering::Relaxed)
            .min(now)
            .saturating_sub(1);
        self.load_revoked_since(since.max(self.revoked.relevant_since(now)))
            .await
    }

    /// Every session revoked recently enough for one of its access tokens to
    /// be live, into the in-memory set.
    pub(super) async fn load_revocations(&self, now: i64) -> Result<(), AuthError> {
        self.load_revoked_since(self.revoked.relevant_since(now)).await?;
        Ok(())
    }

    /// The sessions revoked after `since`, into the in-memory set. True if
    /// any was not in it yet.
    async fn load_revoked_since(&self, since: i64) -> Result<bool, AuthError> {
        let mut learnt = false;
        for (session_id, revoked_at) in self.store.revoked_since(since).await? {
            learnt |= !self.revoked.contains(&session_id);
            self.revoked.insert(&session_id, revoked_at);
        }
        Ok(learnt)
    }
}

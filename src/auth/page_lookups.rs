//! The page guard's recent lookups: a burst of page loads with one refresh
//! cookie (a reload, tabs opened together, a client hammering a page) reads
//! the database once instead of on every load.
//!
//! An entry is kept for [`LOOKUP_SECONDS`], never longer than the refresh
//! grace window. That bound makes a cached answer the database's own: a token
//! current when read and rotated since (here or on another instance) was
//! rotated at most that long ago, so the database still accepts it for a page
//! too. A token read inside its grace window is kept only until that window
//! closes. Revocation is not cached: the caller checks it in memory on every
//! load, as it does for access tokens. What a cached answer can miss for a
//! moment is a change of role.

use std::collections::HashMap;
use std::sync::RwLock;

use super::cache::{forget_expired_in, insert_bounded};
use crate::store::{PageLookup, SessionRecord};

/// How long a lookup answers page loads, in seconds of the core's clock.
pub const LOOKUP_SECONDS: i64 = 1;

pub struct PageLookups {
    /// Seconds an entry lives: [`LOOKUP_SECONDS`] or the grace window if
    /// shorter (0: nothing is kept).
    keep: i64,
    /// How long a rotated refresh token still counts, in seconds.
    grace: i64,
    /// Refresh token hash → the session and the last second it may be used.
    entries: RwLock<HashMap<String, (SessionRecord, i64)>>,
}

impl PageLookups {
    pub fn new(refresh_grace: i64) -> Self {
        Self {
            keep: LOOKUP_SECONDS.min(refresh_grace).max(0),
            grace: refresh_grace,
            entries: RwLock::default(),
        }
    }

    /// The session a recent lookup found for `hash`, if it still answers at
    /// `now` and the session has not ended by its own times. A session whose
    /// idle time ran out here may have been extended since: that is a miss.
    pub fn get(&self, hash: &str, now: i64) -> Option<SessionRecord> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (session, until) = entries.get(hash)?;
        (now <= *until && session.is_live(now)).then(|| session.clone())
    }

    /// Keeps what the database answered at `now`.
    pub fn remember(&self, hash: &str, found: &PageLookup, now: i64) {
        if self.keep == 0 {
            return;
        }
        let until = match found.token_rotated_at {
            None => now + self.keep,
            Some(rotated_at) => (now + self.keep).min(rotated_at + self.grace),
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        insert_bounded(&mut entries, hash.to_string(), (found.session.clone(), until), |(_, until)| *until < now);
    }

    pub fn forget_expired(&self, now: i64) {
        forget_expired_in(&mut self.entries.write().unwrap_or_else(|e| e.into_inner()), |(_, until)| *until < now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(idle_expires_at: i64) -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            user_id: "u".into(),
            username: "alice".into(),
            role: "user".into(),
            created_at: 0,
            last_used_at: 0,
            idle_expires_at,
            expires_at: 1_000,
            revoked_at: None,
            user_agent: None,
            ip: None,
        }
    }

    fn found(token_rotated_at: Option<i64>, idle_expires_at: i64) -> PageLookup {
        PageLookup {
            session: session(idle_expires_at),
            token_rotated_at,
        }
    }

    #[test]
    fn a_current_token_answers_for_the_lookup_time_only() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &found(None, 500), 100);
        assert!(lookups.get("h", 100).is_some());
        assert!(lookups.get("h", 100 + LOOKUP_SECONDS).is_some());
        assert!(lookups.get("h", 101 + LOOKUP_SECONDS).is_none());
        assert!(lookups.get("other", 100).is_none());
    }

    #[test]
    fn a_rotated_token_answers_no_longer_than_its_grace_window() {
        let lookups = PageLookups::new(10);
        // Rotated at 90 with a grace of 10: the database accepts it until 100.
        lookups.remember("h", &found(Some(90), 500), 100);
        assert!(lookups.get("h", 100).is_some());
        assert!(lookups.get("h", 101).is_none());
        lookups.remember("h", &found(Some(95), 500), 100);
        assert!(lookups.get("h", 100 + LOOKUP_SECONDS).is_some());
    }

    #[test]
    fn nothing_is_kept_without_a_grace_window() {
        let lookups = PageLookups::new(0);
        lookups.remember("h", &found(None, 500), 100);
        assert!(lookups.get("h", 100).is_none());
    }

    #[test]
    fn an_ended_session_is_a_miss() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &found(None, 100), 99);
        assert!(lookups.get("h", 99).is_some());
        assert!(lookups.get("h", 100).is_none(), "idle time ran out");
    }

    #[test]
    fn expired_entries_are_forgotten() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &found(None, 500), 100);
        lookups.forget_expired(100 + LOOKUP_SECONDS);
        assert!(lookups.get("h", 100).is_some());
        lookups.forget_expired(101 + LOOKUP_SECONDS);
        assert!(lookups.get("h", 100).is_none());
    }
}

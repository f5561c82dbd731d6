//! The page guard's recent lookups: a burst of page loads with one refresh
//! cookie (a reload, tabs opened together, a client hammering a page) reads
//! the database once a second instead of on every load.
//!
//! Only current tokens that were not due for rotation are kept, and a lookup
//! answers only within the second of the core's clock it was made in. A
//! token rotated since (here or on another instance) was therefore rotated
//! less than a second ago, which the database would also still accept as a
//! race within the grace window (so nothing is kept without one). Revocation
//! is not kept here: the caller checks it in memory on every load, as for
//! access tokens. Form posts that act for the session do not use these
//! lookups (`Auth::form_session`). What a lookup can miss for its second is a
//! change of role.

use std::collections::HashMap;
use std::sync::RwLock;

use super::cache::{forget_expired_in, insert_bounded};
use crate::store::SessionRecord;

struct Lookup {
    session: SessionRecord,
    /// The second it was made in, the only one it answers in.
    at: i64,
}

pub struct PageLookups {
    /// How long a rotated refresh token still counts, in seconds (0: nothing
    /// is kept).
    grace: i64,
    /// Refresh token hash → its lookup.
    entries: RwLock<HashMap<String, Lookup>>,
}

impl PageLookups {
    pub fn new(refresh_grace: i64) -> Self {
        Self {
            grace: refresh_grace,
            entries: RwLock::default(),
        }
    }

    /// The session a lookup made at `now` found for `hash`, if the session
    /// has not ended by its own times. A session whose idle time ran out may
    /// have been extended since: that is a miss.
    pub fn get(&self, hash: &str, now: i64) -> Option<SessionRecord> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let lookup = entries.get(hash)?;
        (lookup.at == now && lookup.session.is_live(now)).then(|| lookup.session.clone())
    }

    /// Keeps what the database answered at `now` for the current token of
    /// `hash`: its session.
    pub fn remember(&self, hash: &str, session: &SessionRecord, now: i64) {
        if self.grace <= 0 {
            return;
        }
        let lookup = Lookup {
            session: session.clone(),
            at: now,
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        insert_bounded(&mut entries, hash.to_string(), lookup, |l| l.at != now);
    }

    /// Drops the lookups of other seconds than `now`'s.
    pub fn forget_expired(&self, now: i64) {
        forget_expired_in(&mut self.entries.write().unwrap_or_else(|e| e.into_inner()), |l| l.at != now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(idle_expires_at: i64) -> SessionRecord {
        SessionRecord {
            idle_expires_at,
            ..SessionRecord::sample()
        }
    }

    #[test]
    fn a_lookup_answers_in_its_own_second_only() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &session(500), 100);
        assert!(lookups.get("h", 100).is_some());
        assert!(lookups.get("h", 101).is_none());
        assert!(lookups.get("h", 99).is_none(), "a clock set back does not stretch it");
        assert!(lookups.get("other", 100).is_none());
    }

    #[test]
    fn nothing_is_kept_without_a_grace_window() {
        let lookups = PageLookups::new(0);
        lookups.remember("h", &session(500), 100);
        assert!(lookups.get("h", 100).is_none());
    }

    #[test]
    fn an_ended_session_is_a_miss() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &session(100), 100);
        assert!(lookups.get("h", 100).is_none(), "idle time ran out");
    }

    #[test]
    fn lookups_of_past_seconds_are_forgotten() {
        let lookups = PageLookups::new(10);
        lookups.remember("h", &session(500), 100);
        lookups.forget_expired(100);
        assert!(lookups.get("h", 100).is_some());
        lookups.forget_expired(101);
        assert!(lookups.get("h", 100).is_none());
    }
}

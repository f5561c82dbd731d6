//! Sessions revoked recently, kept in memory so an access token of such a
//! session is refused at once without a database read per request (RFC 9068
//! tokens are otherwise valid until they expire).

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Debug)]
pub struct RevokedSessions {
    /// How long after a revocation its session's access tokens may still be
    /// live (`Settings::revocation_memory`).
    remember_for: i64,
    /// Session id → when it may be forgotten.
    forget_at: RwLock<HashMap<String, i64>>,
}

impl RevokedSessions {
    pub fn new(remember_for: i64) -> Self {
        Self {
            remember_for,
            forget_at: RwLock::default(),
        }
    }

    /// Sessions revoked after this may still have live access tokens at
    /// `now`: the ones an instance loads at start.
    pub fn relevant_since(&self, now: i64) -> i64 {
        now - self.remember_for
    }

    pub fn insert(&self, session_id: &str, revoked_at: i64) {
        let forget_at = revoked_at + self.remember_for;
        let mut map = self.forget_at.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(session_id.to_string()).or_insert(forget_at);
        *entry = (*entry).max(forget_at);
    }

    pub fn contains(&self, session_id: &str) -> bool {
        self.forget_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(session_id)
    }

    pub fn prune(&self, now: i64) {
        self.forget_at
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, forget_at| *forget_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_the_tokens_they_refuse() {
        let revoked = RevokedSessions::new(100);
        revoked.insert("a", 0);
        revoked.insert("b", 100);
        assert!(revoked.contains("a") && revoked.contains("b") && !revoked.contains("c"));
        revoked.prune(150);
        assert!(!revoked.contains("a"), "forgotten 100 s after its revocation");
        assert!(revoked.contains("b"));
        assert_eq!(revoked.relevant_since(1_000), 900);
    }
}

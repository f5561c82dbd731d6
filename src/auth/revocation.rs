//! Sessions revoked recently, kept in memory so an access token of such a
//! session is refused at once without a database read per request.

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct RevokedSessions {
    /// Session id → when it may be forgotten (its last access token has expired by then).
    forget_at: RwLock<HashMap<String, i64>>,
}

impl RevokedSessions {
    pub fn insert(&self, session_id: &str, forget_at: i64) {
        let mut map = self.forget_at.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(session_id.to_string()).or_insert(forget_at);
        *entry = (*entry).max(forget_at);
    }

    pub fn contains(&self, session_id: &str) -> bool {
        self.forget_at.read().unwrap_or_else(|e| e.into_inner()).contains_key(session_id)
    }

    pub fn prune(&self, now: i64) {
        self.forget_at
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, forget_at| *forget_at > now);
    }

    pub fn len(&self) -> usize {
        self.forget_at.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_forgotten() {
        let revoked = RevokedSessions::default();
        revoked.insert("a", 100);
        revoked.insert("b", 200);
        assert!(revoked.contains("a") && revoked.contains("b") && !revoked.contains("c"));
        revoked.prune(150);
        assert!(!revoked.contains("a"));
        assert!(revoked.contains("b"));
    }
}

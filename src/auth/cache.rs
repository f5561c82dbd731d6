//! The bounds every in-memory cache of the core keeps (verified tokens, page
//! tokens, page lookups), so none grows with traffic.

use std::collections::HashMap;
use std::hash::Hash;

/// Entries each cache holds at most; a full cache first drops expired
/// entries, then all.
pub const CACHE_ENTRIES: usize = 50_000;

/// Inserts into a cache, keeping it at most [`CACHE_ENTRIES`]: a full cache
/// first drops the entries that have expired, then everything.
pub fn insert_bounded<K: Eq + Hash, V>(cache: &mut HashMap<K, V>, key: K, value: V, expired: impl Fn(&V) -> bool) {
    if cache.len() >= CACHE_ENTRIES {
        cache.retain(|_, v| !expired(v));
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
    }
    cache.insert(key, value);
}

/// Drops a cache's expired entries, and the room beyond twice what is left.
pub fn forget_expired_in<K: Eq + Hash, V>(cache: &mut HashMap<K, V>, expired: impl Fn(&V) -> bool) {
    cache.retain(|_, v| !expired(v));
    let kept = cache.len();
    cache.shrink_to(kept.saturating_mul(2));
}

//! A short-lived in-process cache of the connection rows that answer access-token lookups, so
//! the hot path usually makes no database round trip at all.
//!
//! Safe to lose, and bounded in staleness:
//! - in this process, every write that changes what a connection serves bumps the store's
//!   generation counter, which invalidates every entry at once (writes are rare next to reads);
//! - another replica's write is seen after at most [`TTL`]: a deleted or deauthorized connection
//!   can still be served by other replicas for that long. Rows are cached sealed; the token is
//!   decrypted per request, and a row that needs refreshing is never answered from here.

use crate::store::connections::{ConnectionRow, TokenLookup};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long another replica's change may go unseen.
pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    row: Arc<ConnectionRow>,
    at: Instant,
    generation: u64,
}

/// Lookup → row.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

/// The cache key of a lookup; `\0` cannot occur in validated ids.
pub fn key(q: &TokenLookup<'_>) -> String {
    let parts = [q.user_id, q.organization_id, q.provider, q.account_id.unwrap_or(""), q.connection_id.unwrap_or("")];
    let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for p in parts {
        key.push_str(p);
        key.push('\0');
    }
    key
}

impl TokenCache {
    /// The cached row, if it is from the current generation and younger than [`TTL`].
    pub fn get(&self, key: &str, generation: u64) -> Option<Arc<ConnectionRow>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (entry.generation == generation && entry.at.elapsed() < TTL).then(|| entry.row.clone())
    }

    /// Remembers a row read at `generation` (read before the query, so a concurrent write wins).
    pub fn put(&self, key: String, row: Arc<ConnectionRow>, generation: u64) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.generation == generation && e.at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { row, at: Instant::now(), generation });
    }
}

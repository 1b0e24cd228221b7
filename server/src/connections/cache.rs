//! A short-lived in-process cache of the connection rows that answer access-token lookups, so
//! the hot path usually makes no database round trip at all.
//!
//! Safe to lose, and bounded in staleness:
//! - in this process, a write that changes what a connection serves stales the entries of that
//!   connection's owner (user, organization, provider) only (`store::changes`), so the cache
//!   stays warm under refresh churn elsewhere;
//! - another process's write arrives within milliseconds: PostgreSQL `NOTIFY` from other
//!   replicas, or on SQLite the change log the CLI writes, polled every 100 ms
//!   (`workers::listen_for_changes`); so entries can live long ([`TTL`]), which keeps the hit
//!   ratio up when many connections are in use, and [`TTL`] only bounds what a lost notification
//!   leaves stale. Rows are cached sealed; the token is decrypted per request, and a row that
//!   needs refreshing is never answered from here.

use crate::store::changes::Changes;
use crate::store::connections::{ConnectionRow, TokenLookup};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long an entry lives at most: the backstop for a change notification that was lost (a
/// listener that reconnects drops everything anyway). Every expiry is a database read: with
/// 100,000 connections in use, a one-minute TTL alone cost 8 % of the lookups.
pub const TTL: Duration = Duration::from_secs(300);
// The change log forgets a change after `REMEMBER`: no entry may outlive that.
const _: () = assert!(TTL.as_secs() <= crate::store::changes::REMEMBER.as_secs());
/// Entries at most (a few hundred bytes each): past it, expired and stale ones are dropped, then
/// everything if that was not enough.
const MAX_ENTRIES: usize = 250_000;

struct Entry {
    row: Arc<ConnectionRow>,
    at: Instant,
    /// The change epoch noted before the row was read.
    read: u64,
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

/// The owner part of a cache key (`user\0organization\0provider\0`, as `changes::owner_key`).
fn owner_of(key: &str) -> &str {
    let end = key.match_indices('\0').nth(2).map_or(key.len(), |(i, _)| i + 1);
    &key[..end]
}

/// The cache key of a lookup; `\0` cannot occur in validated ids. It starts with the owner's key.
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
    /// The cached row, if its owner has not changed since it was read and it is younger than
    /// [`TTL`]; else why not (a metric's label).
    pub fn get(&self, key: &str, changes: &Changes) -> Result<Arc<ConnectionRow>, &'static str> {
        let entries = self.entries.read().map_err(|_| "absent")?;
        let entry = entries.get(key).ok_or("absent")?;
        if entry.at.elapsed() >= TTL {
            return Err("expired");
        }
        if !changes.is_fresh(owner_of(key), entry.read) {
            return Err("changed");
        }
        Ok(entry.row.clone())
    }

    /// Remembers a row read at epoch `read` (noted before the query, so a concurrent write wins).
    pub fn put(&self, key: String, row: Arc<ConnectionRow>, read: u64, changes: &Changes) {
        if !changes.is_fresh(owner_of(&key), read) {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|k, e| e.at.elapsed() < TTL && changes.is_fresh(owner_of(k), e.read));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { row, at: Instant::now(), read });
        crate::metrics::token_cache_entries(entries.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::changes::owner_key;

    #[test]
    fn a_key_starts_with_its_owner() {
        let lookup = TokenLookup {
            user_id: "alice",
            organization_id: "org",
            provider: "slack",
            account_id: Some("T1"),
            connection_id: None,
        };
        assert_eq!(owner_of(&key(&lookup)), owner_key("alice", "org", "slack"));
    }
}

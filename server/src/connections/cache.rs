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

use super::ready::Ready;
use crate::store::changes::Changes;
use crate::store::connections::TokenLookup;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
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
    ready: Arc<Ready>,
    at: Instant,
    /// The change epoch noted before the row was read.
    read: u64,
    /// Which optional parts the lookup gave (account id, connection id): a lookup without an
    /// account may be answered by another row than one naming the same row's account.
    shape: (bool, bool),
}

/// The map's keys are already keyed SipHash digests of the lookup: hashing them again is waste.
#[derive(Default)]
struct Digest(u64);

impl Hasher for Digest {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a `u64`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Lookup → row, as [`Ready`]. Keyed by the lookup's digest, so a hit allocates nothing and
/// touches the entry and its row's one buffer only; the row itself confirms the match
/// ([`Ready::answers`]), so a digest collision is a miss, never another user's row.
#[derive(Default)]
pub struct TokenCache {
    hasher: RandomState,
    entries: RwLock<HashMap<u64, Entry, BuildHasherDefault<Digest>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

fn shape(q: &TokenLookup<'_>) -> (bool, bool) {
    (q.account_id.is_some(), q.connection_id.is_some())
}

impl TokenCache {
    fn digest(&self, q: &TokenLookup<'_>) -> u64 {
        self.hasher.hash_one((q.user_id, q.organization_id, q.provider, q.account_id, q.connection_id))
    }

    /// The cached row, if its owner has not changed since it was read and it is younger than
    /// [`TTL`]; else why not (a metric's label).
    pub fn get(&self, q: &TokenLookup<'_>, changes: &Changes) -> Result<Arc<Ready>, &'static str> {
        let digest = self.digest(q);
        let entries = self.entries.read().map_err(|_| "absent")?;
        let entry = entries.get(&digest).ok_or("absent")?;
        if entry.shape != shape(q) || !entry.ready.answers(q) {
            return Err("absent");
        }
        if entry.at.elapsed() >= TTL {
            return Err("expired");
        }
        if !changes.is_fresh(entry.ready.owner(), entry.read) {
            return Err("changed");
        }
        Ok(entry.ready.clone())
    }

    /// Remembers the row that answers `q`, read at epoch `read` (noted before the query, so a
    /// concurrent write wins).
    pub fn put(&self, q: &TokenLookup<'_>, ready: Arc<Ready>, read: u64, changes: &Changes) {
        if !changes.is_fresh(ready.owner(), read) {
            return;
        }
        let digest = self.digest(q);
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.at.elapsed() < TTL && changes.is_fresh(e.ready.owner(), e.read));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest, Entry { ready, at: Instant::now(), read, shape: shape(q) });
        crate::metrics::token_cache_entries(entries.len());
    }
}

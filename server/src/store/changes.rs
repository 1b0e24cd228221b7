//! Which connection data changed, so in-process caches drop exactly what a write made stale
//! (and, on PostgreSQL, so the other replicas hear of it at once through `NOTIFY`).
//!
//! Changes are tracked per **owner** (user, organization, provider): every access-token lookup
//! names one, and a write to any of the owner's connections can change which row answers it.
//! A write elsewhere leaves an owner's cached rows alone, so the cache stays warm however busy
//! the refresher is. Readers note the epoch before they query; a row read at epoch `e` is fresh
//! while neither its owner nor "everything" changed after `e` (a write racing the read wins).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Owners remembered at most; past it everything is declared changed once and the map restarts.
const MAX_OWNERS: usize = 200_000;

/// The `NOTIFY` channel of connection changes; the payload is the JSON array
/// `[connection id, user id, organization id, provider]`.
pub const CONNECTIONS_CHANNEL: &str = "latch_connections";
/// The `NOTIFY` channel of API key revocations; the payload is the key's id.
pub const API_KEYS_CHANNEL: &str = "latch_api_keys";

/// An owner's key: the prefix every token-cache key of that owner starts with.
pub fn owner_key(user_id: &str, organization_id: &str, provider: &str) -> String {
    let mut key = String::with_capacity(user_id.len() + organization_id.len() + provider.len() + 3);
    for part in [user_id, organization_id, provider] {
        key.push_str(part);
        key.push('\0');
    }
    key
}

/// The change log of one process.
#[derive(Debug, Default)]
pub struct Changes {
    epoch: AtomicU64,
    /// Everything read before this epoch is stale (a lost notification, a full reset).
    all_before: AtomicU64,
    /// Each owner's latest change.
    owners: RwLock<HashMap<String, u64>>,
}

impl Changes {
    /// The epoch to note before reading connection data.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records that `owner`'s connections changed.
    pub fn owner_changed(&self, owner: String) {
        let now = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let Ok(mut owners) = self.owners.write() else {
            self.all_before.store(now, Ordering::Release);
            return;
        };
        if owners.len() >= MAX_OWNERS {
            owners.clear();
            self.all_before.store(now, Ordering::Release);
        }
        owners.insert(owner, now);
    }

    /// Declares everything changed (a listener that lost its connection missed notifications).
    pub fn all_changed(&self) {
        let now = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.all_before.store(now, Ordering::Release);
    }

    /// Whether data of `owner` read at epoch `read` is still fresh.
    pub fn is_fresh(&self, owner: &str, read: u64) -> bool {
        if self.all_before.load(Ordering::Acquire) > read {
            return false;
        }
        match self.owners.read() {
            Ok(owners) => owners.get(owner).is_none_or(|&changed| changed <= read),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_stales_its_owner_only() {
        let changes = Changes::default();
        let (alice, bob) = (owner_key("alice", "", "slack"), owner_key("bob", "", "slack"));
        let read = changes.epoch();
        assert!(changes.is_fresh(&alice, read));
        changes.owner_changed(bob.clone());
        assert!(changes.is_fresh(&alice, read), "another owner's write leaves alice's rows alone");
        assert!(!changes.is_fresh(&bob, read), "a write after the read stales it");
        assert!(changes.is_fresh(&bob, changes.epoch()), "a read after the write is fresh");
        changes.all_changed();
        assert!(!changes.is_fresh(&alice, read));
    }
}

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
use std::time::{Duration, Instant};

/// Owners remembered at most; past it the changes older than [`REMEMBER`] are forgotten, and if
/// that is not enough, everything is declared changed once and the map restarts.
const MAX_OWNERS: usize = 200_000;
/// How long a change can matter: every cache built on this log keeps an entry at most this long.
pub const REMEMBER: Duration = Duration::from_secs(600);

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

/// Tells the other processes that a connection changed, from inside the transaction that
/// changed it: the notice exists if and only if the change committed. (On PostgreSQL `NOTIFY`
/// is delivered at commit; on SQLite the change-log row commits with the change. Sent after the
/// commit, a crash in between left other processes serving the old row until [`REMEMBER`]'s
/// caches expired, and on SQLite it cost a second commit, with its own fsync.)
pub(crate) trait ChangeNotice: sqlx::Database {
    /// The statement; `origin` names the writing process, `owner` is (user, organization,
    /// provider).
    fn notice<'q>(
        origin: &'q str,
        id: &str,
        owner: (&'q str, &'q str, &'q str),
    ) -> sqlx::query::Query<'q, Self, <Self as sqlx::Database>::Arguments<'q>>;
}

impl ChangeNotice for sqlx::Sqlite {
    fn notice<'q>(
        origin: &'q str,
        _id: &str,
        (user_id, organization_id, provider): (&'q str, &'q str, &'q str),
    ) -> sqlx::query::Query<'q, Self, sqlx::sqlite::SqliteArguments<'q>> {
        sqlx::query(
            "INSERT INTO connection_changes (origin, user_id, organization_id, provider) VALUES ($1, $2, $3, $4)",
        )
        .bind(origin)
        .bind(user_id)
        .bind(organization_id)
        .bind(provider)
    }
}

impl ChangeNotice for sqlx::Postgres {
    fn notice<'q>(
        _origin: &'q str,
        id: &str,
        (user_id, organization_id, provider): (&'q str, &'q str, &'q str),
    ) -> sqlx::query::Query<'q, Self, sqlx::postgres::PgArguments> {
        let payload = serde_json::json!([id, user_id, organization_id, provider]).to_string();
        sqlx::query("SELECT pg_notify($1, $2)").bind(CONNECTIONS_CHANNEL).bind(payload)
    }
}

/// The change log of one process.
#[derive(Debug, Default)]
pub struct Changes {
    epoch: AtomicU64,
    /// Everything read before this epoch is stale (a lost notification, a full reset).
    all_before: AtomicU64,
    /// Each owner's latest change: its epoch, and when (to forget it past [`REMEMBER`]).
    owners: RwLock<HashMap<String, (u64, Instant)>>,
}

impl Changes {
    /// The epoch to note before reading connection data.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records that `owner`'s connections changed.
    pub fn owner_changed(&self, owner: String) {
        self.owner_changed_at(owner, Instant::now());
    }

    fn owner_changed_at(&self, owner: String, at: Instant) {
        let now = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let Ok(mut owners) = self.owners.write() else {
            self.all_before.store(now, Ordering::Release);
            return;
        };
        if owners.len() >= MAX_OWNERS {
            // A change older than [`REMEMBER`] can stale nothing: a row read before it was
            // refused by the cache or has expired since. Only if the recent ones alone fill the
            // log is everything declared changed.
            owners.retain(|_, (_, when)| at.saturating_duration_since(*when) < REMEMBER);
            if owners.len() >= MAX_OWNERS {
                owners.clear();
                self.all_before.store(now, Ordering::Release);
            }
        }
        owners.insert(owner, (now, at));
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
            Ok(owners) => owners.get(owner).is_none_or(|&(changed, _)| changed <= read),
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

    #[test]
    fn a_full_change_log_forgets_old_changes_not_every_cached_row() {
        // 100,000 connections refreshed at 1 % a minute reach the cap in about three hours; then
        // the log was cleared and every cached row declared stale at once.
        let changes = Changes::default();
        let t0 = Instant::now();
        for i in 0..MAX_OWNERS {
            changes.owner_changed_at(owner_key(&format!("u{i}"), "", "slack"), t0);
        }
        let alice = owner_key("alice", "", "slack");
        let read = changes.epoch();
        changes.owner_changed_at(owner_key("bob", "", "slack"), t0 + REMEMBER + Duration::from_secs(1));
        assert!(changes.is_fresh(&alice, read), "another owner's change, at the cap, must not stale alice's rows");
        assert!(!changes.is_fresh(&owner_key("bob", "", "slack"), read));
        assert_eq!(changes.owners.read().unwrap().len(), 1, "the changes older than REMEMBER are forgotten");
        // Recent changes cannot be forgotten: then, as before, everything is declared changed.
        let t1 = t0 + REMEMBER + Duration::from_secs(2);
        for i in 0..MAX_OWNERS {
            changes.owner_changed_at(owner_key(&format!("v{i}"), "", "slack"), t1);
        }
        assert!(!changes.is_fresh(&alice, read));
    }
}

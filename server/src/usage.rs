//! Usage bookkeeping off the hot path: `POST /v1/access-token` for a fresh token only records
//! "connection X was used by key K" in memory; a background task writes `last_used_at` and one
//! `token_retrieved` activity entry per (connection, key) and window, with the count.
//!
//! A connection's first use in a while is written within [`FLUSH_INTERVAL`]; after that its
//! usage is gathered and written at most once per [`COALESCE`]. So the writes follow how many
//! connections are in use, not how many requests they get: 100,000 connections used every few
//! seconds cost about 1,700 row writes a second, not one per request (the benchmark's flat-cost
//! run). A crash loses at most one window of usage, never a token; a shutdown writes it all.

use crate::activity::{Action, Actor, Entry};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::connections::ConnectionRow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often usage is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A connection's usage is written at most this often.
pub const COALESCE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct ConnectionUsage {
    /// The row as the hot path had it (shared with the token cache, not copied).
    row: Arc<ConnectionRow>,
    last_at: i64,
    /// The key of the latest retrieval (`last_used_by`).
    last_key: Arc<str>,
    /// (API key name, retrievals) — usually one entry, so a vector beats a map.
    by_key: Vec<(Arc<str>, u64)>,
}

#[derive(Debug, Default)]
struct Pending {
    connections: HashMap<String, ConnectionUsage>,
    api_keys: HashMap<Arc<str>, i64>,
    /// When each connection's usage was last written, for the past [`COALESCE`].
    written: HashMap<String, Instant>,
    /// Those writes in the order they happened, so the windows that end are found from the
    /// front: a flush costs what is due, not a scan of every connection in use (a scan of
    /// 100,000 each second, under the lock the requests take, cost about 4 % of a core).
    writes: VecDeque<(Instant, String)>,
    /// Connections first used since their last window ended: due at the next flush.
    fresh: Vec<String>,
}

/// What one flush writes.
struct Due {
    connections: Vec<(String, ConnectionUsage)>,
    api_keys: HashMap<Arc<str>, i64>,
}

/// Collects usage in memory and writes it in batches.
#[derive(Debug, Clone, Default)]
pub struct UsageRecorder {
    pending: Arc<Mutex<Pending>>,
}

impl UsageRecorder {
    /// Records a token retrieval. No I/O; allocation only for the first use in a window.
    pub fn token_retrieved(&self, row: &Arc<ConnectionRow>, key_name: &Arc<str>, now: i64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        match pending.connections.get_mut(row.id.as_str()) {
            Some(usage) => {
                if now >= usage.last_at {
                    usage.last_at = now;
                    if usage.last_key != *key_name {
                        usage.last_key = key_name.clone();
                    }
                }
                match usage.by_key.iter_mut().find(|(k, _)| k == key_name) {
                    Some((_, count)) => *count += 1,
                    None => usage.by_key.push((key_name.clone(), 1)),
                }
            }
            None => {
                if !pending.written.contains_key(row.id.as_str()) {
                    pending.fresh.push(row.id.clone());
                }
                pending.connections.insert(
                    row.id.clone(),
                    ConnectionUsage {
                        row: row.clone(),
                        last_at: now,
                        last_key: key_name.clone(),
                        by_key: vec![(key_name.clone(), 1)],
                    },
                );
            }
        }
    }

    /// Records that an API key authenticated a request.
    pub fn api_key_used(&self, key_id: &Arc<str>, now: i64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        match pending.api_keys.get_mut(key_id) {
            Some(at) => *at = (*at).max(now),
            None => {
                pending.api_keys.insert(key_id.clone(), now);
            }
        }
    }

    /// Writes everything recorded so far (a command's end, a shutdown, a test).
    pub async fn flush(&self, store: &Store) {
        self.write(store, true).await;
    }

    /// Writes what is due: the connections whose usage was not written in the past
    /// [`COALESCE`], and the API keys'.
    pub async fn flush_due(&self, store: &Store) {
        self.write(store, false).await;
    }

    /// Takes the usage to write now: all of it, or what is due (the connections first used since
    /// their last window, and those whose window has ended with usage gathered in it).
    fn take(&self, all: bool, now: Instant) -> Option<Due> {
        let mut pending = self.pending.lock().ok()?;
        let Pending { connections, api_keys, written, writes, fresh } = &mut *pending;
        if all {
            // After a full flush (a shutdown, a command's end) the next use is written at once.
            fresh.clear();
            written.clear();
            writes.clear();
            return Some(Due { connections: connections.drain().collect(), api_keys: std::mem::take(api_keys) });
        }
        let mut due_ids = std::mem::take(fresh);
        while let Some((at, _)) = writes.front()
            && now.duration_since(*at) >= COALESCE
        {
            let Some((at, id)) = writes.pop_front() else { break };
            // A later write of the same connection keeps its own place in the queue.
            if written.get(&id) == Some(&at) {
                written.remove(&id);
                if connections.contains_key(&id) {
                    due_ids.push(id);
                }
            }
        }
        let mut due = Vec::with_capacity(due_ids.len());
        for id in due_ids {
            if let Some(usage) = connections.remove(&id) {
                written.insert(id.clone(), now);
                writes.push_back((now, id.clone()));
                due.push((id, usage));
            }
        }
        Some(Due { connections: due, api_keys: std::mem::take(api_keys) })
    }

    async fn write(&self, store: &Store, all: bool) {
        let Some(Due { connections, api_keys }) = self.take(all, Instant::now()) else {
            return;
        };
        if connections.is_empty() && api_keys.is_empty() {
            return;
        }
        let mut touches = Vec::with_capacity(connections.len());
        let mut entries = Vec::new();
        for (id, usage) in connections {
            for (key, count) in &usage.by_key {
                let entry = Entry::new(usage.last_at, &Actor::ApiKey(key.to_string()), Action::TokenRetrieved)
                    .connection(&usage.row)
                    .detail(format!("retrieved {count} time{}", if *count == 1 { "" } else { "s" }));
                entries.push(entry.into_row());
            }
            touches.push((id, usage.last_at, usage.last_key.to_string()));
        }
        let keys: Vec<(String, i64)> = api_keys.into_iter().map(|(k, at)| (k.to_string(), at)).collect();
        let result = async {
            store.write_usage(&entries, &touches).await?;
            for (id, at) in &keys {
                store.touch_api_keys(std::slice::from_ref(id), *at).await?;
            }
            Ok::<(), crate::store::StoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write usage; this window's usage is lost");
        }
    }

    /// Writes what is due every [`FLUSH_INTERVAL`] until `stop` is cancelled, then everything.
    pub async fn run_flusher(self, store: Store, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = Clock::sleep(FLUSH_INTERVAL) => self.flush_due(&store).await,
            }
        }
        self.flush(&store).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::connections::Owner;

    fn row(id: &str) -> Arc<ConnectionRow> {
        let owner = Owner { provider: "p", user_id: "u", organization_id: "", account_id: id };
        Arc::new(ConnectionRow::new(id.into(), owner, 0))
    }

    /// The connections a flush at `now` writes, with their counts.
    fn due(r: &UsageRecorder, all: bool, now: Instant) -> Vec<(String, u64)> {
        let mut due: Vec<_> = r
            .take(all, now)
            .unwrap()
            .connections
            .into_iter()
            .map(|(id, u)| (id, u.by_key.iter().map(|(_, n)| n).sum()))
            .collect();
        due.sort();
        due
    }

    #[test]
    fn each_connection_is_written_once_a_window() {
        let r = UsageRecorder::default();
        let key: Arc<str> = "backend".into();
        let (one, two) = (row("c1"), row("c2"));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let window = COALESCE.as_secs();

        r.token_retrieved(&one, &key, 0);
        assert_eq!(due(&r, false, at(0)), [("c1".into(), 1)], "a first use is written at once");
        r.token_retrieved(&one, &key, 1);
        r.token_retrieved(&one, &key, 2);
        r.token_retrieved(&two, &key, 2);
        assert_eq!(due(&r, false, at(1)), [("c2".into(), 1)], "c1 waits for its window; c2 is new");
        assert_eq!(due(&r, false, at(window - 1)), []);
        assert_eq!(due(&r, false, at(window)), [("c1".into(), 2)], "its window ended: written, counted");
        // No use in c1's next window: when it ends, c1 is forgotten, and its next use is new.
        assert_eq!(due(&r, false, at(2 * window + 1)), []);
        assert!(r.pending.lock().unwrap().written.is_empty() && r.pending.lock().unwrap().writes.is_empty());
        r.token_retrieved(&one, &key, 3);
        assert_eq!(due(&r, false, at(2 * window + 2)), [("c1".into(), 1)]);
        // A full flush writes everything, and what follows it is written at once.
        r.token_retrieved(&one, &key, 4);
        assert_eq!(due(&r, true, at(2 * window + 3)), [("c1".into(), 1)]);
        r.token_retrieved(&one, &key, 5);
        assert_eq!(due(&r, false, at(2 * window + 4)), [("c1".into(), 1)]);
    }
}

//! Usage bookkeeping off the hot path: `POST /v1/access-token` for a fresh token only records
//! "connection X was used by key K" in memory; a background task writes `last_used_at` and one
//! `token_retrieved` activity entry per (connection, key) and window, with the count.
//! A crash loses at most one window of usage, never a token.

use crate::activity::{Action, Actor, Entry};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::connections::ConnectionRow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often usage is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct ConnectionUsage {
    row: ConnectionRow,
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
}

/// Collects usage in memory and writes it in batches.
#[derive(Debug, Clone, Default)]
pub struct UsageRecorder {
    pending: Arc<Mutex<Pending>>,
}

impl UsageRecorder {
    /// Records a token retrieval. No I/O; allocation only for the first use in a window.
    pub fn token_retrieved(&self, row: &ConnectionRow, key_name: &Arc<str>, now: i64) {
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
                let mut summary = row.clone();
                // Only the identity columns are needed for the activity entry.
                summary.access_token = None;
                summary.refresh_token = None;
                pending.connections.insert(
                    row.id.clone(),
                    ConnectionUsage {
                        row: summary,
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

    /// Writes everything recorded so far.
    pub async fn flush(&self, store: &Store) {
        let taken = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if taken.connections.is_empty() && taken.api_keys.is_empty() {
            return;
        }
        let mut touches = Vec::with_capacity(taken.connections.len());
        let mut entries = Vec::new();
        for (id, usage) in taken.connections {
            for (key, count) in &usage.by_key {
                let entry = Entry::new(usage.last_at, &Actor::ApiKey(key.to_string()), Action::TokenRetrieved)
                    .connection(&usage.row)
                    .detail(format!("retrieved {count} time{}", if *count == 1 { "" } else { "s" }));
                entries.push(entry.into_row());
            }
            touches.push((id, usage.last_at, usage.last_key.to_string()));
        }
        let keys: Vec<(String, i64)> = taken.api_keys.into_iter().map(|(k, at)| (k.to_string(), at)).collect();
        let result = async {
            // The trail first: whoever sees `last_used_at` can also see why.
            store.insert_activity(&entries).await?;
            store.touch_connections(&touches).await?;
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

    /// Flushes every [`FLUSH_INTERVAL`] until `stop` is cancelled, then once more.
    pub async fn run_flusher(self, store: Store, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = Clock::sleep(FLUSH_INTERVAL) => self.flush(&store).await,
            }
        }
        self.flush(&store).await;
    }
}

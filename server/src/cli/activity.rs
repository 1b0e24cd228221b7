//! `latch activity`: the trail, newest first, or followed as it grows.

use crate::clock::Clock;
use crate::connections::activity as list;
use crate::store::Store;
use latch_shared::api::host::{ActivityEntry, ActivityQuery};
use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

/// How often `--follow` looks for new entries.
const POLL: Duration = Duration::from_secs(1);
/// Entries written by other processes can land a little out of id order (clocks, commit
/// order): `--follow` looks this far back each time, and prints an entry once.
const LOOK_BACK_SECONDS: i64 = 5;

/// Every entry matching `q`, newest first, down to `cutoff` (Unix seconds) if given.
pub async fn newest_first(store: &Store, q: &ActivityQuery, cutoff: Option<i64>) -> Result<Vec<ActivityEntry>, String> {
    let mut q = q.clone();
    let mut entries = Vec::new();
    loop {
        let page = list(store, &q).await.map_err(|e| e.to_string())?;
        for entry in page.data {
            if cutoff.is_some_and(|c| entry.at.unix_timestamp() < c) {
                return Ok(entries);
            }
            entries.push(entry);
        }
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(cursor),
            None => return Ok(entries),
        }
    }
}

/// One entry as a table line (tab-separated).
pub fn line(e: &ActivityEntry) -> String {
    format!(
        "{}\t{}:{}\t{}\t{}\t{}\t{}",
        e.at,
        e.actor.kind,
        e.actor.name,
        e.action,
        e.outcome,
        e.connection_id.as_deref().or(e.provider.as_deref()).unwrap_or("-"),
        e.detail.as_deref().unwrap_or("")
    )
}

/// `--follow`: prints `initial` oldest first, then every new entry as it is recorded, until
/// Ctrl-C or until stdout is closed (`| head`).
pub async fn follow(store: &Store, q: &ActivityQuery, initial: Vec<ActivityEntry>, json: bool) -> Result<(), String> {
    let mut printed: HashMap<String, i64> = HashMap::new();
    let mut pending = initial;
    let clock = Clock::default();
    loop {
        pending.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let mut stdout = std::io::stdout().lock();
        for e in pending.drain(..) {
            let text = if json { serde_json::to_string(&e).map_err(|e| e.to_string())? } else { line(&e) };
            if writeln!(stdout, "{text}").and_then(|()| stdout.flush()).is_err() {
                return Ok(()); // the reader went away
            }
            printed.insert(e.id, e.at.unix_timestamp());
        }
        drop(stdout);
        tokio::select! {
            () = Clock::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let horizon = printed.values().max().copied().unwrap_or_else(|| clock.unix()) - LOOK_BACK_SECONDS;
        pending = newest_first(store, q, Some(horizon)).await?;
        pending.retain(|e| !printed.contains_key(&e.id));
        printed.retain(|_, at| *at >= horizon - LOOK_BACK_SECONDS);
    }
}

//! Usage bookkeeping off the hot path: `POST /v1/access-token` for a fresh token only counts
//! "connection X was used by key K" in the connection's own [`UseCounter`] (beside its cached
//! row), telling the recorder at the counter's first use in a window; a background task takes
//! the counts and writes them in batches.
//!
//! Two cadences, because they answer different questions:
//! - `last_used_at` / `last_used_by` ("when was it last used, by whom"): a connection's first use
//!   in a while is written within [`FLUSH_INTERVAL`], then at most once per [`COALESCE`], the
//!   windows that ended gathered on a [`TOUCH_BATCH`] beat, a beat's share at most.
//! - the trail's `token_retrieved` entries ("who has been using it, how much"): one per
//!   (connection, key) at the first use in a while, then one per [`TRAIL_WINDOW`] with the count
//!   since the last, a flush's share at most.
//!
//! Windows that end together (every connection first used in the seconds after a start) would
//! stay together, one batch of every connection in use each window; the shares spread them over
//! the window's beats or flushes, where they stay (`share`).
//!
//! So the writes follow how many connections are in use, not how many requests they get:
//! 100,000 connections used every few seconds cost about 1,700 usage rows a second (17,000 every
//! [`TOUCH_BATCH`], in the narrow `connection_usage` table) and 28 trail entries (the benchmark's
//! flat-cost run), not one of each per request, and the trail grows by
//! 2.4 million entries a day at that scale rather than 144 million. A crash loses at most a window
//! and a beat of usage, never a token; a shutdown writes it all.

use crate::activity::{About, Action, Actor, Entry};
use crate::clock::Clock;
use crate::store::Store;
use crate::store::activity::ActivityRow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often usage is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A connection's `last_used_at` is written at most this often.
pub const COALESCE: Duration = Duration::from_secs(60);
/// Connections whose [`COALESCE`] window ended are written together on this beat, so that at
/// 100,000 connections in use a batch rewrites each page of the narrow usage table once for a
/// dozen rows (17,000 rows on ~1,500 pages) instead of each second's 1,700 rows touching about
/// as many pages. A first use does not wait for it.
pub const TOUCH_BATCH: Duration = Duration::from_secs(10);
/// A connection's retrievals are summed into one trail entry per key at most this often.
pub const TRAIL_WINDOW: Duration = Duration::from_secs(3600);
/// Beats in a [`COALESCE`] window.
const BEATS: u64 = COALESCE.as_secs() / TOUCH_BATCH.as_secs();
const _: () = assert!(BEATS >= 1 && COALESCE.as_secs().is_multiple_of(TOUCH_BATCH.as_secs()));
/// Flushes in a [`TRAIL_WINDOW`].
const FLUSHES_A_TRAIL_WINDOW: u64 = TRAIL_WINDOW.as_secs() / FLUSH_INTERVAL.as_secs();
const _: () = assert!(FLUSHES_A_TRAIL_WINDOW >= 1);
/// Rows a beat (or a flush, of trail entries) may always write: too few to matter.
const MIN_SHARE: usize = 100;

/// How many of `held` windows, whose ends fall on `turns` beats (or flushes) of a window, one
/// turn writes at most: an even share, at least [`MIN_SHARE`]. Windows that end together (every
/// connection first used in the seconds after a start) are so spread over a window's turns and
/// stay spread, instead of coming due in one batch every window; the rest wait for the next
/// turn.
fn share(held: usize, turns: u64) -> usize {
    held.div_ceil(usize::try_from(turns).unwrap_or(1)).max(MIN_SHARE)
}

/// A connection's id as the recorder holds it: allocated once per connection in use and shared by
/// every map and queue that names it. A `String` in each cost five allocations a connection and
/// four more each time its usage was written: at 100,000 connections in use, 12-26 MiB of the
/// recorder's 74-80 (the flat benchmark's RSS).
type Id = Arc<str>;

/// (API key name, retrievals) — usually one entry, so a vector beats a map.
type Counts = Vec<(Arc<str>, u64)>;

fn add(counts: &mut Counts, key: &Arc<str>, n: u64) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, count)) => *count += n,
        None => counts.push((key.clone(), n)),
    }
}

/// What the hot path hands the recorder: a connection's [`UseCounter`], and what its usage is
/// about (read only when the recorder takes the counts). `connections::ready::Ready` is one.
pub trait Counted: Send + Sync + std::fmt::Debug + 'static {
    fn counter(&self) -> &UseCounter;
    fn about(&self) -> About<'_>;
}

/// One connection's retrievals, counted beside the cached row the lookup already brought into
/// the CPU's caches, rather than in a map of every connection in use (a memory miss per request
/// at 100,000 of them). The recorder hears of a counter once per window: at its first use.
#[derive(Debug, Default)]
pub struct UseCounter(Mutex<Tally>);

#[derive(Debug, Default)]
struct Tally {
    /// Whether the recorder holds the counter: it has uses the recorder has not taken yet.
    held: bool,
    last_at: i64,
    /// The key of the latest retrieval, and its count: usually the only one, so inline.
    key: Option<(Arc<str>, u64)>,
    others: Counts,
}

impl UseCounter {
    /// Counts a retrieval; true if it is the first since the recorder last took the counts.
    fn count(&self, key_name: &Arc<str>, now: i64) -> bool {
        let Ok(mut t) = self.0.lock() else {
            return false;
        };
        let latest = now >= t.last_at;
        if latest {
            t.last_at = now;
        }
        match &mut t.key {
            Some((key, n)) if key == key_name => *n += 1,
            None => t.key = Some((key_name.clone(), 1)),
            Some(_) => {
                // Another key: the latest retrieval's key stays inline (`last_used_by`).
                let Tally { key, others, .. } = &mut *t;
                if latest && let Some((old, n)) = key.take() {
                    let n_new = others.iter().position(|(k, _)| k == key_name).map_or(0, |i| others.swap_remove(i).1);
                    others.push((old, n));
                    *key = Some((key_name.clone(), n_new + 1));
                } else {
                    add(others, key_name, 1);
                }
            }
        }
        !std::mem::replace(&mut t.held, true)
    }

    /// Takes the counts, and lets the next use tell the recorder again.
    fn take(&self) -> Option<(i64, Arc<str>, Counts)> {
        let mut t = self.0.lock().ok()?;
        t.held = false;
        let (key, n) = t.key.take()?;
        let mut by_key = std::mem::take(&mut t.others);
        by_key.push((key.clone(), n));
        Some((t.last_at, key, by_key))
    }
}

#[derive(Debug)]
struct ConnectionUsage {
    /// The latest counter, for what its usage is about (shared with the token cache).
    used: Arc<dyn Counted>,
    last_at: i64,
    /// The key of the latest retrieval (`last_used_by`).
    last_key: Arc<str>,
    by_key: Counts,
}

/// The usage in a connection's counters, taken (`None` if they hold none).
fn merge(counters: &[Arc<dyn Counted>]) -> Option<ConnectionUsage> {
    let mut merged: Option<ConnectionUsage> = None;
    for counted in counters {
        let Some((last_at, last_key, by_key)) = counted.counter().take() else { continue };
        match &mut merged {
            None => merged = Some(ConnectionUsage { used: counted.clone(), last_at, last_key, by_key }),
            Some(usage) => {
                if last_at >= usage.last_at {
                    (usage.used, usage.last_at, usage.last_key) = (counted.clone(), last_at, last_key);
                }
                for (key, n) in &by_key {
                    add(&mut usage.by_key, key, *n);
                }
            }
        }
    }
    merged
}

/// The retrievals of one connection since its last trail entry.
#[derive(Debug)]
struct TrailUsage {
    used: Arc<dyn Counted>,
    last_at: i64,
    by_key: Counts,
}

#[derive(Debug, Default)]
struct Pending {
    /// Counters used for the first time since the recorder last took them.
    inbox: Vec<Arc<dyn Counted>>,
    /// The counters holding each connection's usage since its last `last_used_at` write
    /// (several when its cached row was replaced meanwhile).
    connections: HashMap<Id, Vec<Arc<dyn Counted>>>,
    api_keys: HashMap<Arc<str>, i64>,
    /// When each connection's usage was last written, for the past [`COALESCE`].
    written: HashMap<Id, Instant>,
    /// Those writes in the order they happened, so the windows that end are found from the
    /// front: a flush costs what is due, not a scan of every connection in use (a scan of
    /// 100,000 each second, under the lock the requests take, cost about 4 % of a core).
    writes: VecDeque<(Instant, Id)>,
    /// The next [`TOUCH_BATCH`] beat (`None` before the first flush sets the phase).
    next_batch: Option<Instant>,
    /// Connections first used since their last window ended: due at the next flush.
    fresh: Vec<Id>,
    /// Retrievals gathered for the trail, per connection with an entry in the past
    /// [`TRAIL_WINDOW`]; filled by the flusher, never by the hot path.
    trail: HashMap<Id, TrailUsage>,
    /// When each of those entries was written, oldest first (as `writes`).
    entries: VecDeque<(Instant, Id)>,
}

/// What one flush writes.
#[derive(Debug, Default)]
struct Due {
    /// `(connection, last_used_at, last_used_by)`.
    touches: Vec<(Id, i64, Arc<str>)>,
    /// Trail entries to write: a connection's retrievals since its last.
    entries: Vec<TrailUsage>,
    api_keys: HashMap<Arc<str>, i64>,
}

/// Collects usage in memory and writes it in batches.
#[derive(Debug, Clone, Default)]
pub struct UsageRecorder {
    pending: Arc<Mutex<Pending>>,
}

impl UsageRecorder {
    /// Records a token retrieval. No I/O, no allocation: a count in the connection's own
    /// counter, and at its first use in a window a push the flusher picks up.
    pub fn token_retrieved<C: Counted>(&self, used: &Arc<C>, key_name: &Arc<str>, now: i64) {
        if used.counter().count(key_name, now)
            && let Ok(mut pending) = self.pending.lock()
        {
            pending.inbox.push(used.clone());
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
    /// [`COALESCE`], the trail entries whose [`TRAIL_WINDOW`] has ended, and the API keys'.
    pub async fn flush_due(&self, store: &Store) {
        self.write(store, false).await;
    }

    /// Takes the usage to write now: all of it, or what is due.
    fn take(&self, all: bool, now: Instant) -> Option<Due> {
        let mut pending = self.pending.lock().ok()?;
        let Pending { inbox, connections, api_keys, written, writes, next_batch, fresh, trail, entries } =
            &mut *pending;
        let mut due = Due { api_keys: std::mem::take(api_keys), ..Due::default() };
        for counted in inbox.drain(..) {
            let id = counted.about().id;
            match connections.get_mut(id) {
                Some(counters) => counters.push(counted),
                None => {
                    // The id the other maps already hold, if any: one allocation a connection.
                    let id = match written.get_key_value(id) {
                        Some((id, _)) => id.clone(),
                        None => {
                            let id = trail.get_key_value(id).map_or_else(|| Id::from(id), |(id, _)| id.clone());
                            fresh.push(id.clone());
                            id
                        }
                    };
                    connections.insert(id, vec![counted]);
                }
            }
        }
        let counters: Vec<(Id, Vec<Arc<dyn Counted>>)> = if all {
            // After a full flush (a shutdown, a command's end) the next use is written at once.
            fresh.clear();
            written.clear();
            writes.clear();
            connections.drain().collect()
        } else {
            // The connections first used since their last window, and, on a batch's beat, those
            // whose window has ended with usage gathered in it.
            let mut due_ids = std::mem::take(fresh);
            let beat = next_batch.is_none_or(|t| now >= t);
            if beat {
                // The next beat after `now`, in the phase the first flush set.
                let since = now.duration_since(next_batch.unwrap_or(now)).as_nanos();
                let into_beat = u64::try_from(since % TOUCH_BATCH.as_nanos()).unwrap_or(0);
                *next_batch = Some(now + (TOUCH_BATCH - Duration::from_nanos(into_beat)));
            }
            let share = share(written.len(), BEATS);
            let mut ended = 0;
            while beat
                && ended < share
                && let Some((at, _)) = writes.front()
                && now.duration_since(*at) >= COALESCE
            {
                let Some((at, id)) = writes.pop_front() else { break };
                // A later write of the same connection keeps its own place in the queue.
                if written.get(&id) == Some(&at) {
                    written.remove(&id);
                    if connections.contains_key(&id) {
                        due_ids.push(id);
                        ended += 1;
                    }
                }
            }
            let mut counters = Vec::with_capacity(due_ids.len());
            for id in due_ids {
                if let Some(held) = connections.remove(&id) {
                    written.insert(id.clone(), now);
                    writes.push_back((now, id.clone()));
                    counters.push((id, held));
                }
            }
            counters
        };
        let used: Vec<(Id, ConnectionUsage)> =
            counters.into_iter().filter_map(|(id, held)| Some((id, merge(&held)?))).collect();
        due.touches.reserve(used.len());
        for (id, usage) in used {
            due.touches.push((id.clone(), usage.last_at, usage.last_key));
            match trail.get_mut(&id) {
                Some(t) => {
                    t.used = usage.used;
                    t.last_at = t.last_at.max(usage.last_at);
                    for (key, n) in &usage.by_key {
                        add(&mut t.by_key, key, *n);
                    }
                }
                None => {
                    // The first use in a while: its entry now, later ones counted for the window.
                    let used = usage.used.clone();
                    due.entries.push(TrailUsage { used: usage.used, last_at: usage.last_at, by_key: usage.by_key });
                    trail.insert(id.clone(), TrailUsage { used, last_at: usage.last_at, by_key: Vec::new() });
                    entries.push_back((now, id));
                }
            }
        }
        if all {
            entries.clear();
            due.entries.extend(trail.drain().map(|(_, t)| t).filter(|t| !t.by_key.is_empty()));
            return Some(due);
        }
        // Spread as the beats' rows are, over the window's flushes.
        let share = share(trail.len(), FLUSHES_A_TRAIL_WINDOW);
        let mut ended = 0;
        while ended < share
            && let Some((at, _)) = entries.front()
            && now.duration_since(*at) >= TRAIL_WINDOW
        {
            let Some((_, id)) = entries.pop_front() else { break };
            let Some(t) = trail.get_mut(&id) else { continue };
            if t.by_key.is_empty() {
                // Unused for a whole window: forgotten, so its next use is a first use.
                trail.remove(&id);
            } else {
                let by_key = std::mem::take(&mut t.by_key);
                due.entries.push(TrailUsage { used: t.used.clone(), last_at: t.last_at, by_key });
                entries.push_back((now, id));
                ended += 1;
            }
        }
        Some(due)
    }

    async fn write(&self, store: &Store, all: bool) {
        let Some(due) = self.take(all, Instant::now()) else {
            return;
        };
        if due.touches.is_empty() && due.entries.is_empty() && due.api_keys.is_empty() {
            return;
        }
        let entries: Vec<ActivityRow> = due
            .entries
            .iter()
            .flat_map(|t| {
                t.by_key.iter().map(|(key, count)| {
                    Entry::new(t.last_at, &Actor::ApiKey(key.to_string()), Action::TokenRetrieved)
                        .about(t.used.about())
                        .detail(format!("retrieved {count} time{}", if *count == 1 { "" } else { "s" }))
                        .into_row()
                })
            })
            .collect();
        let touches: Vec<(&str, i64, &str)> = due.touches.iter().map(|(id, at, key)| (&**id, *at, &**key)).collect();
        let keys: Vec<(String, i64)> = due.api_keys.into_iter().map(|(k, at)| (k.to_string(), at)).collect();
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

    #[derive(Debug)]
    struct Used(UseCounter, String);

    impl Counted for Used {
        fn counter(&self) -> &UseCounter {
            &self.0
        }
        fn about(&self) -> About<'_> {
            About { id: &self.1, owner: Owner { provider: "p", user_id: "u", organization_id: "", account_id: "a" } }
        }
    }

    fn row(id: &str) -> Arc<Used> {
        Arc::new(Used(UseCounter::default(), id.to_owned()))
    }

    /// What a flush at `now` writes: the connections whose `last_used_at` it writes, and its
    /// trail entries as (connection, retrievals).
    fn due(r: &UsageRecorder, all: bool, now: Instant) -> (Vec<String>, Vec<(String, u64)>) {
        let due = r.take(all, now).unwrap();
        let mut touched: Vec<String> = due.touches.into_iter().map(|(id, _, _)| id.to_string()).collect();
        let mut entries: Vec<(String, u64)> =
            due.entries.iter().map(|t| (t.used.about().id.to_owned(), t.by_key.iter().map(|(_, n)| n).sum())).collect();
        touched.sort();
        entries.sort();
        (touched, entries)
    }

    fn touched(r: &UsageRecorder, all: bool, now: Instant) -> Vec<String> {
        due(r, all, now).0
    }

    /// A recorder, 1,200 connections it has not heard of, and when they start.
    fn cohort() -> (UsageRecorder, Vec<Arc<Used>>, Instant) {
        (UsageRecorder::default(), (0..1_200).map(|i| row(&format!("c{i:04}"))).collect(), Instant::now())
    }

    /// Each of `rows` used at the seconds (after `t0`) that are multiples of `every`, a flush at
    /// every one of `seconds`: the flushes that wrote something, as (second, what `written` counts).
    fn flushes(
        r: &UsageRecorder,
        rows: &[Arc<Used>],
        t0: Instant,
        seconds: std::ops::RangeInclusive<u64>,
        every: u64,
        written: impl Fn(&UsageRecorder, Instant) -> usize,
    ) -> Vec<(u64, usize)> {
        let key: Arc<str> = "backend".into();
        let mut batches = Vec::new();
        for s in seconds {
            if s % every == 0 {
                for used in rows {
                    r.token_retrieved(used, &key, i64::try_from(s).unwrap());
                }
            }
            let n = written(r, t0 + Duration::from_secs(s));
            if n > 0 {
                batches.push((s, n));
            }
        }
        batches
    }

    #[test]
    fn a_connection_id_is_allocated_once_for_every_map_that_names_it() {
        let (r, key, t0) = (UsageRecorder::default(), Arc::<str>::from("backend"), Instant::now());
        let one = row("c1");
        let mut ids: Vec<Id> = Vec::new();
        for s in [0, 1, COALESCE.as_secs() + 1] {
            r.token_retrieved(&one, &key, i64::try_from(s).unwrap());
            let due = r.take(false, t0 + Duration::from_secs(s)).unwrap();
            ids.extend(due.touches.into_iter().map(|(id, _, _)| id));
        }
        let p = r.pending.lock().unwrap();
        ids.extend(p.written.keys().chain(p.trail.keys()).chain(p.connections.keys()).cloned());
        ids.extend(p.writes.iter().chain(&p.entries).map(|(_, id)| id.clone()));
        assert!(ids.len() >= 6, "written twice, and held by written, writes, the trail and its queue: {ids:?}");
        assert!(ids.iter().all(|id| Arc::ptr_eq(id, &ids[0])), "one allocation of \"c1\" shared by all");
    }

    #[test]
    fn last_used_at_is_written_once_a_window() {
        let r = UsageRecorder::default();
        let key: Arc<str> = "backend".into();
        let (one, two) = (row("c1"), row("c2"));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let window = COALESCE.as_secs();

        r.token_retrieved(&one, &key, 0);
        assert_eq!(touched(&r, false, at(0)), ["c1"], "a first use is written at once");
        r.token_retrieved(&one, &key, 1);
        r.token_retrieved(&one, &key, 2);
        r.token_retrieved(&two, &key, 2);
        assert_eq!(touched(&r, false, at(1)), ["c2"], "c1 waits for its window; c2 is new");
        assert!(touched(&r, false, at(window - 1)).is_empty());
        assert_eq!(touched(&r, false, at(window)), ["c1"], "its window ended: written");
        // No use in c1's next window: when it ends, c1 is forgotten, and its next use is new.
        assert!(touched(&r, false, at(2 * window + 1)).is_empty());
        assert!(r.pending.lock().unwrap().written.is_empty() && r.pending.lock().unwrap().writes.is_empty());
        r.token_retrieved(&one, &key, 3);
        assert_eq!(touched(&r, false, at(2 * window + 2)), ["c1"]);
        // A full flush writes everything, and what follows it is written at once.
        r.token_retrieved(&one, &key, 4);
        assert_eq!(touched(&r, true, at(2 * window + 3)), ["c1"]);
        r.token_retrieved(&one, &key, 5);
        assert_eq!(touched(&r, false, at(2 * window + 4)), ["c1"]);
    }

    #[test]
    fn ended_windows_are_written_together_on_the_batch_beat() {
        let r = UsageRecorder::default();
        let key: Arc<str> = "backend".into();
        let (one, two) = (row("c1"), row("c2"));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (window, beat) = (COALESCE.as_secs(), TOUCH_BATCH.as_secs());
        assert!(beat > 5 && window % beat == 0, "the seconds below assume a beat that divides the window");

        assert!(touched(&r, false, at(0)).is_empty(), "the first flush sets the beat's phase");
        r.token_retrieved(&one, &key, 2);
        assert_eq!(touched(&r, false, at(2)), ["c1"], "a first use does not wait for the beat");
        r.token_retrieved(&two, &key, 5);
        assert_eq!(touched(&r, false, at(5)), ["c2"]);
        r.token_retrieved(&one, &key, 6);
        r.token_retrieved(&two, &key, 6);
        // Flushed every second, as the flusher does: the windows end at 62 and 65 s, and both
        // connections are written together on the next beat.
        let written: Vec<(u64, Vec<String>)> =
            (6..=window + 2 * beat).map(|s| (s, touched(&r, false, at(s)))).filter(|(_, t)| !t.is_empty()).collect();
        assert_eq!(written, [(window + beat, vec!["c1".to_owned(), "c2".to_owned()])]);
    }

    #[test]
    fn windows_that_end_together_are_spread_over_the_beats() {
        // After a start (or the benchmark's warm-up) every connection in use is first used within
        // seconds: their windows end together, and, written together, they end together again a
        // window later, for ever. That was one batch of every connection in use each minute
        // instead of a sixth of them on every beat (at 100,000 connections in use, the
        // benchmark's rounds with that batch had a p99 of 177-229 ms, the others 3-11 ms).
        let (r, rows, t0) = cohort();
        let (window, beat) = (COALESCE.as_secs(), TOUCH_BATCH.as_secs());
        let share = rows.len() * usize::try_from(beat).unwrap() / usize::try_from(window).unwrap();
        assert!(share > MIN_SHARE, "enough connections for the share to be a sixth of them");
        assert!(touched(&r, false, t0).is_empty(), "the first flush sets the beat's phase");
        let first = flushes(&r, &rows, t0, 1..=1, 1, |r, now| touched(r, false, now).len());
        assert_eq!(first, [(1, rows.len())], "first uses are written at once, all of them");
        // Every connection used every second for four windows, flushed every second.
        let batches = flushes(&r, &rows, t0, 2..=4 * window, 1, |r, now| touched(r, false, now).len());
        assert!(batches.iter().all(|&(_, len)| len <= share), "at most a beat's share a batch: {batches:?}");
        // From the second window on, every beat writes its share: none is skipped, none doubled.
        let late: Vec<usize> = batches.iter().filter(|&&(s, _)| s > 2 * window).map(|&(_, len)| len).collect();
        assert_eq!(late.len(), usize::try_from(2 * window / beat).unwrap(), "{batches:?}");
        assert!(late.iter().all(|&len| len == share), "{batches:?}");
    }

    #[test]
    fn trail_windows_that_end_together_are_spread_over_the_flushes() {
        // The same for the trail: connections first used together have their hourly entries due
        // together, one batch of wide rows for every connection in use each hour.
        let (r, rows, t0) = cohort();
        let (minute, hour) = (COALESCE.as_secs(), TRAIL_WINDOW.as_secs());
        let first = flushes(&r, &rows, t0, 0..=0, 1, |r, now| due(r, false, now).1.len());
        assert_eq!(first, [(0, rows.len())], "first uses get their entries at once, all of them");
        // Every connection used once a minute for three hours, flushed every second.
        let batches = flushes(&r, &rows, t0, 1..=3 * hour + minute, minute, |r, now| due(r, false, now).1.len());
        assert!(batches.iter().all(|&(_, len)| len <= MIN_SHARE), "at most a flush's share: {batches:?}");
        let written: usize = batches.iter().map(|&(_, len)| len).sum();
        assert_eq!(written, 3 * rows.len(), "every connection's entry once an hour, none lost: {batches:?}");
    }

    #[test]
    fn the_trail_gets_one_counted_entry_a_connection_and_hour() {
        let r = UsageRecorder::default();
        let key: Arc<str> = "backend".into();
        let one = row("c1");
        let t0 = Instant::now();
        let at = |s: i64| t0 + Duration::from_secs(s.unsigned_abs());
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap();
        let (minute, hour) = (secs(COALESCE), secs(TRAIL_WINDOW));
        let entry = |n: u64| vec![("c1".to_owned(), n)];

        r.token_retrieved(&one, &key, 0);
        assert_eq!(due(&r, false, at(0)), (vec!["c1".into()], entry(1)), "the first use: both at once");
        // Used twice a minute for the hour: `last_used_at` each minute, no trail entry.
        let mut retrievals = 0;
        for m in 1..hour / minute {
            r.token_retrieved(&one, &key, m * minute);
            r.token_retrieved(&one, &key, m * minute + 1);
            retrievals += 2;
            assert_eq!(due(&r, false, at(m * minute)), (vec!["c1".into()], vec![]), "minute {m}");
        }
        // The hour ends: one entry, counting every retrieval since the first.
        r.token_retrieved(&one, &key, hour);
        retrievals += 1;
        assert_eq!(due(&r, false, at(hour)), (vec!["c1".into()], entry(retrievals)));
        // Unused for the next hour: no entry, and the connection is forgotten, so its next use
        // is a first use again, written at once.
        assert_eq!(due(&r, false, at(2 * hour + 1)), (vec![], vec![]));
        assert!(r.pending.lock().unwrap().trail.is_empty() && r.pending.lock().unwrap().entries.is_empty());
        r.token_retrieved(&one, &key, 2 * hour + 2);
        assert_eq!(due(&r, false, at(2 * hour + 2)), (vec!["c1".into()], entry(1)));
        // A full flush (a shutdown) writes what the hour has gathered so far.
        r.token_retrieved(&one, &key, 2 * hour + 3);
        r.token_retrieved(&one, &key, 2 * hour + 4);
        assert_eq!(due(&r, false, at(2 * hour + minute + 2)), (vec!["c1".into()], vec![]));
        r.token_retrieved(&one, &key, 2 * hour + minute + 3);
        assert_eq!(due(&r, true, at(2 * hour + minute + 4)), (vec!["c1".into()], entry(3)));
        assert!(r.pending.lock().unwrap().trail.is_empty());
    }

    #[test]
    fn a_replaced_row_and_a_second_key_lose_no_count() {
        // The token cache replaces a connection's row (its TTL, a write): the old row's counter
        // may still hold uses; both are summed, and `last_used_by` is the latest retrieval's key.
        let r = UsageRecorder::default();
        let (backend, cron): (Arc<str>, Arc<str>) = ("backend".into(), "cron".into());
        let (old, new) = (row("c1"), row("c1"));
        let t0 = Instant::now();
        r.token_retrieved(&old, &backend, 0);
        assert_eq!(due(&r, false, t0), (vec!["c1".into()], vec![("c1".into(), 1)]));
        r.token_retrieved(&old, &cron, 5);
        r.token_retrieved(&old, &backend, 4);
        r.token_retrieved(&new, &backend, 6);
        r.token_retrieved(&new, &cron, 3);
        let all = r.take(true, t0 + Duration::from_secs(1)).unwrap();
        let touches: Vec<(String, i64, String)> =
            all.touches.into_iter().map(|(id, at, key)| (id.to_string(), at, key.to_string())).collect();
        assert_eq!(touches, [("c1".to_owned(), 6, "backend".to_owned())]);
        let [entry] = &all.entries[..] else { panic!("one trail entry: {:?}", all.entries) };
        let mut counts: Vec<(String, u64)> = entry.by_key.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        counts.sort();
        assert_eq!(counts, [("backend".to_owned(), 2), ("cron".to_owned(), 2)]);
    }
}

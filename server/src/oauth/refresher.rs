//! Background upkeep, so the hot path rarely waits on a provider:
//! - the proactive refresher renews each token (each chain: a Slack user token apart from its
//!   bot token) once per lifetime, when what is left of it falls
//!   within `refresh_window_seconds` and below a quarter of its lifetime (so a 5-minute token is
//!   renewed once, near its end, not on every round), as many per round as are due, 16 at a
//!   time, each provider at most half its outbound rate;
//! - re-validation asks the identity endpoint of providers that have one (Slack: `auth.test`,
//!   read by its `ok` and `error`, since Slack answers HTTP 200 either way) whether long-lived
//!   tokens still work and records `last_validated_at`. Every connection it looks at is marked
//!   checked, usable answer or not, so it moves past those it cannot check. A 401 is confirmed
//!   (by a refresh, or a second look) before a connection is flipped to `needs_reauthorization`.
//!
//! With several replicas each connection is refreshed by one of them: the refresh itself takes
//! the row's lease (see `refresh`), and rows under a live lease are not even selected.

use super::refresh::{self, RefreshCtx, Refreshed};
use super::validate::{Check, honoured};
use crate::activity::{Action, Actor, Entry};
use crate::clock::Clock;
use crate::store::connections::Chain;
use crate::store::connections::ConnectionRow;
use crate::vault::Sealed;
use crate::vault::Secret;
use latch_shared::ConnectionStatus;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the background upkeep works with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct Refresher {
    pub refresh: RefreshCtx,
    /// `refresh_window_seconds`: how far ahead of an expiry the refresher looks.
    pub window_seconds: i64,
    /// `validation_interval_seconds`: how often a long-lived token is re-validated.
    pub validation_interval_seconds: i64,
    /// Background refreshes per provider per round: half of `provider_per_second` × the round.
    pub per_provider_per_round: usize,
}

impl Refresher {
    /// The background share of a provider's outbound rate over one round.
    pub fn per_provider_share(provider_per_second: u32) -> usize {
        (provider_per_second as usize * ROUND.as_secs() as usize / 2).max(1)
    }
}

/// Refreshes in flight at once, at most (each mostly waits on its provider).
const CONCURRENCY: usize = 16;
/// Due rows listed per query (per chain); a round lists again while it finds new ones.
const BATCH: i64 = 500;
/// Refreshes a round starts at most; the rest are due next round.
const MAX_PER_ROUND: usize = 5_000;
/// Pause between rounds (plus jitter).
const ROUND: Duration = Duration::from_secs(15);
/// Pause before asking again after a "no longer accepted".
const CONFIRM_PAUSE: Duration = Duration::from_millis(500);

/// One round of proactive refreshes; returns how many tokens it renewed.
///
/// Sized to the expiry rate rather than a fixed count: it lists what is due (soonest first,
/// one token chain after the other), refreshes up to [`CONCURRENCY`] at a time, and lists again while it finds rows
/// it has not tried this round, up to [`MAX_PER_ROUND`]. Each provider gets at most half its
/// outbound rate (`provider_per_second` × the round), so callers' own refreshes keep the rest.
/// With several replicas, each skips what another has leased (`refresh_in_background`), so
/// they share the work instead of queueing behind each other.
pub async fn refresh_round(r: &Refresher) -> usize {
    let now = r.refresh.clock.unix();
    let per_provider_cap = r.per_provider_per_round.max(1);
    let mut per_provider: HashMap<String, usize> = HashMap::new();
    let mut tried: std::collections::HashSet<(String, Chain)> = std::collections::HashSet::new();
    let mut done = 0;
    // One chain after the other: both chains of a connection share its row's lease, so running
    // them at once would make one wait for (or, here, leave its work to) the other.
    for chain in [Chain::Primary, Chain::User] {
        while tried.len() < MAX_PER_ROUND {
            let due = match r.refresh.store.connections_expiring(chain, now, r.window_seconds, BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "refresher could not list connections");
                    return done;
                }
            };
            let fresh: Vec<(Chain, ConnectionRow)> = due
                .into_iter()
                .filter(|row| {
                    let taken = per_provider.entry(row.provider.clone()).or_default();
                    let new = *taken < per_provider_cap && tried.insert((row.id.clone(), chain));
                    *taken += usize::from(new);
                    new
                })
                .take(MAX_PER_ROUND)
                .map(|row| (chain, row))
                .collect();
            if fresh.is_empty() {
                break;
            }
            done += refresh_all(r, fresh).await;
        }
    }
    done
}

/// Refreshes `rows`, [`CONCURRENCY`] at a time; returns how many were renewed.
async fn refresh_all(r: &Refresher, rows: Vec<(Chain, ConnectionRow)>) -> usize {
    let mut done = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows = rows.into_iter();
    loop {
        while tasks.len() < CONCURRENCY {
            let Some((chain, row)) = rows.next() else { break };
            let cx = r.refresh.clone();
            tasks.spawn(
                async move { refresh::refresh_in_background(&cx, &row, chain, &Actor::System("refresher")).await },
            );
        }
        let Some(result) = tasks.join_next().await else { return done };
        match result {
            Ok(Ok(Refreshed::Usable(_))) => done += 1,
            Ok(Ok(Refreshed::NeedsReauthorization(_) | Refreshed::Stale(_) | Refreshed::Elsewhere(_))) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "proactive refresh did not complete"),
            Err(e) => tracing::warn!(error = %e, "proactive refresh task failed"),
        }
    }
}

/// One round of re-validation; returns how many were checked.
pub async fn validation_round(r: &Refresher) -> usize {
    let now = r.refresh.clock.unix();
    let rows = match r.refresh.store.connections_to_validate(now - r.validation_interval_seconds, 50).await {
        Ok(rows) => rows,
        Err(_) => return 0,
    };
    let mut checked = 0;
    for row in rows {
        // Whatever happens next, this connection goes to the back of the queue.
        if let Err(e) = r.refresh.store.mark_validation_checked(&row.id, now).await {
            tracing::warn!(error = %e, "re-validation could not record its progress");
            return checked;
        }
        let Some(provider) = r.refresh.upstream.providers.get(&row.provider) else { continue };
        let Some(check) = Check::of(provider) else { continue };
        if refresh::is_expired(&row, Chain::Primary, now) {
            continue; // the refresher's job
        }
        let Some(sealed) = row.access_token.as_deref() else { continue };
        let Ok(token) = r.refresh.vault.open_secret(Sealed::AccessToken.slot(&row.id), sealed) else {
            continue;
        };
        checked += 1;
        match honoured(&r.refresh.upstream.http, check, &token).await {
            Some(true) => {
                let _ = r.refresh.store.mark_validated(&row.id, now).await;
            }
            Some(false) => confirm_revoked(r, &row, check, &token, now).await,
            None => {} // outage or rate limit: try again next interval
        }
    }
    checked
}

/// One "no longer accepted" is not proof (a provider hiccup, a token rotated meanwhile): a
/// connection with a refresh token is refreshed, which settles it either way through the refresh
/// protocol; one without is asked once more, and flipped only if that answer says so too.
async fn confirm_revoked(r: &Refresher, row: &ConnectionRow, check: Check<'_>, token: &Secret, now: i64) {
    if row.refresh_token.is_some() {
        let _ = refresh::refresh(&r.refresh, row, Chain::Primary, true, &Actor::System("validator")).await;
        return;
    }
    Clock::sleep(CONFIRM_PAUSE).await;
    match honoured(&r.refresh.upstream.http, check, token).await {
        Some(false) => {}
        Some(true) => {
            let _ = r.refresh.store.mark_validated(&row.id, now).await;
            return;
        }
        None => return,
    }
    let event = crate::events::needs_reauthorization(row, now);
    if let Ok(true) = r
        .refresh
        .store
        .set_connection_status(&row.id, row.version, None, ConnectionStatus::NeedsReauthorization, now, Some(&event))
        .await
    {
        let entry = Entry::new(now, &Actor::System("validator"), Action::ValidationFailed)
            .connection(row)
            .failed("needs_reauthorization")
            .detail("the provider no longer accepts the token (revoked or uninstalled)");
        crate::activity::record(&r.refresh.store, entry).await;
    }
}

/// Runs both loops until `stop` is cancelled (started by `serve`, never by a one-shot command).
pub async fn run(r: Refresher, stop: CancellationToken) {
    loop {
        let round = async {
            refresh_round(&r).await;
            validation_round(&r).await;
        };
        let jitter = {
            use rand::Rng as _;
            rand::thread_rng().gen_range(0..5_000)
        };
        let pause = Clock::sleep(ROUND + Duration::from_millis(jitter));
        tokio::select! {
            () = stop.cancelled() => return,
            () = async { round.await; pause.await } => {}
        }
    }
}

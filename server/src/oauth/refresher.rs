//! Background upkeep, so the hot path rarely waits on a provider:
//! - the proactive refresher renews each token (each chain: a Slack user token apart from its
//!   bot token) once per lifetime, when what is left of it falls
//!   within `refresh_window_seconds` and below a quarter of its lifetime (so a 5-minute token is
//!   renewed once, near its end, not on every round), a few at a time, with a per-provider cap;
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
}

/// Connections refreshed at the same time, at most.
const CONCURRENCY: usize = 4;
/// Refreshes per provider per round, at most (the per-provider rate limit).
const PER_PROVIDER_PER_ROUND: usize = 20;
/// Pause between rounds (plus jitter).
const ROUND: Duration = Duration::from_secs(15);
/// Pause before asking again after a "no longer accepted".
const CONFIRM_PAUSE: Duration = Duration::from_millis(500);

/// One round of proactive refreshes; returns how many connections were refreshed.
pub async fn refresh_round(r: &Refresher) -> usize {
    let now = r.refresh.clock.unix();
    // Each token chain on its own: a Slack connection's user token expires apart from its bot's.
    let mut rows = Vec::new();
    for chain in [Chain::Primary, Chain::User] {
        match r.refresh.store.connections_expiring(chain, now, r.window_seconds, 200).await {
            Ok(found) => rows.extend(found.into_iter().map(|row| (chain, row))),
            Err(e) => {
                tracing::warn!(error = %e, "refresher could not list connections");
                return 0;
            }
        }
    }
    let mut per_provider: HashMap<String, usize> = HashMap::new();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(_, r)| {
            let n = per_provider.entry(r.provider.clone()).or_default();
            *n += 1;
            *n <= PER_PROVIDER_PER_ROUND
        })
        .collect();
    let mut done = 0;
    for chunk in rows.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for (chain, row) in chunk {
            let (cx, row, chain) = (r.refresh.clone(), row.clone(), *chain);
            tasks.spawn(
                async move { refresh::refresh_to_end(&cx, &row, chain, true, &Actor::System("refresher")).await },
            );
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(Ok(Refreshed::Usable(_))) => done += 1,
                Ok(Ok(Refreshed::NeedsReauthorization(_) | Refreshed::Stale(_))) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "proactive refresh did not complete"),
                Err(e) => tracing::warn!(error = %e, "proactive refresh task failed"),
            }
        }
    }
    done
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

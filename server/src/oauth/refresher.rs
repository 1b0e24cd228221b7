//! Background upkeep, so the hot path rarely waits on a provider:
//! - the proactive refresher renews tokens that expire within `refresh_window_seconds`,
//!   a few at a time, with a per-provider rate limit, jittered;
//! - re-validation asks the identity endpoint of providers that have one whether long-lived
//!   tokens still work, records `last_validated_at`, and flips revoked ones to
//!   `needs_reauthorization` (with their event).
//!
//! With several replicas each connection is refreshed by one of them: the refresh itself takes
//! the row's lease (see `refresh`), and rows under a live lease are not even selected.

use super::refresh::{self, Refreshed};
use crate::activity::{Actor, Entry};
use crate::clock::Clock;
use crate::state::AppState;
use crate::vault::Slot;
use latch_shared::ConnectionStatus;
use std::collections::HashMap;
use std::time::Duration;

/// Connections refreshed at the same time, at most.
const CONCURRENCY: usize = 4;
/// Refreshes per provider per round, at most (the per-provider rate limit).
const PER_PROVIDER_PER_ROUND: usize = 20;
/// Pause between rounds (plus jitter).
const ROUND: Duration = Duration::from_secs(15);

/// One round of proactive refreshes; returns how many connections were refreshed.
pub async fn refresh_round(state: &AppState) -> usize {
    let now = state.clock.unix();
    let rows = match state.store.connections_expiring(now + state.config.refresh_window_seconds, now, 200).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "refresher could not list connections");
            return 0;
        }
    };
    let mut per_provider: HashMap<String, usize> = HashMap::new();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| {
            let n = per_provider.entry(r.provider.clone()).or_default();
            *n += 1;
            *n <= PER_PROVIDER_PER_ROUND
        })
        .collect();
    let mut done = 0;
    for chunk in rows.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for row in chunk {
            let (state, row) = (state.clone(), row.clone());
            tasks.spawn(async move { refresh::refresh(&state, &row, true, &Actor::System("refresher")).await });
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(Ok(Refreshed::Usable(_))) => done += 1,
                Ok(Ok(Refreshed::NeedsReauthorization(_))) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "proactive refresh did not complete"),
                Err(e) => tracing::warn!(error = %e, "proactive refresh task failed"),
            }
        }
    }
    done
}

/// One round of re-validation at identity endpoints; returns how many were checked.
pub async fn validation_round(state: &AppState) -> usize {
    let now = state.clock.unix();
    let rows = match state.store.connections_to_validate(now - state.config.validation_interval_seconds, 50).await {
        Ok(rows) => rows,
        Err(_) => return 0,
    };
    let mut checked = 0;
    for row in rows {
        let Some(provider) = state.providers.get(&row.provider) else { continue };
        let Some(identity) = &provider.identity else { continue };
        if refresh::is_expired(&row, now) {
            continue; // the refresher's job
        }
        let Some(sealed) = row.access_token.as_deref() else { continue };
        let Ok(token) = state.vault.open_secret(Slot::new("connections", &row.id, "access_token"), sealed) else {
            continue;
        };
        checked += 1;
        match super::identity::request(&state.http, identity, &token).send().await.map(|r| r.status().as_u16()) {
            Ok(200..=299) => {
                let _ = state.store.mark_validated(&row.id, now).await;
            }
            Ok(401) => {
                let event = crate::events::needs_reauthorization(&row, now);
                let status = ConnectionStatus::NeedsReauthorization.as_str();
                if let Ok(true) =
                    state.store.set_connection_status(&row.id, row.version, status, now, Some(&event)).await
                {
                    let entry = Entry::new(now, &Actor::System("validator"), "validation_failed")
                        .connection(&row)
                        .failed("needs_reauthorization")
                        .detail("the provider no longer accepts the token (revoked)");
                    refresh::record(state, entry).await;
                }
            }
            _ => {} // outage or rate limit: try again next round
        }
    }
    checked
}

/// Runs both loops until the process ends.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            refresh_round(&state).await;
            validation_round(&state).await;
            let jitter = {
                use rand::Rng as _;
                rand::thread_rng().gen_range(0..5_000)
            };
            Clock::sleep(ROUND + Duration::from_millis(jitter)).await;
        }
    })
}

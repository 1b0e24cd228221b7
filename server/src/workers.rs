//! The background work of a serving process: the usage flusher, the webhook deliverer, the
//! tombstone purge, the signing-key reload, the listener of other processes' changes (PostgreSQL
//! `LISTEN`, or on SQLite a poll of the change log) and the proactive refresher. `serve` starts them and
//! shuts them down; building an [`AppState`] starts nothing, so one-shot commands (`latch keys
//! rotate`, `latch secret add`) deliver no webhook and refresh no token while they run.

use crate::AppState;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The running workers; [`Workers::shutdown`] stops them.
#[derive(Debug)]
pub struct Workers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Starts every worker the configuration asks for. On PostgreSQL the change listener is
    /// listening when this returns (or has failed to within [`LISTEN_WAIT`] and retries in the
    /// background): `serve` calls it before it accepts a connection, because a listener that
    /// connects later must declare everything cached before it stale.
    pub async fn start(state: &AppState) -> Self {
        let first = connect_listener(state).await;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(state.usage.clone().run_flusher(state.store.clone(), stop.clone()));
        tasks.spawn(crate::events::webhooks::run(state.webhooks.clone(), stop.clone()));
        let (store, clock, days) = (state.store.clone(), state.clock.clone(), state.config.tombstone_retention_days);
        tasks.spawn(crate::connections::run_tombstone_upkeep(store, clock, days, stop.clone()));
        tasks.spawn(reload_signing_keys(state.signer.clone(), stop.clone()));
        tasks.spawn(listen_for_changes(state.clone(), first, stop.clone()));
        if state.config.background_refresh {
            tasks.spawn(crate::oauth::refresher::run(state.refresher.clone(), stop.clone()));
        }
        Self { stop, tasks }
    }

    /// Stops the workers and waits (up to `grace`) until they have: pending usage is written.
    /// Work a worker handed to a task of its own (a refresh, a delivery) runs on to its end, and
    /// the caller waits for it with `detach::finish`.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = self.tasks.join_next().await {
                if let Err(e) = done {
                    tracing::warn!(error = %e, "a background worker ended abnormally");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("background workers did not stop in time; aborted");
        }
    }
}

/// Picks up a signing-key rotation made elsewhere (`latch keys rotate-signing`, another replica).
async fn reload_signing_keys(signer: std::sync::Arc<crate::auth::widget_jwt::WidgetSigner>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = crate::clock::Clock::sleep(crate::auth::widget_jwt::RELOAD_EVERY) => signer.reload().await,
        }
    }
}

/// How long `Workers::start` waits for the change listener before serving without it.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// The change listener, connected and listening (PostgreSQL), or `None` (SQLite, or PostgreSQL
/// not answering within [`LISTEN_WAIT`]: `listen_for_changes` then keeps trying).
async fn connect_listener(state: &AppState) -> Option<sqlx::postgres::PgListener> {
    if !state.store.notifies() {
        return None;
    }
    match tokio::time::timeout(LISTEN_WAIT, state.store.listener()).await {
        Ok(Ok(listener)) => listener,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for other replicas' changes yet; serving, and retrying");
            None
        }
        Err(_) => {
            tracing::warn!("the change listener is not connected yet; serving, and retrying");
            None
        }
    }
}

/// Hears the other replicas' changes (PostgreSQL `LISTEN`; nothing to hear on SQLite): a changed
/// connection's owner is dropped from the token cache, a revoked API key empties the key cache.
/// `first` was listening before anything was served. A listener connected later, or one that
/// lost its connection and is replaced, has missed what happened meanwhile, so it drops
/// everything once it listens (the caches' TTL bounds the gap).
async fn listen_for_changes(state: AppState, first: Option<sqlx::postgres::PgListener>, stop: CancellationToken) {
    if !state.store.notifies() {
        return poll_for_changes(state, stop).await;
    }
    let mut first = first;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match first.take() {
            Some(listener) => listener,
            None => {
                let listener = tokio::select! {
                    () = stop.cancelled() => return,
                    listener = state.store.listener() => listener,
                };
                match listener {
                    Ok(Some(listener)) => {
                        backoff = Duration::from_millis(100);
                        // Listening now: whatever changed before is unknown.
                        forget_everything(&state);
                        listener
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = crate::clock::Clock::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => apply_change(&state, notification.channel(), notification.payload()),
                Ok(None) => {
                    tracing::warn!("the change listener lost its connection; listening again");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the change listener failed; listening again");
                    break;
                }
            }
        }
    }
}

/// How often a SQLite server reads the change log other processes write (the CLI).
const POLL_CHANGES: Duration = Duration::from_millis(100);

/// SQLite: one process serves, but others (the CLI) may change connections: their entries in
/// the change log stale the owners' cached rows within [`POLL_CHANGES`].
async fn poll_for_changes(state: AppState, stop: CancellationToken) {
    let mut after = None;
    let mut polls = 0u32;
    loop {
        match state.store.changes_by_others(after).await {
            Ok((owners, last)) => {
                for owner in owners {
                    state.store.changes().owner_changed(owner);
                }
                after = Some(last);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the change log; dropping every cached row");
                state.store.changes().all_changed();
            }
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(6000) {
            // About every ten minutes.
            if let Err(e) = state.store.prune_changes().await {
                tracing::warn!(error = %e, "could not prune the change log");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = crate::clock::Clock::sleep(POLL_CHANGES) => {}
        }
    }
}

fn forget_everything(state: &AppState) {
    state.store.changes().all_changed();
    state.api_keys.forget_all();
}

/// One notification of another replica (or our own, which changes nothing more).
fn apply_change(state: &AppState, channel: &str, payload: &str) {
    use crate::store::changes::{API_KEYS_CHANNEL, CONNECTIONS_CHANNEL, owner_key};
    match channel {
        CONNECTIONS_CHANNEL => match serde_json::from_str::<[String; 4]>(payload) {
            Ok([_id, user, organization, provider]) => {
                state.store.changes().owner_changed(owner_key(&user, &organization, &provider));
            }
            Err(_) => state.store.changes().all_changed(),
        },
        API_KEYS_CHANNEL => state.api_keys.forget_all(),
        _ => {}
    }
}

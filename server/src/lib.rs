//! Latch server: connects a host app's end users to third-party accounts and keeps their tokens.
//!
//! Module map (one line each; ARCHITECTURE.md has the invariants):
//! - [`api`]: HTTP only: routes, extractors, the single error-to-HTTP mapping.
//! - [`auth`]: who is calling: API keys, widget JWTs.
//! - [`connections`]: governance of connections and the fresh-token path.
//! - [`oauth`]: talking OAuth2 to providers: token endpoint, refresh protocol, revocation.
//! - [`providers`]: the provider registry, as data.
//! - [`vault`]: encryption at rest, bound to row and column.
//! - [`store`]: persistence; the only module with SQL.
//! - [`sandbox`]: the built-in demo authorization server (demo mode only).
//! - [`widget`]: the server's side of the widget: minting tokens, what the widget shows.
//! - [`assets`]: the built widget's files and loader; [`demo`]: the demo host app of `latch demo`.
//! - [`provider_events`]: events providers push (Slack's Events API), signature-checked.
//! - [`events`]: the transactional outbox of connection events, polling and signed webhooks.
//! - [`activity`], [`usage`]: the audit trail, and usage batched off the hot path.
//! - [`limits`]: rate limits per API key, widget user, client address and provider.
//! - [`metrics`]: Prometheus counters and histograms, and gauges read from the store.
//! - [`random`], [`paging`]: one-time secrets and digests; page sizes and cursors.
//! - [`config`], [`cli`], [`state`] (the composition root), [`workers`] (background work of
//!   `serve`), [`clock`], [`detach`], [`listener`], [`telemetry`]: plumbing.
#![forbid(unsafe_code)]

pub mod activity;
pub mod api;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod demo;
pub mod detach;
pub mod events;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod oauth;
pub mod paging;
pub mod provider_events;
pub mod providers;
pub mod random;
pub mod sandbox;
pub mod scopes;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod vault;
pub mod widget;
pub mod workers;

pub use state::AppState;

use std::future::Future;

/// Serves the API on `listener` with the background workers running until `shutdown`
/// resolves, then stops the workers (pending usage is written). The binary and the tests both
/// start the server through here.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_split(listener, None, state, shutdown).await
}

/// [`serve`], with the host API and `/metrics` on `admin` instead when there is one
/// (`admin_listen`). Either listener failing stops both.
pub async fn serve_split(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = workers::Workers::start(&state).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let http = state.config.http;
    let run = |listener, app, stop: tokio_util::sync::CancellationToken| async move {
        let served = listener::run(listener, app, http, stop.clone().cancelled_owned()).await;
        stop.cancel();
        served
    };
    let served = match admin {
        None => run(listener, api::router(state.clone()), stop).await,
        Some(admin) => {
            let public = run(listener, api::routes(state.clone(), api::Routes::Public), stop.clone());
            let admin = run(admin, api::routes(state.clone(), api::Routes::Admin), stop);
            let (public, admin) = tokio::join!(public, admin);
            public.and(admin)
        }
    };
    // Requests are drained; the workers stop starting work and write what they hold (usage),
    // then the refreshes and code exchanges under way finish. (A webhook delivery in flight is
    // not waited for: its endpoint's lease expires and the event is sent again.)
    let grace = std::time::Duration::from_secs(http.shutdown_grace_seconds);
    workers.shutdown(grace).await;
    if !detach::finish(grace).await {
        tracing::warn!(grace_seconds = http.shutdown_grace_seconds, "shutdown: work in flight was cut");
    }
    tracing::info!("latch stopped");
    served
}

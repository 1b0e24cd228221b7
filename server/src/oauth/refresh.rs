//! Refreshing an access token, safely under concurrency and whatever happens to the callers.
//!
//! Rotating refresh tokens are single-use: presenting one twice makes most providers revoke the
//! whole grant. So at most one refresh per connection may be in flight anywhere:
//! 1. in this process, [`Flights`] runs one refresh per connection in a task of its own, which
//!    every caller of that connection awaits (single flight). The task runs lease → provider call
//!    → commit to its end even when every caller has hung up (a client timeout, a reset
//!    connection): a caller that goes away changes nothing. Callers wait at most
//!    `refresh_caller_wait_ms`, then get the still-valid token or `503 provider_unavailable`.
//! 2. across replicas, a lease committed on the row (`lease_until`, `refresh_attempt`) with a
//!    compare-and-swap on `version`; whoever loses waits for the row's version to change;
//! 3. after taking either, the row is re-read, and a token someone else refreshed is served as is.
//!
//! Every write made under a lease is fenced by its `refresh_attempt`, so a holder that overran
//! cannot clear or overwrite its successor's lease or tokens; and the provider call and the commit
//! fit inside the lease, counted from the moment it was taken. New tokens are written before any
//! caller sees them; an answer without a refresh token keeps the stored one.
//!
//! A transient failure is remembered per connection for a short, jittered back-off, so callers
//! arriving behind one attempt share its outcome instead of starting their own; the per-provider
//! circuit breaker and incident guard (`provider_health`) bound what an outage or a mass
//! revocation makes Latch do.

use super::Upstream;
use super::http::PROVIDER_TIMEOUT;
use super::provider_health::ProviderHealth;
use super::provider_health::{Admission, GrantVerdict, Transition};
use super::token::{self, TokenError};
use crate::activity::record;
use crate::activity::{Action, Actor, Entry};
use crate::clock::Clock;
use crate::events::RefreshFailedLimiter;
use crate::limits::Limits;
use crate::scopes::Scopes;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::connections::{Chain, ConnectionRow, RefreshedTokens};
use crate::vault::Vault;
use crate::vault::VaultError;
use latch_shared::ConnectionStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a refresh lease is held at most; longer than [`PROVIDER_TIMEOUT`].
pub const LEASE: Duration = Duration::from_secs(PROVIDER_TIMEOUT.as_secs() + 5);
/// The end of a lease kept free for committing what the provider answered.
const COMMIT_MARGIN: Duration = Duration::from_secs(3);
/// A provider call is not started with less time than this left before the commit margin.
const MIN_CALL: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);
/// Provider calls per refresh at most (the first try and two retries of transient failures).
const MAX_ATTEMPTS: u32 = 3;
/// After a transient failure, later callers share its outcome for this long (plus as much jitter).
const TRANSIENT_BACKOFF_MS: u64 = 1000;
/// The longest `Retry-After` of a rate-limited provider that a refresh waits out itself (when it
/// also fits its lease); a longer one is handed to the caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A random duration in `0..=max_ms` milliseconds ("full jitter").
fn jitter(max_ms: u64) -> u64 {
    use rand::Rng as _;
    rand::thread_rng().gen_range(0..=max_ms)
}

/// What refreshing touches, handed over by the composition root; cheap to clone (the refresh
/// task of a connection owns one).
#[derive(Debug, Clone)]
pub struct RefreshCtx {
    pub store: Store,
    pub vault: Vault,
    pub clock: Clock,
    pub upstream: Upstream,
    /// Refreshes in flight in this process (single flight, detached from callers).
    pub flights: Arc<Flights>,
    /// Circuit breakers and incident guards of the providers (per replica).
    pub health: Arc<ProviderHealth>,
    /// The per-provider outbound rate limit.
    pub limits: Arc<Limits>,
    /// Rate limit of `connection.refresh_failed` events.
    pub refresh_failed: Arc<RefreshFailedLimiter>,
    /// `access_token_skew_seconds`: how long before its expiry a token is refreshed.
    pub skew_seconds: i64,
    /// `refresh_caller_wait_ms`: how long a caller waits for a refresh in flight.
    pub caller_wait: Duration,
}

/// What a refresh leaves the caller with.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// A row whose access token can be served.
    Usable(ConnectionRow),
    /// The provider failed transiently (or is held back by its breaker); this row's access token
    /// has not expired yet and is served.
    Stale(ConnectionRow),
    /// The grant is gone; the user must reconnect.
    NeedsReauthorization(ConnectionRow),
    /// Another replica holds the lease and this row's token has not expired: a background
    /// refresh leaves it to that replica instead of waiting.
    Elsewhere(ConnectionRow),
}

/// Why no token could be produced. `Clone`, because one refresh answers many callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The connection was deleted meanwhile.
    #[error("connection vanished during refresh")]
    Gone,
    /// The provider is down or slow and the stored token has expired.
    #[error("provider unavailable: {reason}")]
    Unavailable {
        /// Why, for the log.
        reason: String,
        /// Seconds after which a retry may succeed.
        retry_after: u32,
    },
    /// The provider rejected the app's client credentials, or the provider is no longer configured.
    #[error("provider misconfigured: {0}")]
    Misconfigured(String),
    /// No client secret is configured.
    #[error("no client secret configured for provider {0}")]
    MissingClientSecret(String),
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<StoreError> for RefreshError {
    fn from(e: StoreError) -> Self {
        RefreshError::Store(Arc::new(e))
    }
}

impl RefreshError {
    fn unavailable(reason: impl Into<String>, retry_after: u32) -> Self {
        RefreshError::Unavailable { reason: reason.into(), retry_after }
    }
}

type Outcome = Result<Refreshed, RefreshError>;

/// Whether an outcome is a transient failure, which later callers share for a short back-off.
fn is_transient(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(Refreshed::Stale(_)) | Err(RefreshError::Unavailable { .. }))
}

/// Refreshes in flight in this process, one per connection, and for a short back-off the
/// outcome of the last one that failed transiently.
#[derive(Debug, Default)]
pub struct Flights {
    flights: Mutex<HashMap<String, Flight>>,
}

#[derive(Debug)]
struct Flight {
    outcome: watch::Receiver<Option<Outcome>>,
    /// Set when the outcome is a transient failure: until then, callers get it as it is.
    shared_until: Option<Instant>,
}

enum Joined {
    /// A refresh is in flight: wait for it.
    Wait(watch::Receiver<Option<Outcome>>),
    /// Nothing in flight: start one and publish its outcome here.
    Start(watch::Sender<Option<Outcome>>, watch::Receiver<Option<Outcome>>),
    /// A transient failure a moment ago: its outcome, and the seconds left of its back-off.
    Shared(Box<Outcome>, u32),
}

impl Flights {
    fn join(&self, id: &str, now: Instant) -> Joined {
        let Ok(mut flights) = self.flights.lock() else {
            let (tx, rx) = watch::channel(None);
            return Joined::Start(tx, rx);
        };
        if let Some(flight) = flights.get(id) {
            let settled = flight.outcome.borrow().clone();
            // A task that ended without publishing (it panicked) leaves a closed channel.
            let alive = flight.outcome.has_changed().is_ok();
            match (settled, flight.shared_until) {
                (None, _) if alive => return Joined::Wait(flight.outcome.clone()),
                (Some(outcome), Some(until)) if now < until => {
                    let left = until.saturating_duration_since(now).as_secs_f64().ceil() as u32;
                    return Joined::Shared(Box::new(outcome), left.max(1));
                }
                _ => {}
            }
        }
        if flights.len() >= 1024 {
            flights.retain(|_, f| f.outcome.borrow().is_none() || f.shared_until.is_some_and(|u| now < u));
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(id.to_owned(), Flight { outcome: rx.clone(), shared_until: None });
        Joined::Start(tx, rx)
    }

    /// Publishes a finished refresh: a transient failure stays for its back-off, anything else
    /// is forgotten at once (the row in the database is the truth).
    fn settle(&self, id: &str, tx: &watch::Sender<Option<Outcome>>, outcome: Outcome) {
        let transient = is_transient(&outcome);
        let Ok(mut flights) = self.flights.lock() else {
            tx.send_replace(Some(outcome));
            return;
        };
        tx.send_replace(Some(outcome));
        let ours = flights.get(id).is_some_and(|f| f.outcome.same_channel(&tx.subscribe()));
        if !ours {
            return;
        }
        if transient {
            let backoff = Duration::from_millis(TRANSIENT_BACKOFF_MS + jitter(TRANSIENT_BACKOFF_MS));
            if let Some(flight) = flights.get_mut(id) {
                flight.shared_until = Some(Instant::now() + backoff);
            }
        } else {
            flights.remove(id);
        }
    }
}

/// Whether a token expiring at `expires_at` should be refreshed at `now`: within `skew` of
/// expiry, but never more than half its lifetime early, so short-lived tokens are not refreshed
/// on every call. Tokens without an expiry never need it.
pub fn needs_refresh(row: &ConnectionRow, chain: Chain, now: i64, skew: i64) -> bool {
    refresh_due(row.expires_at(chain), row.issued_at(chain), now, skew)
}

/// [`needs_refresh`] of a token issued at `issued` that expires at `expires_at`.
pub fn refresh_due(expires_at: Option<i64>, issued: i64, now: i64, skew: i64) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let lifetime = (expires_at - issued).max(0);
    let skew = skew.min(lifetime / 2);
    now >= expires_at.saturating_sub(skew)
}

/// Whether the stored access token of `chain` is past its expiry.
pub fn is_expired(row: &ConnectionRow, chain: Chain, now: i64) -> bool {
    row.expires_at(chain).is_some_and(|at| now >= at)
}

/// Whether a forced refresh of `chain` should be held back: its token was issued less than the
/// provider's `min_refresh_interval_seconds` ago and is still valid. Slack keeps at most two
/// live access tokens per chain, so a storm of forced refreshes would revoke the token other
/// callers still use.
pub fn within_floor(row: &ConnectionRow, chain: Chain, now: i64, floor: i64) -> bool {
    floor > 0 && !is_expired(row, chain, now) && now - row.issued_at(chain) < floor
}

/// Refreshes `seen` if it (still) needs it, or unconditionally with `force` unless somebody else
/// refreshed it since `seen` was read. The refresh runs in its own task; this waits for it at
/// most `refresh_caller_wait_ms`.
pub async fn refresh(cx: &RefreshCtx, seen: &ConnectionRow, chain: Chain, force: bool, actor: &Actor) -> Outcome {
    refresh_within(cx, seen, chain, force, actor, cx.caller_wait, true).await
}

/// [`refresh`] for background work, which has no caller in a hurry: waits for the outcome.
pub async fn refresh_to_end(
    cx: &RefreshCtx,
    seen: &ConnectionRow,
    chain: Chain,
    force: bool,
    actor: &Actor,
) -> Outcome {
    refresh_within(cx, seen, chain, force, actor, LEASE + LEASE, true).await
}

/// [`refresh_to_end`] for the proactive refresher: a connection another replica is refreshing
/// is left to it ([`Refreshed::Elsewhere`]) rather than waited for, so replicas share the work.
pub async fn refresh_in_background(cx: &RefreshCtx, seen: &ConnectionRow, chain: Chain, actor: &Actor) -> Outcome {
    refresh_within(cx, seen, chain, true, actor, LEASE + LEASE, false).await
}

/// The single-flight key of a chain: the connection id, and for the user chain a suffix.
fn flight_key(id: &str, chain: Chain) -> std::borrow::Cow<'_, str> {
    match chain {
        Chain::Primary => std::borrow::Cow::Borrowed(id),
        Chain::User => std::borrow::Cow::Owned(format!("{id}/user")),
    }
}

async fn refresh_within(
    cx: &RefreshCtx,
    seen: &ConnectionRow,
    chain: Chain,
    force: bool,
    actor: &Actor,
    wait: Duration,
    patient: bool,
) -> Outcome {
    let key = flight_key(&seen.id, chain);
    let mut outcome = match cx.flights.join(&key, Instant::now()) {
        Joined::Shared(outcome, left) => return still_valid(*outcome, chain, cx.clock.unix(), left),
        Joined::Wait(rx) => rx,
        Joined::Start(tx, rx) => {
            let (cx, seen, actor, key) = (cx.clone(), seen.clone(), actor.clone(), key.into_owned());
            crate::detach::spawn(async move {
                let outcome = run(&cx, &seen, chain, force, &actor, patient).await;
                let label = match &outcome {
                    Ok(Refreshed::Usable(_)) => "refreshed",
                    Ok(Refreshed::NeedsReauthorization(_)) => "needs_reauthorization",
                    Ok(Refreshed::Stale(_)) => "transient",
                    Ok(Refreshed::Elsewhere(_)) => "elsewhere",
                    Err(_) => "error",
                };
                crate::metrics::refresh(&seen.provider, label);
                cx.flights.settle(&key, &tx, outcome);
            });
            rx
        }
    };
    match tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await {
        Ok(Ok(settled)) => settled.clone().unwrap_or_else(|| Err(RefreshError::unavailable("no outcome", 1))),
        Ok(Err(_)) => Err(RefreshError::unavailable("the refresh task ended without an outcome", 1)),
        // Still in flight: it goes on without us; serve what is still valid meanwhile.
        Err(_) => transient(seen.clone(), chain, cx.clock.unix(), "the refresh is still in flight".into(), 1),
    }
}

/// A shared transient outcome, re-checked now: a stale token that has meanwhile expired is no
/// longer served.
fn still_valid(outcome: Outcome, chain: Chain, now: i64, retry_after: u32) -> Outcome {
    match outcome {
        Ok(Refreshed::Stale(row)) => transient(row, chain, now, "the provider failed a moment ago".into(), retry_after),
        Err(RefreshError::Unavailable { reason, .. }) => Err(RefreshError::Unavailable { reason, retry_after }),
        other => other,
    }
}

/// The refresh itself: lease, provider call, commit or classification.
async fn run(
    cx: &RefreshCtx,
    seen: &ConnectionRow,
    chain: Chain,
    force: bool,
    actor: &Actor,
    patient: bool,
) -> Outcome {
    let deadline = Instant::now() + LEASE + Duration::from_secs(1);
    let skew = cx.skew_seconds;
    loop {
        let row = cx.store.connection(&seen.id).await?.ok_or(RefreshError::Gone)?;
        let now = cx.clock.unix();
        if row.status != ConnectionStatus::Active {
            return Ok(Refreshed::NeedsReauthorization(row));
        }
        // This chain's token changed since `seen` (another caller, replica or a reconnect): serve
        // it. A change of the other chain (both share the row's version and lease) is not one.
        let refreshed_elsewhere =
            row.version != seen.version && row.access(chain) != seen.access(chain) && !is_expired(&row, chain, now);
        if refreshed_elsewhere || (!force && !needs_refresh(&row, chain, now, skew)) {
            return Ok(Refreshed::Usable(row));
        }
        if force && held_back(cx, &row, chain, now).await {
            return Ok(Refreshed::Usable(row));
        }
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let until = now + LEASE.as_secs() as i64;
        // The lease's clock starts before it is asked for: its end, as the database sees it, is
        // never earlier than `lease_end`.
        let lease_end = Instant::now() + LEASE;
        if cx.store.take_refresh_lease(&row.id, row.version, &attempt, now, until).await? {
            if row.refresh_attempt.is_some() {
                // A lease that expired with an attempt recorded: a refresh was cut short (crash).
                let entry = Entry::new(now, &Actor::System("refresher"), Action::RefreshOutcomeUnknown)
                    .connection(&row)
                    .detail("a previous refresh was interrupted; retrying with the stored refresh token");
                record(&cx.store, entry).await;
            }
            // Named crash points (the `failpoints` feature; no-ops otherwise) for the kill -9 tests.
            fail::fail_point!("refresh.after_lease");
            let lease = Lease { attempt: &attempt, end: lease_end, interrupted: row.refresh_attempt.is_some() };
            return run_refresh(cx, row, chain, lease, actor).await;
        }
        // Another replica holds the lease: leave it the work (background), or wait for its
        // result (bounded).
        if !patient && !is_expired(&row, chain, now) {
            return Ok(Refreshed::Elsewhere(row));
        }
        if Instant::now() >= deadline {
            return Err(RefreshError::unavailable("another replica's refresh did not finish in time", 1));
        }
        Clock::sleep(POLL).await;
    }
}

/// The lease this refresh holds: its fencing token and when it ends at the earliest.
#[derive(Debug, Clone, Copy)]
struct Lease<'a> {
    attempt: &'a str,
    end: Instant,
    /// The lease before this one expired with its refresh unfinished (a crash).
    interrupted: bool,
}

impl Lease<'_> {
    /// Time left for a provider call, keeping the commit margin free.
    fn call_budget(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now()).saturating_sub(COMMIT_MARGIN).min(PROVIDER_TIMEOUT)
    }
}

/// Records a breaker transition as a provider-level activity entry.
async fn note_transition(cx: &RefreshCtx, provider: &str, transition: Option<Transition>) {
    let Some(transition) = transition else { return };
    let action = match transition {
        Transition::Opened => Action::CircuitOpened,
        Transition::Closed => Action::CircuitClosed,
    };
    tracing::warn!(provider, action = action.as_str(), "provider circuit changed");
    let entry = Entry::new(cx.clock.unix(), &Actor::System("refresher"), action).provider(provider);
    let entry = match transition {
        Transition::Opened => entry
            .failed("provider_unavailable")
            .detail("repeated transient failures: refreshes are held back for a while, then one probe is sent"),
        Transition::Closed => entry.detail("the provider answers again"),
    };
    record(&cx.store, entry).await;
}

/// A forced refresh within the provider's floor is held back, unless the provider says the
/// token is dead (Slack's `auth.test`, asked only then): the token just issued is served.
async fn held_back(cx: &RefreshCtx, row: &ConnectionRow, chain: Chain, now: i64) -> bool {
    let Some(provider) = cx.upstream.providers.get(&row.provider) else { return false };
    if !within_floor(row, chain, now, provider.min_refresh_interval_seconds) {
        return false;
    }
    let dead = match (super::validate::Check::of(provider), row.access(chain)) {
        (Some(check), Some(sealed)) => match cx.vault.open_secret(chain.sealed().0.slot(&row.id), sealed) {
            Ok(token) => super::validate::honoured(&cx.upstream.http, check, &token).await == Some(false),
            Err(_) => false,
        },
        _ => false,
    };
    if !dead {
        tracing::debug!(connection = %row.id, "forced refresh held back: the token was issued moments ago");
    }
    !dead
}

/// What a caller gets when the provider cannot be asked or failed transiently.
fn transient(row: ConnectionRow, chain: Chain, now: i64, reason: String, retry_after: u32) -> Outcome {
    if is_expired(&row, chain, now) {
        Err(RefreshError::Unavailable { reason, retry_after })
    } else {
        Ok(Refreshed::Stale(row))
    }
}

/// Flips the connection to `needs_reauthorization` under the lease (with its event), records
/// `entry`, and answers with the flipped row; if the fenced write lost, answers from the row
/// that won instead, with no entry.
async fn flip_to_reauthorization(
    cx: &RefreshCtx,
    row: &ConnectionRow,
    chain: Chain,
    lease: Lease<'_>,
    now: i64,
    entry: Entry,
) -> Outcome {
    let event = crate::events::needs_reauthorization(row, now);
    let status = ConnectionStatus::NeedsReauthorization;
    let flipped =
        cx.store.set_connection_status(&row.id, row.version, Some(lease.attempt), status, now, Some(&event)).await?;
    if !flipped {
        return answer_from_winner(cx, &row.id, chain).await;
    }
    record(&cx.store, entry).await;
    let row = cx.store.connection(&row.id).await?.ok_or(RefreshError::Gone)?;
    Ok(Refreshed::NeedsReauthorization(row))
}

/// The caller's answer after a fenced write lost to another one (a reconnect, another holder):
/// whatever the winning row says, with no entry of our own.
async fn answer_from_winner(cx: &RefreshCtx, id: &str, chain: Chain) -> Outcome {
    let row = cx.store.connection(id).await?.ok_or(RefreshError::Gone)?;
    let now = cx.clock.unix();
    if row.status != ConnectionStatus::Active {
        Ok(Refreshed::NeedsReauthorization(row))
    } else if is_expired(&row, chain, now) {
        Err(RefreshError::unavailable("the connection changed during the refresh", 1))
    } else {
        Ok(Refreshed::Usable(row))
    }
}

async fn run_refresh(cx: &RefreshCtx, row: ConnectionRow, chain: Chain, lease: Lease<'_>, actor: &Actor) -> Outcome {
    let (access_slot, refresh_slot) = chain.sealed();
    let store = &cx.store;
    let release = || store.release_refresh_lease(&row.id, lease.attempt);
    let Some(provider) = cx.upstream.providers.get(&row.provider) else {
        release().await?;
        return Err(RefreshError::Misconfigured(format!("provider {} is not configured", row.provider)));
    };
    let Some(sealed_refresh) = row.refresh(chain) else {
        let now = cx.clock.unix();
        if is_expired(&row, chain, now) {
            let entry = Entry::new(now, actor, Action::RefreshFailed)
                .connection(&row)
                .failed("no_refresh_token")
                .detail("the access token expired and the provider issued no refresh token");
            return flip_to_reauthorization(cx, &row, chain, lease, now, entry).await;
        }
        release().await?;
        return Ok(Refreshed::Usable(row));
    };
    let refresh_token = cx.vault.open_secret(refresh_slot.slot(&row.id), sealed_refresh)?;
    let Some(secret) = cx.upstream.secrets.get(provider).await? else {
        release().await?;
        let entry = Entry::new(cx.clock.unix(), &Actor::System("refresher"), Action::RefreshFailed)
            .provider(&provider.key)
            .failed("missing_client_secret")
            .detail("no client secret configured; run `latch secret add --provider KEY`");
        record(&cx.store, entry).await;
        return Err(RefreshError::MissingClientSecret(provider.key.clone()));
    };
    // Transient failures are retried with exponential back-off and full jitter, while the
    // breaker allows it and a call of useful length still fits inside the lease.
    let health = &cx.health;
    let mut attempt_no = 0u32;
    let (sent_at, answer) = loop {
        let budget = lease.call_budget();
        // Before the breaker: a probe it lets through must then really be sent.
        if let Err(limited) = cx.limits.provider(&provider.key) {
            release().await?;
            let reason = "the provider's outbound rate limit is reached".to_owned();
            return transient(row, chain, cx.clock.unix(), reason, limited.retry_after);
        }
        let admission = health.admit(&provider.key, cx.clock.unix());
        if let Admission::Refused { retry_after } = admission {
            release().await?;
            let reason = "the provider's circuit is open after repeated failures".to_owned();
            return transient(row, chain, cx.clock.unix(), reason, retry_after);
        }
        let sent_at = cx.clock.unix();
        let answer = token::request(
            &cx.upstream.http,
            provider,
            &secret,
            token::Grant::Refresh { refresh_token: &refresh_token },
            budget,
        )
        .await;
        attempt_no += 1;
        let transition = match &answer {
            Err(TokenError::Transient { .. } | TokenError::Malformed { .. }) => {
                health.failed(&provider.key, cx.clock.unix())
            }
            _ => health.succeeded(&provider.key),
        };
        note_transition(cx, &provider.key, transition).await;
        // A rate limit's `Retry-After` is honoured as the back-off when it is short and fits
        // the lease; a longer one ends the attempts and reaches the caller.
        let backoff = match &answer {
            Err(TokenError::Transient { retry_after: Some(after), .. }) => Duration::from_secs(u64::from(*after)),
            _ => Duration::from_millis(jitter(100 << attempt_no.min(4))),
        };
        let fits = backoff <= MAX_RETRY_AFTER && lease.call_budget().saturating_sub(backoff) >= MIN_CALL;
        match answer {
            Err(e @ TokenError::Transient { .. })
                if attempt_no < MAX_ATTEMPTS && fits && admission != Admission::Probe =>
            {
                if e.outcome_unknown() {
                    let entry = Entry::new(cx.clock.unix(), actor, Action::RefreshOutcomeUnknown)
                        .connection(&row)
                        .detail(format!("{e}: the refresh may have happened; retrying with the same refresh token"));
                    record(&cx.store, entry).await;
                }
                Clock::sleep(backoff).await;
            }
            answer => break (sent_at, answer),
        }
    };
    fail::fail_point!("refresh.after_response");
    let now = cx.clock.unix();
    match answer {
        Ok(set) => {
            health.refreshed(&provider.key, now);
            let tokens = RefreshedTokens {
                access_token: cx.vault.seal_str(access_slot.slot(&row.id), set.access_token.expose()),
                refresh_token: set
                    .refresh_token
                    .as_ref()
                    .map(|rt| cx.vault.seal_str(refresh_slot.slot(&row.id), rt.expose())),
                token_type: set.token_type.clone(),
                // Measured from before the request, so clock skew and latency err on the early side.
                expires_at: set.expires_in.map(|s| sent_at + s),
                scopes: set.scopes.clone().map(Scopes::from_iter),
            };
            // If the write fails it is the commit that must be retried, never the refresh (the
            // old refresh token is spent), and only while the lease lasts.
            let trail = Entry::new(now, actor, Action::Refreshed).connection(&row).into_row();
            let written = loop {
                let left = lease.end.saturating_duration_since(Instant::now());
                let write =
                    store.store_refreshed_tokens(&row.id, chain, row.version, lease.attempt, &tokens, now, &trail);
                match tokio::time::timeout(left, write).await {
                    Ok(Ok(written)) => break written,
                    Ok(Err(StoreError::Unavailable(e))) if left > Duration::from_millis(400) => {
                        tracing::warn!(error = %e, "could not store refreshed tokens; retrying the commit");
                        Clock::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        // The lease is over: whether the write landed is for the next refresh to
                        // find out (its row version tells, and a lost one is recorded as unknown).
                        return Err(RefreshError::unavailable("the refreshed tokens could not be stored in time", 1));
                    }
                }
            };
            let Some(fresh) = written else {
                return answer_from_winner(cx, &row.id, chain).await;
            };
            fail::fail_point!("refresh.after_commit");
            Ok(Refreshed::Usable(fresh))
        }
        Err(TokenError::GrantRejected { code, .. }) => {
            let verdict = health.grant_rejected(&provider.key, now);
            if verdict != GrantVerdict::Flip {
                release().await?;
                if verdict == GrantVerdict::IncidentStarted {
                    tracing::error!(provider = %provider.key,
                        "a burst of invalid_grant answers across this provider's connections: not flipping them");
                    let entry = Entry::new(now, &Actor::System("refresher"), Action::ProviderIncident)
                        .provider(&provider.key)
                        .failed("provider_unavailable")
                        .detail(format!(
                            "many connections answered {code} within a short window: a provider or configuration \
                             problem is assumed and connections are no longer flipped to needs_reauthorization"
                        ));
                    record(&cx.store, entry).await;
                }
                return transient(row, chain, now, "provider incident: rejections held back".into(), 30);
            }
            // After an interrupted refresh the likeliest cause is ours: the provider rotated the
            // token and the crash lost the new one. Said apart from a user's revocation.
            let entry = if lease.interrupted {
                Entry::new(now, actor, Action::RefreshFailed).connection(&row).failed("refresh_lost").detail(format!(
                    "provider answered {code} after an interrupted refresh: the rotated refresh token was probably lost in a crash"
                ))
            } else {
                Entry::new(now, actor, Action::RefreshFailed)
                    .connection(&row)
                    .failed("needs_reauthorization")
                    .detail(format!("provider answered {code}"))
            };
            flip_to_reauthorization(cx, &row, chain, lease, now, entry).await
        }
        Err(TokenError::ClientRejected { code }) => {
            release().await?;
            tracing::error!(provider = %provider.key, provider_error = %code,
                "the provider rejected this app's credentials or settings; check the client id, secret and redirect URL");
            let entry = Entry::new(now, &Actor::System("refresher"), Action::RefreshFailed)
                .provider(&provider.key)
                .failed("provider_misconfigured")
                .detail(format!(
                    "provider answered {code}: the app's credentials or settings at the provider are wrong"
                ));
            record(&cx.store, entry).await;
            Err(RefreshError::Misconfigured(code))
        }
        Err(other) => {
            release().await?;
            if cx.refresh_failed.allow(&row.id, now) {
                let event = crate::events::about(crate::events::REFRESH_FAILED, &row, now);
                if let Err(e) = store.insert_event(&event).await {
                    tracing::warn!(error = %e, "could not record connection.refresh_failed");
                }
            }
            let entry = if other.outcome_unknown() {
                // Slack's `fatal_error`: the refresh may have happened there. The stored refresh
                // token is presented again next time (Slack's grace period covers a rotation we
                // did not hear of); said apart from a plain failure.
                Entry::new(now, actor, Action::RefreshOutcomeUnknown).connection(&row).failed("provider_unavailable")
            } else {
                Entry::new(now, actor, Action::RefreshFailed).connection(&row).failed("provider_unavailable")
            };
            record(&cx.store, entry.detail(other.to_string())).await;
            // Retry once the longest back-off during which this outcome is shared is over, or
            // when the provider's own `Retry-After` says, if later.
            let shared = u32::try_from((2 * TRANSIENT_BACKOFF_MS).div_ceil(1000)).unwrap_or(2);
            let retry_after = match &other {
                TokenError::Transient { retry_after: Some(after), .. } => shared.max(*after),
                _ => shared,
            };
            transient(row, chain, now, other.to_string(), retry_after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expires_at: Option<i64>, issued: i64) -> ConnectionRow {
        let owner =
            crate::store::connections::Owner { provider: "p", user_id: "u", organization_id: "", account_id: "a" };
        ConnectionRow {
            access_token_expires_at: expires_at,
            last_refreshed_at: Some(issued),
            ..ConnectionRow::new("c".into(), owner, issued)
        }
    }

    #[test]
    fn provider_calls_fit_inside_the_lease() {
        let lease =
            |left: u64| Lease { attempt: "a", end: Instant::now() + Duration::from_secs(left), interrupted: false };
        // A fresh lease: the whole provider timeout.
        assert_eq!(lease(LEASE.as_secs()).call_budget(), PROVIDER_TIMEOUT);
        // Late in the lease: what is left minus the commit margin, so the commit still fits.
        let budget = lease(6).call_budget();
        assert!(budget <= Duration::from_secs(3) && budget > Duration::from_millis(2900), "{budget:?}");
        // Nothing left: no call.
        assert_eq!(lease(2).call_budget(), Duration::ZERO);
        assert!(LEASE > PROVIDER_TIMEOUT + COMMIT_MARGIN, "invariant: HTTP deadline < lease");
    }

    #[test]
    fn skew_is_capped_at_half_the_lifetime() {
        // One-hour token: refreshed in its last 60 s.
        let r = row(Some(3600), 0);
        assert!(!needs_refresh(&r, Chain::Primary, 3539, 60));
        assert!(needs_refresh(&r, Chain::Primary, 3540, 60));
        // 60-second token: refreshed in its last 30 s, not on every call.
        let r = row(Some(60), 0);
        assert!(!needs_refresh(&r, Chain::Primary, 29, 60));
        assert!(needs_refresh(&r, Chain::Primary, 30, 60));
        // Tokens without expiry never need it.
        assert!(!needs_refresh(&row(None, 0), Chain::Primary, i64::MAX, 60));
        // Absurd values do not overflow.
        assert!(needs_refresh(&row(Some(i64::MIN), 0), Chain::Primary, 0, 60));
    }
}

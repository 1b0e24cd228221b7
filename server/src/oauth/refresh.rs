//! Refreshing an access token, safely under concurrency.
//!
//! Rotating refresh tokens are single-use: presenting one twice makes most providers revoke the
//! whole grant. So at most one refresh per connection may be in flight anywhere:
//! 1. in this process, a per-connection async mutex queues callers (single flight);
//! 2. across replicas, a lease committed on the row (`lease_until`, `refresh_attempt`) with a
//!    compare-and-swap on `version`; whoever loses waits for the row's version to change;
//! 3. after taking either, the row is re-read, and a token someone else refreshed is served as is.
//!
//! The lease outlives the provider timeout (invariant: HTTP deadline < lease), so a slow call
//! cannot overlap a second replica's attempt with the same refresh token. New tokens are written
//! with a compare-and-swap before any caller sees them; an answer without a refresh token keeps
//! the stored one.

use super::token::{self, TokenError};
use crate::activity::{Actor, Entry};
use crate::clock::Clock;
use crate::state::{AppState, PROVIDER_TIMEOUT};
use crate::store::StoreError;
use crate::store::connections::{ConnectionRow, RefreshedTokens};
use crate::vault::{Slot, VaultError};
use latch_shared::ConnectionStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a refresh lease is held at most; longer than [`PROVIDER_TIMEOUT`].
pub const LEASE: Duration = Duration::from_secs(PROVIDER_TIMEOUT.as_secs() + 5);
const POLL: Duration = Duration::from_millis(100);
/// Provider calls per refresh at most (the first try and two retries of transient failures).
const MAX_ATTEMPTS: u32 = 3;

/// A random duration in `0..=max_ms` milliseconds ("full jitter").
fn jitter(max_ms: u64) -> u64 {
    use rand::Rng as _;
    rand::thread_rng().gen_range(0..=max_ms)
}

/// Per-connection async locks for single flight within this process.
#[derive(Debug, Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl RefreshLocks {
    /// The lock of one connection; dropped entries are pruned as the map grows.
    pub fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.locks.lock() else {
            return Arc::default();
        };
        if let Some(lock) = locks.get(id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() >= 1024 {
            locks.retain(|_, weak| weak.strong_count() > 0);
        }
        let lock: Arc<tokio::sync::Mutex<()>> = Arc::default();
        locks.insert(id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// What a refresh attempt leaves the caller with.
#[derive(Debug)]
pub enum Refreshed {
    /// A row whose access token can be served.
    Usable(ConnectionRow),
    /// The grant is gone; the user must reconnect.
    NeedsReauthorization(ConnectionRow),
}

/// Why no token could be produced.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The connection was deleted meanwhile.
    #[error("connection vanished during refresh")]
    Gone,
    /// The provider is down or slow and the stored token has expired.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider rejected the app's client credentials, or the provider is no longer configured.
    #[error("provider misconfigured: {0}")]
    Misconfigured(String),
    /// No client secret is configured.
    #[error("no client secret configured for provider {0}")]
    MissingClientSecret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Whether a token expiring at `expires_at` should be refreshed at `now`: within `skew` of
/// expiry, but never more than half its lifetime early, so short-lived tokens are not refreshed
/// on every call. Tokens without an expiry never need it.
pub fn needs_refresh(row: &ConnectionRow, now: i64, skew: i64) -> bool {
    let Some(expires_at) = row.access_token_expires_at else {
        return false;
    };
    let issued = row.last_refreshed_at.unwrap_or(row.updated_at);
    let lifetime = (expires_at - issued).max(0);
    let skew = skew.min(lifetime / 2);
    now >= expires_at.saturating_sub(skew)
}

/// Whether the stored access token is past its expiry.
pub fn is_expired(row: &ConnectionRow, now: i64) -> bool {
    row.access_token_expires_at.is_some_and(|at| now >= at)
}

/// Refreshes `seen` if it (still) needs it, or unconditionally with `force` unless somebody else
/// refreshed it since `seen` was read.
pub async fn refresh(
    state: &AppState,
    seen: &ConnectionRow,
    force: bool,
    actor: &Actor,
) -> Result<Refreshed, RefreshError> {
    let lock = state.refresh_locks.lock_for(&seen.id);
    let _single_flight = lock.lock().await;
    let deadline = Instant::now() + LEASE + Duration::from_secs(1);
    let skew = state.config.access_token_skew_seconds;
    loop {
        let row = state.store.connection(&seen.id).await?.ok_or(RefreshError::Gone)?;
        let now = state.clock.unix();
        if row.status != ConnectionStatus::Active.as_str() {
            return Ok(Refreshed::NeedsReauthorization(row));
        }
        let refreshed_elsewhere = row.version != seen.version && !is_expired(&row, now);
        if refreshed_elsewhere || (!force && !needs_refresh(&row, now, skew)) {
            return Ok(Refreshed::Usable(row));
        }
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let until = now + LEASE.as_secs() as i64;
        if state.store.take_refresh_lease(&row.id, row.version, &attempt, now, until).await? {
            if row.refresh_attempt.is_some() {
                // A lease that expired with an attempt recorded: a refresh was cut short (crash).
                let entry = Entry::new(now, &Actor::System("refresher"), "refresh_outcome_unknown")
                    .connection(&row)
                    .detail("a previous refresh was interrupted; retrying with the stored refresh token");
                record(state, entry).await;
            }
            return run_refresh(state, row, &attempt, actor).await;
        }
        // Another replica holds the lease: wait for its result (bounded).
        if Instant::now() >= deadline {
            return Err(RefreshError::Unavailable("another replica's refresh did not finish in time".into()));
        }
        Clock::sleep(POLL).await;
    }
}

async fn run_refresh(
    state: &AppState,
    row: ConnectionRow,
    attempt: &str,
    actor: &Actor,
) -> Result<Refreshed, RefreshError> {
    let store = &state.store;
    let release = || store.release_refresh_lease(&row.id, attempt);
    let Some(provider) = state.providers.get(&row.provider) else {
        release().await?;
        return Err(RefreshError::Misconfigured(format!("provider {} is not configured", row.provider)));
    };
    let Some(sealed_refresh) = row.refresh_token.as_deref() else {
        let now = state.clock.unix();
        if is_expired(&row, now) {
            store
                .set_connection_status(
                    &row.id,
                    row.version,
                    ConnectionStatus::NeedsReauthorization.as_str(),
                    now,
                    Some(&crate::events::needs_reauthorization(&row, now)),
                )
                .await?;
            let entry = Entry::new(now, actor, "refresh_failed")
                .connection(&row)
                .failed("no_refresh_token")
                .detail("the access token expired and the provider issued no refresh token");
            record(state, entry).await;
            let row = store.connection(&row.id).await?.ok_or(RefreshError::Gone)?;
            return Ok(Refreshed::NeedsReauthorization(row));
        }
        release().await?;
        return Ok(Refreshed::Usable(row));
    };
    let refresh_token = state.vault.open_secret(Slot::new("connections", &row.id, "refresh_token"), sealed_refresh)?;
    let Some(secret) = state.client_secret(provider).await? else {
        release().await?;
        let entry = Entry::new(state.clock.unix(), &Actor::System("refresher"), "refresh_failed")
            .provider(&provider.key)
            .failed("missing_client_secret")
            .detail("no client secret configured; run `latch secret add --provider KEY`");
        record(state, entry).await;
        return Err(RefreshError::MissingClientSecret(provider.key.clone()));
    };
    // Transient failures are retried with exponential back-off and full jitter, but only while
    // a whole further attempt still fits inside the lease (HTTP deadline < lease, always).
    let leased_at = Instant::now();
    let last_start = LEASE.saturating_sub(PROVIDER_TIMEOUT + Duration::from_secs(1));
    let mut attempt_no = 0u32;
    let (sent_at, answer) = loop {
        let sent_at = state.clock.unix();
        let answer = token::request(
            &state.http,
            provider,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())],
        )
        .await;
        attempt_no += 1;
        let backoff = Duration::from_millis(jitter(100 << attempt_no.min(4)));
        match answer {
            Err(TokenError::Transient { .. })
                if attempt_no < MAX_ATTEMPTS && leased_at.elapsed() + backoff < last_start =>
            {
                Clock::sleep(backoff).await;
            }
            answer => break (sent_at, answer),
        }
    };
    let now = state.clock.unix();
    match answer {
        Ok(set) => {
            let tokens = RefreshedTokens {
                access_token: state
                    .vault
                    .seal_str(Slot::new("connections", &row.id, "access_token"), set.access_token.expose()),
                refresh_token: set
                    .refresh_token
                    .as_ref()
                    .map(|rt| state.vault.seal_str(Slot::new("connections", &row.id, "refresh_token"), rt.expose())),
                token_type: set.token_type.clone(),
                // Measured from before the request, so clock skew and latency err on the early side.
                expires_at: set.expires_in.map(|s| sent_at + s),
                scopes: set.scopes.as_ref().map(|s| s.join(" ")),
            };
            // We hold the lease, so the version cannot have moved; if the write fails it is the
            // commit that must be retried, never the refresh (the old refresh token is spent).
            let mut written = false;
            for _ in 0..3 {
                match store.store_refreshed_tokens(&row.id, row.version, &tokens, now).await {
                    Ok(w) => {
                        written = w;
                        break;
                    }
                    Err(StoreError::Unavailable(_)) => Clock::sleep(Duration::from_millis(200)).await,
                    Err(e) => return Err(e.into()),
                }
            }
            let entry = Entry::new(now, actor, "refreshed").connection(&row);
            let entry = if written {
                entry
            } else {
                entry.failed("internal_error").detail("refreshed tokens could not be stored")
            };
            record(state, entry).await;
            let fresh = store.connection(&row.id).await?.ok_or(RefreshError::Gone)?;
            Ok(Refreshed::Usable(fresh))
        }
        Err(TokenError::GrantRejected { code, .. }) => {
            store
                .set_connection_status(
                    &row.id,
                    row.version,
                    ConnectionStatus::NeedsReauthorization.as_str(),
                    now,
                    Some(&crate::events::needs_reauthorization(&row, now)),
                )
                .await?;
            let entry = Entry::new(now, actor, "refresh_failed")
                .connection(&row)
                .failed("needs_reauthorization")
                .detail(format!("provider answered {code}"));
            record(state, entry).await;
            let row = store.connection(&row.id).await?.ok_or(RefreshError::Gone)?;
            Ok(Refreshed::NeedsReauthorization(row))
        }
        Err(TokenError::ClientRejected { code }) => {
            release().await?;
            tracing::error!(provider = %provider.key, provider_error = %code,
                "the provider rejected this app's client credentials; check the client id and secret");
            let entry = Entry::new(now, &Actor::System("refresher"), "refresh_failed")
                .provider(&provider.key)
                .failed("provider_misconfigured")
                .detail(format!("provider answered {code}: the app's client credentials were rejected"));
            record(state, entry).await;
            Err(RefreshError::Misconfigured(code))
        }
        Err(other) => {
            release().await?;
            if state.refresh_failed.allow(&row.id, now) {
                let event = crate::events::about(crate::events::REFRESH_FAILED, &row, now);
                if let Err(e) = store.insert_event(&event).await {
                    tracing::warn!(error = %e, "could not record connection.refresh_failed");
                }
            }
            let entry = Entry::new(now, actor, "refresh_failed")
                .connection(&row)
                .failed("provider_unavailable")
                .detail(other.to_string());
            record(state, entry).await;
            if is_expired(&row, now) {
                Err(RefreshError::Unavailable(other.to_string()))
            } else {
                Ok(Refreshed::Usable(row))
            }
        }
    }
}

/// Writes an activity entry; a failure to audit is logged, not fatal to the request.
pub async fn record(state: &AppState, entry: Entry) {
    if let Err(e) = state.store.insert_activity(&[entry.into_row()]).await {
        tracing::error!(error = %e, "could not write activity entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expires_at: Option<i64>, issued: i64) -> ConnectionRow {
        ConnectionRow {
            id: "c".into(),
            provider: "p".into(),
            user_id: "u".into(),
            organization_id: String::new(),
            account_id: "a".into(),
            account_label: None,
            status: "active".into(),
            scopes: String::new(),
            missing_scopes: String::new(),
            access_token: None,
            refresh_token: None,
            token_type: "bearer".into(),
            access_token_expires_at: expires_at,
            created_at: issued,
            updated_at: issued,
            last_refreshed_at: Some(issued),
            last_used_at: None,
            last_validated_at: None,
            version: 0,
            lease_until: None,
            refresh_attempt: None,
        }
    }

    #[test]
    fn skew_is_capped_at_half_the_lifetime() {
        // One-hour token: refreshed in its last 60 s.
        let r = row(Some(3600), 0);
        assert!(!needs_refresh(&r, 3539, 60));
        assert!(needs_refresh(&r, 3540, 60));
        // 60-second token: refreshed in its last 30 s, not on every call.
        let r = row(Some(60), 0);
        assert!(!needs_refresh(&r, 29, 60));
        assert!(needs_refresh(&r, 30, 60));
        // Tokens without expiry never need it.
        assert!(!needs_refresh(&row(None, 0), i64::MAX, 60));
        // Absurd values do not overflow.
        assert!(needs_refresh(&row(Some(i64::MIN), 0), 0, 60));
    }
}

//! Governance of connections: who owns one, what it can do, its status and its trail.
//! Plain functions over the store, the vault and the clock; the HTTP layer only adapts them.

pub mod access_token;
pub mod cache;
pub mod inventory;
pub mod ready;

use crate::activity::{Action, Actor, Entry, record};
use crate::clock::Clock;
use crate::clock::from_unix;
use crate::oauth::Upstream;
use crate::oauth::refresh::RefreshError;
use crate::oauth::revoke::{RevokeOutcome, revoke};
use crate::store::activity::{ActivityFilter, ActivityRow};
use crate::store::connections::{ConnectionFilter, ConnectionRow, Tombstone};
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};
use latch_shared::Revocation;
use latch_shared::api::host::{ActivityEntry, ActivityQuery, Connection, ConnectionQuery, Page};

/// Failures of connection operations, mapped to HTTP once in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("no connection {0}")]
    NotFound(String),
    #[error("no provider {0}")]
    ProviderNotFound(String),
    #[error("no token matches")]
    TokenNotFound,
    /// Several connections match and none is chosen; their ids.
    #[error("several connections match")]
    Ambiguous(Vec<String>),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// Work that runs to its end in its own task ended abnormally.
    #[error("the operation ended abnormally")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// An answer could not be rendered as JSON (a date outside RFC 3339's years).
    #[error("the answer could not be rendered: {0}")]
    Render(String),
}

impl From<serde_json::Error> for ConnectionError {
    fn from(e: serde_json::Error) -> Self {
        ConnectionError::Render(e.to_string())
    }
}

/// Checks an identifier supplied by a host: 1–256 characters, no control characters.
pub fn check_id(field: &'static str, value: &str) -> Result<(), ConnectionError> {
    if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(ConnectionError::Invalid {
            field,
            message: "must be 1 to 256 characters without control characters".into(),
        });
    }
    Ok(())
}

/// Checks listing filters: at most 256 characters, no control characters (as `check_id`, but
/// empty is allowed: it matches nothing, or for `organization_id` the connections without one).
pub(crate) fn check_filters(filters: &[(&'static str, &Option<String>)]) -> Result<(), ConnectionError> {
    for (field, value) in filters {
        if value.as_ref().is_some_and(|v| v.chars().count() > 256 || v.chars().any(char::is_control)) {
            return Err(ConnectionError::Invalid { field, message: "must be at most 256 characters".into() });
        }
    }
    Ok(())
}

pub(crate) fn check_limit(limit: Option<u32>) -> Result<i64, ConnectionError> {
    crate::paging::limit(limit).map_err(|e| ConnectionError::Invalid { field: "limit", message: e.to_string() })
}

/// The API view of a row: everything an operator needs, never a token.
pub fn view(row: &ConnectionRow) -> Connection {
    Connection {
        id: row.id.clone(),
        provider: row.provider.clone(),
        user_id: row.user_id.clone(),
        organization_id: (!row.organization_id.is_empty()).then(|| row.organization_id.clone()),
        account_id: row.account_id.clone(),
        account_label: row.account_label.clone(),
        label: row.label.clone(),
        status: row.status,
        scopes: row.scopes.to_vec(),
        missing_scopes: row.missing_scopes.to_vec(),
        created_at: from_unix(row.created_at),
        updated_at: from_unix(row.updated_at),
        last_refreshed_at: row.last_refreshed_at.map(from_unix),
        last_used_at: row.last_used_at.map(from_unix),
        last_validated_at: row.last_validated_at.map(from_unix),
        access_token_expires_at: row.access_token_expires_at.map(from_unix),
        purpose: row.purpose.clone(),
        created_by: row.created_by.clone(),
        last_used_by: row.last_used_by.clone(),
        credential_source: row.credential_source,
        resources: row.resources.0.clone(),
        installation: (!row.installation.0.is_empty()).then(|| row.installation.0.clone()),
        user_token: row.user_access_token.as_ref().map(|_| latch_shared::UserTokenInfo {
            scopes: row.user_scopes.to_vec(),
            expires_at: row.user_token_expires_at.map(from_unix),
        }),
    }
}

/// `GET /v1/connections`.
pub async fn list(store: &Store, q: &ConnectionQuery) -> Result<Page<Connection>, ConnectionError> {
    let limit = check_limit(q.limit)?;
    check_filters(&[
        ("user_id", &q.user_id),
        ("organization_id", &q.organization_id),
        ("provider", &q.provider),
        ("cursor", &q.cursor),
    ])?;
    let filter = ConnectionFilter {
        user_id: q.user_id.as_deref(),
        organization_id: q.organization_id.as_deref(),
        provider: q.provider.as_deref(),
        status: q.status,
        after: q.cursor.as_deref(),
        limit,
        ..Default::default()
    };
    let mut rows = store.list_connections(&filter).await?;
    let next_cursor = crate::paging::next_cursor(&mut rows, limit, |r| r.id.clone());
    Ok(Page { data: rows.iter().map(view).collect(), next_cursor })
}

/// `GET /v1/connections/{id}`.
pub async fn get(store: &Store, id: &str) -> Result<Connection, ConnectionError> {
    let row = store.connection(id).await?.ok_or_else(|| ConnectionError::NotFound(id.to_owned()))?;
    Ok(view(&row))
}

/// What deleting a connection touches: the store, the clock, and the provider to revoke at.
#[derive(Debug, Clone)]
pub struct Deleter {
    pub store: Store,
    pub vault: Vault,
    pub clock: Clock,
    pub upstream: Upstream,
}

/// `PATCH /v1/connections/{id}`: sets what the connection is for, with an entry in its trail.
pub async fn set_purpose(
    store: &Store,
    clock: &Clock,
    actor: &Actor,
    id: &str,
    req: &latch_shared::api::host::UpdateConnection,
) -> Result<Connection, ConnectionError> {
    let purpose = req.purpose.trim();
    if purpose.is_empty() || purpose.chars().count() > 500 || purpose.chars().any(char::is_control) {
        return Err(ConnectionError::Invalid {
            field: "purpose",
            message: "must be 1 to 500 characters without control characters".into(),
        });
    }
    if !store.set_purpose(id, purpose).await? {
        return Err(ConnectionError::NotFound(id.to_owned()));
    }
    let row = store.connection(id).await?.ok_or_else(|| ConnectionError::NotFound(id.to_owned()))?;
    let entry = Entry::new(clock.unix(), actor, Action::PurposeChanged).connection(&row).detail(purpose.to_owned());
    record(store, entry).await;
    Ok(view(&row))
}

/// Deletes a connection, first revoking its grant at the provider when asked.
/// The owner check is the caller's: the host API owns every connection; the widget passes the
/// row only after matching its user.
///
/// Runs to its end even if the caller hangs up: a token revoked at the provider is a connection
/// that must also be gone here.
pub async fn delete(
    deleter: &Deleter,
    actor: &Actor,
    row: &ConnectionRow,
    revoke_at_provider: bool,
) -> Result<(), ConnectionError> {
    let (deleter, actor, row) = (deleter.clone(), actor.clone(), row.clone());
    crate::detach::run_to_end(async move { delete_to_end(&deleter, &actor, &row, revoke_at_provider).await })
        .await
        .unwrap_or(Err(ConnectionError::Interrupted))
}

async fn delete_to_end(
    d: &Deleter,
    actor: &Actor,
    row: &ConnectionRow,
    revoke_at_provider: bool,
) -> Result<(), ConnectionError> {
    let mut revocation = Revocation::NotRequested;
    if revoke_at_provider {
        let now = d.clock.unix();
        let entry = match revoke(&d.upstream, &d.vault, row).await {
            RevokeOutcome::Revoked => {
                revocation = Revocation::Revoked;
                Entry::new(now, actor, Action::Revoked).connection(row)
            }
            RevokeOutcome::AlreadyRevoked => {
                revocation = Revocation::Revoked;
                Entry::new(now, actor, Action::Revoked)
                    .connection(row)
                    .detail("the provider says the token was already revoked")
            }
            RevokeOutcome::Unsupported => {
                revocation = Revocation::Unsupported;
                Entry::new(now, actor, Action::RevocationUnsupported)
                    .connection(row)
                    .detail("the provider has no revocation endpoint; its token stays valid there until it expires")
            }
            RevokeOutcome::Failed(reason) => {
                revocation = Revocation::Failed;
                Entry::new(now, actor, Action::RevokeFailed)
                    .connection(row)
                    .failed("provider_unavailable")
                    .detail(reason)
            }
        };
        record(&d.store, entry).await;
    }
    let now = d.clock.unix();
    let event = crate::events::about(crate::events::DELETED, row, now);
    let tombstone = Tombstone { at: now, by: actor.name(), revocation };
    if !d.store.delete_connection(&row.id, &tombstone, Some(&event)).await? {
        return Err(ConnectionError::NotFound(row.id.clone()));
    }
    record(&d.store, Entry::new(now, actor, Action::Deleted).connection(row)).await;
    Ok(())
}

/// Purges tombstones older than `retention_days`; the background upkeep calls it.
pub async fn purge_tombstones(store: &Store, clock: &Clock, retention_days: u32) -> Result<u64, StoreError> {
    store.purge_tombstones(clock.unix() - i64::from(retention_days) * 86_400).await
}

/// How often the upkeep purges tombstones (and once when it starts).
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The tombstone upkeep of a serving process, until `stop`: retention is in days, so hourly is
/// prompt; every replica may run it (a purge is idempotent).
pub async fn run_tombstone_upkeep(
    store: Store,
    clock: Clock,
    retention_days: u32,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        match purge_tombstones(&store, &clock, retention_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, retention_days, "purged tombstones of deleted connections"),
            Err(e) => tracing::warn!(error = %e, "could not purge tombstones"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = Clock::sleep(PURGE_EVERY) => {}
        }
    }
}

/// `GET /v1/activity`, newest first.
pub async fn activity(store: &Store, q: &ActivityQuery) -> Result<Page<ActivityEntry>, ConnectionError> {
    let limit = check_limit(q.limit)?;
    check_filters(&[
        ("connection_id", &q.connection_id),
        ("user_id", &q.user_id),
        ("provider", &q.provider),
        ("cursor", &q.cursor),
    ])?;
    let filter = ActivityFilter {
        connection_id: q.connection_id.as_deref(),
        user_id: q.user_id.as_deref(),
        provider: q.provider.as_deref(),
        before: q.cursor.as_deref(),
        limit,
    };
    let mut rows = store.list_activity(&filter).await?;
    let next_cursor = crate::paging::next_cursor(&mut rows, limit, |r| r.id.clone());
    Ok(Page { data: rows.into_iter().map(activity_view).collect(), next_cursor })
}

fn activity_view(r: ActivityRow) -> ActivityEntry {
    ActivityEntry {
        id: r.id,
        at: from_unix(r.at),
        actor: latch_shared::api::host::Actor { kind: r.actor_kind, name: r.actor_name },
        action: r.action,
        connection_id: r.connection_id,
        user_id: r.user_id,
        organization_id: r.organization_id,
        provider: r.provider,
        outcome: r.outcome,
        error_code: r.error_code,
        detail: r.detail,
    }
}

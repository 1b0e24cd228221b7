//! The inventory: every connection as a security team sees it (owner, provider, account, what
//! its scopes let the app do, purpose, provenance, last use and validation), filterable and
//! exported as JSON or CSV. Built on the connection listing; scope meanings come from the
//! provider definitions.

use super::{ConnectionError, check_filters, check_limit};
use crate::clock::{Clock, from_unix};
use crate::providers::Registry;
use crate::store::Store;
use crate::store::connections::{ConnectionFilter, ConnectionRow, Tombstones};
use latch_shared::api::host::{InventoryEntry, InventoryQuery, Page};
use latch_shared::{ConnectionStatus, ScopeAccess, ScopeDetail};

/// Rows examined for one page when a filter is applied after the query (`access`), at most; the
/// page then ends early, with a cursor to go on from.
const MAX_SCANNED: usize = 10_000;

/// `unused_days` at most (a century).
const MAX_UNUSED_DAYS: u32 = 36_500;

/// `GET /v1/inventory`.
pub async fn list(
    store: &Store,
    providers: &Registry,
    clock: &Clock,
    q: &InventoryQuery,
) -> Result<Page<InventoryEntry>, ConnectionError> {
    let limit = check_limit(q.limit)?;
    check_filters(&[
        ("user_id", &q.user_id),
        ("organization_id", &q.organization_id),
        ("provider", &q.provider),
        ("scope", &q.scope),
        ("cursor", &q.cursor),
    ])?;
    if q.unused_days.is_some_and(|days| days > MAX_UNUSED_DAYS) {
        let message = format!("must be between 0 and {MAX_UNUSED_DAYS}");
        return Err(ConnectionError::Invalid { field: "unused_days", message });
    }
    let unused_since = q.unused_days.map(|days| clock.unix() - i64::from(days) * 86_400);
    let tombstones = match (q.status, q.include_deleted) {
        (Some(ConnectionStatus::Deleted), _) => Tombstones::Only,
        (_, Some(true)) => Tombstones::Include,
        _ => Tombstones::Exclude,
    };
    let mut after = q.cursor.clone();
    let mut data = Vec::new();
    let mut scanned = 0;
    loop {
        let filter = ConnectionFilter {
            user_id: q.user_id.as_deref(),
            organization_id: q.organization_id.as_deref(),
            provider: q.provider.as_deref(),
            status: q.status,
            scope: q.scope.as_deref(),
            credential_source: q.credential_source,
            unused_since,
            tombstones,
            after: after.as_deref(),
            limit,
        };
        let rows = store.list_connections(&filter).await?;
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        for (i, row) in rows.iter().take(page).enumerate() {
            scanned += 1;
            after = Some(row.id.clone());
            let entry = entry(providers, row);
            // `write`: a granted scope writes; `read`: none does.
            if q.access.is_none_or(|access| entry.writes == (access == ScopeAccess::Write)) {
                data.push(entry);
                if data.len() == page {
                    // The query fetched one row more than a page: is anything left after this one?
                    let left = i + 1 < rows.len();
                    return Ok(Page { data, next_cursor: left.then(|| row.id.clone()) });
                }
            }
        }
        if rows.len() <= page {
            return Ok(Page { data, next_cursor: None });
        }
        if scanned >= MAX_SCANNED {
            return Ok(Page { data, next_cursor: after });
        }
    }
}

/// A row as the inventory shows it.
pub fn entry(providers: &Registry, row: &ConnectionRow) -> InventoryEntry {
    let known = providers.get(&row.provider).map(|p| p.scope_details.as_slice()).unwrap_or_default();
    let scopes: Vec<ScopeDetail> = row
        .scopes
        .as_slice()
        .iter()
        .map(|name| {
            known.iter().find(|d| &d.name == name).cloned().unwrap_or(ScopeDetail {
                name: name.clone(),
                description: None,
                access: None,
            })
        })
        .collect();
    InventoryEntry {
        id: row.id.clone(),
        provider: row.provider.clone(),
        user_id: row.user_id.clone(),
        organization_id: (!row.organization_id.is_empty()).then(|| row.organization_id.clone()),
        account_id: row.account_id.clone(),
        account_label: row.account_label.clone(),
        label: row.label.clone(),
        token_type: row.token_type.clone(),
        credential_source: row.credential_source,
        status: row.status,
        purpose: row.purpose.clone(),
        writes: scopes.iter().any(|s| s.access == Some(ScopeAccess::Write)),
        scopes,
        missing_scopes: row.missing_scopes.to_vec(),
        created_at: from_unix(row.created_at),
        created_by: row.created_by.clone(),
        last_used_at: row.last_used_at.map(from_unix),
        last_used_by: row.last_used_by.clone(),
        last_refreshed_at: row.last_refreshed_at.map(from_unix),
        last_validated_at: row.last_validated_at.map(from_unix),
        deleted_at: row.deleted_at.map(from_unix),
        deleted_by: row.deleted_by.clone(),
        revocation: row.revocation.as_deref().and_then(|r| r.parse().ok()),
        resources: row.resources.0.clone(),
        user_scopes: row.user_scopes.to_vec(),
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: &[&str] = &[
    "id",
    "provider",
    "user_id",
    "organization_id",
    "account_id",
    "account_label",
    "credential_source",
    "status",
    "purpose",
    "scopes",
    "write_scopes",
    "missing_scopes",
    "created_at",
    "created_by",
    "last_used_at",
    "last_used_by",
    "last_refreshed_at",
    "last_validated_at",
    "deleted_at",
    "deleted_by",
    "revocation",
    "label",
    "token_type",
    "resources",
    "user_scopes",
];

/// The entries as CSV (RFC 4180: a header row, one connection a line, quoted where needed;
/// scope lists space-separated, times RFC 3339, empty for none).
pub fn to_csv(entries: &[InventoryEntry]) -> Result<String, csv::Error> {
    let time = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()).unwrap_or_default()
    };
    let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for e in entries {
        let names = |only_writes: bool| {
            e.scopes
                .iter()
                .filter(|s| !only_writes || s.access == Some(ScopeAccess::Write))
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.write_record([
            e.id.as_str(),
            &e.provider,
            &e.user_id,
            e.organization_id.as_deref().unwrap_or(""),
            &e.account_id,
            e.account_label.as_deref().unwrap_or(""),
            e.credential_source.as_str(),
            e.status.as_str(),
            e.purpose.as_deref().unwrap_or(""),
            &names(false),
            &names(true),
            &e.missing_scopes.join(" "),
            &time(Some(e.created_at)),
            e.created_by.as_deref().unwrap_or(""),
            &time(e.last_used_at),
            e.last_used_by.as_deref().unwrap_or(""),
            &time(e.last_refreshed_at),
            &time(e.last_validated_at),
            &time(e.deleted_at),
            e.deleted_by.as_deref().unwrap_or(""),
            e.revocation.map(|r| r.as_str()).unwrap_or(""),
            e.label.as_deref().unwrap_or(""),
            &e.token_type,
            &e.resources.iter().map(latch_shared::Resource::display).collect::<Vec<_>>().join(" "),
            &e.user_scopes.join(" "),
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

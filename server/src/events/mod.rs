//! Telling the host app what happened to its users' connections: events written with the change
//! they describe (a transactional outbox), offered for polling (`GET /v1/events`) and delivered
//! to webhook endpoints (`webhooks`).

pub mod targets;
pub mod webhooks;

use crate::connections::view;
use crate::store::Store;
use crate::store::connections::ConnectionRow;
use crate::store::events::NewEvent;
use crate::store::new_id;
use latch_shared::ConnectionStatus;
use latch_shared::api::host::{Event, EventQuery, Page};
use std::collections::HashMap;
use std::sync::Mutex;
use webhooks::{WebhookError, event_view};

/// A user connected an account for the first time.
pub const CREATED: &str = "connection.created";
/// A user connected the same account again (new grant), e.g. after a reconnect.
pub const REAUTHORIZED: &str = "connection.reauthorized";
/// The provider refused the grant: the user must reconnect.
pub const NEEDS_REAUTHORIZATION: &str = "connection.needs_reauthorization";
/// The connection was deleted (by the host or the user).
pub const DELETED: &str = "connection.deleted";
/// A refresh failed for a transient reason (rate-limited: one per connection per 10 minutes).
pub const REFRESH_FAILED: &str = "connection.refresh_failed";
/// Every event type.
pub const ALL: &[&str] = &[CREATED, REAUTHORIZED, NEEDS_REAUTHORIZATION, DELETED, REFRESH_FAILED];

/// `GET /v1/events`: events after the `after` event, oldest first, paged like every listing.
pub async fn list(store: &Store, q: &EventQuery) -> Result<Page<Event>, WebhookError> {
    let limit =
        crate::paging::limit(q.limit).map_err(|e| WebhookError::Invalid { field: "limit", message: e.to_string() })?;
    let after = match &q.after {
        None => Default::default(),
        Some(id) => store.event_position(id).await?.ok_or(WebhookError::EventNotFound("No event with that id."))?,
    };
    let mut rows = store.events_after(after, limit + 1).await?;
    let next_cursor = crate::paging::next_cursor(&mut rows, limit, |e| e.id.clone());
    Ok(Page { data: rows.iter().map(event_view).collect(), next_cursor })
}

/// An event about `row` (its public view, never a token).
pub fn about(kind: &str, row: &ConnectionRow, now: i64) -> NewEvent {
    NewEvent {
        id: new_id("evt"),
        kind: kind.to_owned(),
        connection_id: Some(row.id.clone()),
        created_at: now,
        data: serde_json::to_string(&view(row)).unwrap_or_else(|_| "{}".into()),
    }
}

/// `connection.needs_reauthorization` for `row`, showing the status it is about to have.
pub fn needs_reauthorization(row: &ConnectionRow, now: i64) -> NewEvent {
    let mut after = row.clone();
    after.status = ConnectionStatus::NeedsReauthorization;
    after.updated_at = now;
    about(NEEDS_REAUTHORIZATION, &after, now)
}

/// Rate limit of `connection.refresh_failed` (in memory: losing it only means one more event).
#[derive(Debug, Default)]
pub struct RefreshFailedLimiter {
    last: Mutex<HashMap<String, i64>>,
}

impl RefreshFailedLimiter {
    /// Whether an event may be sent for this connection now.
    pub fn allow(&self, connection_id: &str, now: i64) -> bool {
        let Ok(mut last) = self.last.lock() else { return false };
        if last.len() > 10_000 {
            last.clear();
        }
        match last.get(connection_id) {
            Some(at) if now - at < 600 => false,
            _ => {
                last.insert(connection_id.to_owned(), now);
                true
            }
        }
    }
}

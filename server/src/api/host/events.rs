//! `GET /v1/events`: the same events as the webhooks, in order, for polling.

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, HostCaller};
use crate::events::webhooks::event_view;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latch_shared::api::host::{Event, EventQuery, Page};
use latch_shared::{ErrorBody, ErrorCode};

/// Events after `after` (an event id), oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "host", security(("api_key" = [])), params(EventQuery),
    responses((status = 200, body = Page<Event>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Page<Event>>, ApiError> {
    let limit = match q.limit {
        None => 50,
        Some(n @ 1..=200) => i64::from(n),
        Some(_) => return Err(ApiError::invalid("limit", "must be between 1 and 200")),
    };
    let after =
        match &q.after {
            None => 0,
            Some(id) => state.store.event_seq(id).await?.ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::EventNotFound, "No event with that id.")
            })?,
        };
    let mut rows = state.store.events_after(after, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Json(Page { data: rows.iter().map(event_view).collect(), next_cursor }))
}

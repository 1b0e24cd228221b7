//! `GET /v1/events`: the same events as the webhooks, in order, for polling.

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, HostCaller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use latch_shared::ErrorBody;
use latch_shared::api::host::{Event, EventQuery, Page};

/// Events after `after` (an event id), oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "host", security(("api_key" = [])), params(EventQuery),
    responses((status = 200, body = Page<Event>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Page<Event>>, ApiError> {
    Ok(Json(crate::events::list(&state.store, &q).await?))
}

//! `GET /v1/activity`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, HostCaller};
use crate::connections;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use latch_shared::api::host::{ActivityEntry, ActivityQuery, Page};

/// The audit trail, newest first.
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Page<ActivityEntry>>, ApiError> {
    Ok(Json(connections::activity(&state, &q).await?))
}

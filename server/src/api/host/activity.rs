//! `GET /v1/activity`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, HostCaller};
use crate::connections;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
#[allow(unused_imports)]
use latch_shared::ErrorBody;
use latch_shared::api::host::{ActivityEntry, ActivityQuery, Page};

/// The audit trail, newest first.
#[utoipa::path(get, path = "/v1/activity", tag = "host", security(("api_key" = [])), params(ActivityQuery),
    responses((status = 200, body = Page<ActivityEntry>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Page<ActivityEntry>>, ApiError> {
    Ok(Json(connections::activity(&state.store, &q).await?))
}

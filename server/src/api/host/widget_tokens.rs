//! `POST /v1/widget-tokens`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, HostCaller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latch_shared::api::host::{CreateWidgetToken, WidgetToken};

/// Mints a widget token for one of the host's users.
pub async fn create(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiJson(req): ApiJson<CreateWidgetToken>,
) -> Result<(StatusCode, Json<WidgetToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(crate::widget::mint(&state, &req)?),
    ))
}

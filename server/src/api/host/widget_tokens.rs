//! `POST /v1/widget-tokens`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, HostCaller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
#[allow(unused_imports)]
use latch_shared::ErrorBody;
use latch_shared::api::host::{CreateWidgetToken, WidgetToken};

/// Mints a widget token for one of the host's users.
#[utoipa::path(post, path = "/v1/widget-tokens", tag = "host", security(("api_key" = [])),
    request_body = CreateWidgetToken,
    responses((status = 201, body = WidgetToken), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiJson(req): ApiJson<CreateWidgetToken>,
) -> Result<(StatusCode, Json<WidgetToken>), ApiError> {
    Ok((StatusCode::CREATED, Json(crate::widget::mint(&state.widget, &req)?)))
}

//! `POST /widget/v1/connect`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, WidgetCaller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use latch_shared::ErrorBody;
use latch_shared::api::widget::{ConnectRequest, ConnectStarted};

/// Starts a single-use connect (or reconnect) flow for the token's user.
#[utoipa::path(post, path = "/widget/v1/connect", tag = "widget", security(("widget_token" = [])),
    request_body = ConnectRequest,
    responses((status = 201, body = ConnectStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    WidgetCaller(claims): WidgetCaller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConnectRequest>,
) -> Result<(StatusCode, Json<ConnectStarted>), ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    Ok((StatusCode::CREATED, Json(crate::oauth::start::create(&state.flows, &claims, &req, origin).await?)))
}

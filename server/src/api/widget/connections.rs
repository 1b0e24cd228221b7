//! `DELETE /widget/v1/connections/{id}`.

use crate::api::error::ApiError;
use crate::api::extract::WidgetCaller;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latch_shared::ErrorBody;

/// Disconnects one of the user's own connections (revoking it at the provider when possible).
#[utoipa::path(delete, path = "/widget/v1/connections/{id}", tag = "widget", security(("widget_token" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WidgetCaller(claims): WidgetCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::widget::disconnect(&state.widget, &claims, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /widget/v1/flows/{flow_id}`.

use crate::api::error::ApiError;
use crate::api::extract::WidgetCaller;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use latch_shared::ErrorBody;
use latch_shared::api::widget::FlowStatus;

/// Where one of the user's flows stands (polled while the popup is open).
#[utoipa::path(get, path = "/widget/v1/flows/{flow_id}", tag = "widget", security(("widget_token" = [])), params(("flow_id" = String, Path)),
    responses((status = 200, body = FlowStatus), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    WidgetCaller(claims): WidgetCaller,
    Path(flow_id): Path<String>,
) -> Result<Json<FlowStatus>, ApiError> {
    Ok(Json(crate::widget::flow_status(&state.widget, &claims, &flow_id).await?))
}

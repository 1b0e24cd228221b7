//! `GET /widget/v1/integrations`.

use crate::api::error::ApiError;
use crate::api::extract::WidgetCaller;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
#[allow(unused_imports)]
use latch_shared::ErrorBody;
use latch_shared::api::widget::IntegrationList;

/// The providers the token allows, with the user's own connections.
#[utoipa::path(get, path = "/widget/v1/integrations", tag = "widget", security(("widget_token" = [])),
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WidgetCaller(claims): WidgetCaller,
) -> Result<Json<IntegrationList>, ApiError> {
    Ok(Json(crate::widget::integrations(&state.widget, &claims).await?))
}

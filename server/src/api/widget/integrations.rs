//! `GET /widget/v1/integrations`.

use crate::api::error::ApiError;
use crate::api::extract::WidgetCaller;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use latch_shared::api::widget::IntegrationList;

/// The providers the token allows, with the user's own connections.
pub async fn list(
    State(state): State<AppState>,
    WidgetCaller(claims): WidgetCaller,
) -> Result<Json<IntegrationList>, ApiError> {
    Ok(Json(crate::widget::integrations(&state, &claims).await?))
}

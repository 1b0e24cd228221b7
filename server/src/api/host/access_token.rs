//! `POST /v1/access-token`: the hot path.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, HostCaller};
use crate::connections::access_token::access_token;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use latch_shared::api::host::{AccessTokenRequest, AccessTokenResponse};

/// A fresh access token for a user's connection, refreshed first if it is about to expire.
pub async fn create(
    State(state): State<AppState>,
    HostCaller(caller): HostCaller,
    ApiJson(req): ApiJson<AccessTokenRequest>,
) -> Result<Json<AccessTokenResponse>, ApiError> {
    Ok(Json(access_token(&state, &caller, &req).await?))
}

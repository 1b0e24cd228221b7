//! `POST /v1/access-token`: the hot path.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, HostCaller};
use crate::connections::access_token::{TokenAnswer, access_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
#[allow(unused_imports)]
use latch_shared::ErrorBody;
use latch_shared::api::host::AccessTokenRequest;
#[allow(unused_imports)]
use latch_shared::api::host::AccessTokenResponse;

/// A fresh access token for a user's connection, refreshed first if it is about to expire.
#[utoipa::path(post, path = "/v1/access-token", tag = "host", security(("api_key" = [])),
    request_body = AccessTokenRequest,
    responses((status = 200, body = AccessTokenResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    HostCaller(caller): HostCaller,
    ApiJson(req): ApiJson<AccessTokenRequest>,
) -> Result<Response, ApiError> {
    Ok(match access_token(&state.tokens, &caller, &req).await? {
        TokenAnswer::Active(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        TokenAnswer::Inactive(inactive) => Json(inactive).into_response(),
    })
}

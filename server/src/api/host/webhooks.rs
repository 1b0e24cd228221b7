//! `/v1/webhook-endpoints…`: manage where events are delivered.

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, HostCaller};
use crate::events::webhooks;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latch_shared::ErrorBody;
use latch_shared::api::host::{CreateWebhookEndpoint, WebhookEndpoint, WebhookEndpointList, WebhookFailure};

/// Creates an endpoint; the answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "host", security(("api_key" = [])), request_body = CreateWebhookEndpoint,
    responses((status = 201, body = WebhookEndpoint), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiJson(req): ApiJson<CreateWebhookEndpoint>,
) -> Result<(StatusCode, Json<WebhookEndpoint>), ApiError> {
    Ok((StatusCode::CREATED, Json(webhooks::create(&state.webhooks, &req).await?)))
}

/// Lists endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "host", security(("api_key" = [])), responses((status = 200, body = WebhookEndpointList)))]
pub async fn list(State(state): State<AppState>, _caller: HostCaller) -> Result<Json<WebhookEndpointList>, ApiError> {
    Ok(Json(WebhookEndpointList { data: webhooks::list(&state.webhooks).await? }))
}

/// Deletes an endpoint.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "host", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _caller: HostCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    webhooks::delete(&state.webhooks, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the signing secret; the old one keeps signing for 24 hours.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "host", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    _caller: HostCaller,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    Ok(Json(webhooks::rotate(&state.webhooks, &id).await?))
}

/// Events the endpoint did not accept within 24 hours.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/failures", tag = "host", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<WebhookFailure>), (status = 404, body = ErrorBody)))]
pub async fn failures(
    State(state): State<AppState>,
    _caller: HostCaller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({ "data": webhooks::failures(&state.webhooks, &id).await? })))
}

/// Sends a failed event again, now.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/failures/{failure_id}/resend", tag = "host", security(("api_key" = [])),
    params(("id" = String, Path), ("failure_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn resend(
    State(state): State<AppState>,
    _caller: HostCaller,
    Path((id, failure_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    webhooks::resend(&state.webhooks, &id, &failure_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

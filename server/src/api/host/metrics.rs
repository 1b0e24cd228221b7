//! `GET /metrics`: Prometheus text, for a host API key (or, with `admin_listen`, on the admin
//! listener only).

use crate::api::error::ApiError;
use crate::api::extract::HostCaller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
#[allow(unused_imports)]
use latch_shared::ErrorBody;

/// Requests, latencies, cache hits, refreshes, provider calls and webhook deliveries of this
/// process, and connections by status and webhook backlog from the database.
#[utoipa::path(get, path = "/metrics", tag = "host", security(("api_key" = [])),
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"), (status = 401, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, _caller: HostCaller) -> Result<Response, ApiError> {
    scrape(&state).await
}

/// The exposition itself (also what the admin listener serves without an API key).
pub async fn scrape(state: &AppState) -> Result<Response, ApiError> {
    let text = crate::metrics::render(&state.store).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

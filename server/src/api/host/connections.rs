//! `GET /v1/connections`, `GET`, `PATCH` and `DELETE /v1/connections/{id}`.

use crate::activity::Actor;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiQuery, HostCaller};
use crate::connections::{self, ConnectionError};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latch_shared::ErrorBody;
use latch_shared::api::host::{Connection, ConnectionQuery, DeleteConnectionQuery, Page, UpdateConnection};

/// Lists connections, filtered and paged.
#[utoipa::path(get, path = "/v1/connections", tag = "host", security(("api_key" = [])), params(ConnectionQuery),
    responses((status = 200, body = Page<Connection>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    ApiQuery(q): ApiQuery<ConnectionQuery>,
) -> Result<Json<Page<Connection>>, ApiError> {
    Ok(Json(connections::list(&state.store, &q).await?))
}

/// One connection.
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "host", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _caller: HostCaller,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(connections::get(&state.store, &id).await?))
}

/// Deletes a connection; `?revoke=true` also revokes its grant at the provider.
#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "host", security(("api_key" = [])), params(("id" = String, Path), DeleteConnectionQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    HostCaller(caller): HostCaller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteConnectionQuery>,
) -> Result<StatusCode, ApiError> {
    let row = state.store.connection(&id).await?.ok_or(ConnectionError::NotFound(id))?;
    connections::delete(&state.deleter, &Actor::ApiKey(caller.key_name.to_string()), &row, q.revoke.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets what a connection is for.
#[utoipa::path(patch, path = "/v1/connections/{id}", tag = "host", security(("api_key" = [])), params(("id" = String, Path)),
    request_body = UpdateConnection,
    responses((status = 200, body = Connection), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    HostCaller(caller): HostCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateConnection>,
) -> Result<Json<Connection>, ApiError> {
    let actor = Actor::ApiKey(caller.key_name.to_string());
    Ok(Json(connections::set_purpose(&state.store, &state.clock, &actor, &id, &req).await?))
}

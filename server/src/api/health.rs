//! Public endpoints: liveness, readiness (database reachable) and the widget JWT public keys.

use super::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use latch_shared::api::host::Health;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// `GET /readyz`: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health), (status = 503, body = latch_shared::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health { status: "ok".into() }))
}

/// `GET /.well-known/jwks.json`: public keys of widget tokens, so hosts can verify them too.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "health", responses((status = 200, description = "JWK Set of widget-token signing keys")))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.signer.jwks())
}

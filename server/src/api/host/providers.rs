//! `GET /v1/providers`.

use crate::api::error::ApiError;
use crate::api::extract::HostCaller;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
#[allow(unused_imports)]
use latch_shared::ErrorBody;
use latch_shared::api::host::{ProviderInfo, ProviderList};

/// The configured providers, without secrets.
#[utoipa::path(get, path = "/v1/providers", tag = "host", security(("api_key" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _caller: HostCaller) -> Result<Json<ProviderList>, ApiError> {
    let secrets = state.flows.upstream.secrets.sources().await?;
    let now = state.clock.unix();
    let data = state
        .providers
        .all()
        .map(|p| ProviderInfo {
            key: p.key.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            scopes: p.scopes.clone(),
            scope_details: p.scope_details.clone(),
            user_scopes: p.user_scopes.clone(),
            client_secret_configured: secrets.of(p).is_ready(),
            supports_revocation: p.revocation_url.is_some(),
            circuit: state.provider_health.circuit(&p.key, now).as_str().to_owned(),
        })
        .collect();
    Ok(Json(ProviderList { data }))
}

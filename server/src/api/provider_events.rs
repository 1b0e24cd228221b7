//! `POST /providers/{provider}/events`: what a provider pushes (Slack's Events API). The
//! provider is the caller, proven by the request's signature, not by an API key.

use super::error::ApiError;
use crate::provider_events::{self, Answer, EventError, Signed};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use latch_shared::ErrorCode;

/// Verifies and acts on one pushed event.
pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed =
        Signed { timestamp: header("x-slack-request-timestamp"), signature: header("x-slack-signature"), body: &body };
    match provider_events::receive(&state.deleter, &provider, signed).await? {
        Answer::Challenge(challenge) => Ok(Json(serde_json::json!({ "challenge": challenge })).into_response()),
        Answer::Accepted => Ok(StatusCode::OK.into_response()),
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::NoReceiver(key) => {
                ApiError::new(ErrorCode::ProviderNotFound, format!("No provider {key:?} receives events here."))
            }
            EventError::NoSigningSecret(key) => {
                tracing::error!(provider = %key, "an event arrived but no signing secret is stored; run `latch secret add --provider {key} --signing-secret`");
                ApiError::new(ErrorCode::ProviderMisconfigured, "This receiver is not configured yet.")
            }
            EventError::Refused(why) => {
                ApiError::new(ErrorCode::InvalidSignature, format!("The request was refused: {why}."))
            }
            EventError::Malformed(_) => ApiError::new(ErrorCode::InvalidJson, "The body is not an event."),
            EventError::Connection(e) => e.into(),
            EventError::Store(e) => e.into(),
        }
    }
}

//! A fake OAuth2 provider (token and revocation endpoints) with rotating refresh tokens and
//! reuse detection, scripted answers, an optional delay, and a record of every call.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A scripted answer: status, content type, body.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Scripted {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct FakeState {
    /// The refresh token currently valid (rotation: each use replaces it).
    pub current_refresh_token: Option<String>,
    /// When set, issued access tokens start with this (canary tests).
    pub token_prefix: String,
    pub issued: u64,
    pub expires_in: Option<i64>,
    /// Don't return a new refresh token (non-rotating providers such as Google).
    pub no_rotation: bool,
    pub script: VecDeque<Scripted>,
    pub token_calls: Vec<HashMap<String, String>>,
    pub revoke_calls: Vec<HashMap<String, String>>,
    pub revoke_status: u16,
    pub delay_ms: u64,
    pub authorization_headers: Vec<Option<String>>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            token_prefix: "at".into(),
            expires_in: Some(3600),
            revoke_status: 200,
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn token_calls(&self) -> usize {
        self.with(|s| s.token_calls.len())
    }
}

async fn token(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = state.lock().unwrap().delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut s = state.lock().unwrap();
    s.token_calls.push(form.clone());
    s.authorization_headers.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    if let Some(scripted) = s.script.pop_front() {
        return (
            StatusCode::from_u16(scripted.status).unwrap(),
            [("content-type", scripted.content_type)],
            scripted.body,
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        let presented = form.get("refresh_token").cloned();
        if presented.is_none() || presented != s.current_refresh_token {
            // Reuse of a spent refresh token: the grant is dead.
            s.current_refresh_token = None;
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
    }
    s.issued += 1;
    let n = s.issued;
    let access = format!("{}-{n}", s.token_prefix);
    let mut body = serde_json::json!({"access_token": access, "token_type": "Bearer"});
    if let Some(e) = s.expires_in {
        body["expires_in"] = e.into();
    }
    if !s.no_rotation {
        let refresh = format!("rt-{}-{n}", s.token_prefix);
        s.current_refresh_token = Some(refresh.clone());
        body["refresh_token"] = refresh.into();
    }
    axum::Json(body).into_response()
}

async fn revoke(
    State(state): State<Arc<Mutex<FakeState>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    s.revoke_calls.push(form);
    StatusCode::from_u16(s.revoke_status)
        .unwrap()
        .into_response()
}

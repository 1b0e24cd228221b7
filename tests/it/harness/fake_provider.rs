//! A fake OAuth2 provider: authorize (auto-approves, or denies), token (authorization code with
//! PKCE and exact redirect URI checks; refresh with rotation and reuse detection), userinfo, and
//! revocation. Quirk modes reproduce Slack (HTTP 200 `ok:false`, team as account, comma scopes),
//! Google (no new refresh token on refresh) and GitHub (form-encoded answers unless asked for
//! JSON, numeric ids). Scripted answers override the token endpoint; every call is recorded.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine as _;
use sha2::Digest as _;
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
        Self { status, content_type: "application/json", body: body.to_string() }
    }
}

/// Which real provider to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quirks {
    #[default]
    Standard,
    Slack,
    Google,
    GitHub,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    challenge: Option<String>,
    redirect_uri: String,
    account: (String, String),
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub quirks: Quirks,
    /// The refresh token currently valid (rotation: each use replaces it).
    pub current_refresh_token: Option<String>,
    /// Other refresh tokens still valid (one per grant, for many connections); single use.
    pub live_refresh_tokens: std::collections::HashSet<String>,
    /// A spent refresh token may be presented once more (the reuse grace of Okta, Auth0…).
    pub reuse_grace: bool,
    graced_refresh_tokens: std::collections::HashSet<String>,
    /// Issued access tokens start with this (canary tests).
    pub token_prefix: String,
    /// Authorization codes start with this (canary tests).
    pub code_prefix: String,
    pub issued: u64,
    pub expires_in: Option<i64>,
    /// Don't return a new refresh token on refresh (Google).
    pub no_rotation: bool,
    /// Issue no refresh token at all (but an expiring access token).
    pub no_refresh_token: bool,
    /// The account the next approval signs in as: (id, label).
    pub account: (String, String),
    /// The `scope` of token answers; `None` omits it.
    pub granted_scope: Option<String>,
    /// Deny at the authorize step with this error and description.
    pub deny: Option<(String, String)>,
    /// Send `iss` on the redirect (RFC 9207).
    pub issuer: Option<String>,
    /// Override the `iss` sent (mix-up tests).
    pub iss_override: Option<String>,
    /// Userinfo answer override (status, body).
    pub userinfo: Option<(u16, String)>,
    pub script: VecDeque<Scripted>,
    pub token_calls: Vec<HashMap<String, String>>,
    pub revoke_calls: Vec<HashMap<String, String>>,
    pub authorize_calls: Vec<HashMap<String, String>>,
    pub revoke_status: u16,
    /// Slack quirks: `auth.revoke` answers `{"ok":false,"error":…}` with this.
    pub slack_revoke_error: Option<String>,
    /// Holds token requests before they are processed (nothing spent yet).
    pub delay_ms: u64,
    /// Holds token and revocation answers after they were processed (a refresh token rotated,
    /// a code spent, a grant revoked), before the client hears of it.
    pub hold_ms: u64,
    /// Answers of the userinfo endpoint, one per call, before `userinfo`.
    pub userinfo_script: VecDeque<(u16, String)>,
    pub authorization_headers: Vec<Option<String>>,
    pub accept_headers: Vec<Option<String>>,
    codes: HashMap<String, CodeGrant>,
    token_accounts: HashMap<String, (String, String)>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        Self::start_with(Quirks::Standard).await
    }

    pub async fn start_with(quirks: Quirks) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            quirks,
            token_prefix: "at".into(),
            code_prefix: "code".into(),
            expires_in: Some(3600),
            revoke_status: 200,
            slack_revoke_error: None,
            account: ("acct-1".into(), "alice@example.com".into()),
            granted_scope: Some("read write".into()),
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/revoke", post(revoke))
            .route("/auth.test", post(auth_test))
            .with_state(state.clone());
        let url = super::serve_on_loopback(app).await;
        Self { url, state }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Makes `token` one the provider knows (its identity and `auth.test` answer for it), as
    /// if it had issued it; `None` forgets it (revoked, uninstalled).
    pub fn know_token(&self, token: &str, account: Option<(&str, &str)>) {
        self.with(|s| match account {
            Some((id, label)) => s.token_accounts.insert(token.to_owned(), (id.to_owned(), label.to_owned())),
            None => s.token_accounts.remove(token),
        });
    }

    pub fn token_calls(&self) -> usize {
        self.with(|s| s.token_calls.len())
    }
}

type Shared = State<Arc<Mutex<FakeState>>>;

async fn authorize(State(state): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    s.authorize_calls.push(q.clone());
    let Some(redirect) = q.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let mut url = url::Url::parse(&redirect).unwrap();
    {
        let mut pairs = url.query_pairs_mut();
        if let Some((error, description)) = s.deny.clone() {
            pairs.append_pair("error", &error);
            pairs.append_pair("error_description", &description);
        } else {
            let code = format!("{}-{}", s.code_prefix, uuid::Uuid::new_v4().simple());
            let grant = CodeGrant {
                challenge: q.get("code_challenge").cloned(),
                redirect_uri: redirect.clone(),
                account: s.account.clone(),
            };
            s.codes.insert(code.clone(), grant);
            pairs.append_pair("code", &code);
        }
        if let Some(state_param) = q.get("state") {
            pairs.append_pair("state", state_param);
        }
        if let Some(iss) = s.iss_override.clone().or(s.issuer.clone()) {
            pairs.append_pair("iss", &iss);
        }
    }
    (StatusCode::SEE_OTHER, [("location", url.to_string())]).into_response()
}

fn answer(quirks: Quirks, accept_json: bool, status: StatusCode, body: serde_json::Value) -> Response {
    if quirks == Quirks::GitHub && !accept_json {
        let form: Vec<(String, String)> = body
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect();
        return (
            status,
            [("content-type", "application/x-www-form-urlencoded")],
            serde_urlencoded::to_string(form).unwrap(),
        )
            .into_response();
    }
    (status, axum::Json(body)).into_response()
}

fn oauth_error(quirks: Quirks, accept_json: bool, error: &str) -> Response {
    match quirks {
        // Slack reports failures with HTTP 200; GitHub too.
        Quirks::Slack => answer(quirks, true, StatusCode::OK, serde_json::json!({"ok": false, "error": error})),
        Quirks::GitHub => answer(
            quirks,
            accept_json,
            StatusCode::OK,
            serde_json::json!({"error": error, "error_description": "fake"}),
        ),
        _ => answer(quirks, true, StatusCode::BAD_REQUEST, serde_json::json!({"error": error})),
    }
}

async fn token(State(state): Shared, headers: HeaderMap, form: Form<HashMap<String, String>>) -> Response {
    let hold = state.lock().unwrap().hold_ms;
    let answer = token_answer(State(state), headers, form).await;
    tokio::time::sleep(Duration::from_millis(hold)).await;
    answer
}

async fn token_answer(State(state): Shared, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let delay = state.lock().unwrap().delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut s = state.lock().unwrap();
    s.token_calls.push(form.clone());
    s.authorization_headers.push(headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let accept_json = accept.as_deref().is_some_and(|a| a.contains("application/json"));
    s.accept_headers.push(accept);
    if let Some(scripted) = s.script.pop_front() {
        return (
            StatusCode::from_u16(scripted.status).unwrap(),
            [("content-type", scripted.content_type)],
            scripted.body,
        )
            .into_response();
    }
    let quirks = s.quirks;
    let account = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(grant) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return oauth_error(quirks, accept_json, "invalid_grant");
            };
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(quirks, accept_json, "invalid_grant");
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let computed =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
                if &computed != challenge {
                    return oauth_error(quirks, accept_json, "invalid_grant");
                }
            }
            grant.account
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned();
            let mut live = presented.as_ref().is_some_and(|p| s.live_refresh_tokens.remove(p));
            if let Some(p) = presented.as_ref() {
                if live && s.reuse_grace {
                    s.graced_refresh_tokens.insert(p.clone());
                } else if !live {
                    live = s.graced_refresh_tokens.remove(p);
                }
            }
            if presented.is_none() || (!live && presented != s.current_refresh_token) {
                // Reuse of a spent refresh token: the grant is dead.
                s.current_refresh_token = None;
                let code = if quirks == Quirks::Slack { "invalid_refresh_token" } else { "invalid_grant" };
                return oauth_error(quirks, accept_json, code);
            }
            s.account.clone()
        }
        _ => return oauth_error(quirks, accept_json, "unsupported_grant_type"),
    };
    s.issued += 1;
    let n = s.issued;
    let access = format!("{}-{n}", s.token_prefix);
    s.token_accounts.insert(access.clone(), account.clone());
    let mut body = serde_json::json!({"access_token": access, "token_type": if quirks == Quirks::Slack { "bot" } else { "Bearer" }});
    if let Some(e) = s.expires_in {
        body["expires_in"] = e.into();
    }
    if let Some(scope) = &s.granted_scope {
        body["scope"] = scope.clone().into();
    }
    let is_refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    let rotate = !(s.no_refresh_token || (is_refresh && s.no_rotation));
    if rotate {
        let refresh = format!("rt-{}-{n}", s.token_prefix);
        s.current_refresh_token = Some(refresh.clone());
        s.live_refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = refresh.into();
    }
    if quirks == Quirks::Slack {
        body["ok"] = true.into();
        body["team"] = serde_json::json!({"id": account.0, "name": account.1});
        body["authed_user"] = serde_json::json!({"id": "U0001", "scope": "identify", "access_token": format!("xoxp-user-{n}"), "token_type": "user"});
    }
    answer(quirks, accept_json, StatusCode::OK, body)
}

async fn userinfo(State(state): Shared, headers: HeaderMap) -> Response {
    let mut s = state.lock().unwrap();
    if let Some((status, body)) = s.userinfo_script.pop_front() {
        return (StatusCode::from_u16(status).unwrap(), body).into_response();
    }
    if let Some((status, body)) = &s.userinfo {
        return (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response();
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let fallback = (s.quirks == Quirks::GitHub).then(|| s.account.clone());
    let Some((id, label)) = s.token_accounts.get(token).cloned().or(fallback) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "invalid_token"}))).into_response();
    };
    match s.quirks {
        Quirks::GitHub => {
            axum::Json(serde_json::json!({"id": id.parse::<i64>().unwrap_or(42), "login": label})).into_response()
        }
        _ => axum::Json(serde_json::json!({"sub": id, "email": label, "email_verified": true})).into_response(),
    }
}

/// Slack's `auth.test`: HTTP 200 whatever happens, `ok` and `error` say.
async fn auth_test(State(state): Shared, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match s.token_accounts.get(token) {
        Some((team, name)) => {
            axum::Json(serde_json::json!({"ok": true, "team_id": team, "team": name})).into_response()
        }
        None if token.is_empty() => axum::Json(serde_json::json!({"ok": false, "error": "not_authed"})).into_response(),
        None => axum::Json(serde_json::json!({"ok": false, "error": "invalid_auth"})).into_response(),
    }
}

async fn revoke(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let (answer, hold) = {
        let mut s = state.lock().unwrap();
        s.revoke_calls.push(form);
        let answer = if s.quirks == Quirks::Slack {
            match &s.slack_revoke_error {
                Some(error) => axum::Json(serde_json::json!({"ok": false, "error": error})).into_response(),
                None => axum::Json(serde_json::json!({"ok": true, "revoked": true})).into_response(),
            }
        } else {
            StatusCode::from_u16(s.revoke_status).unwrap().into_response()
        };
        (answer, s.hold_ms)
    };
    tokio::time::sleep(Duration::from_millis(hold)).await;
    answer
}

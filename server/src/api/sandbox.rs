//! HTTP of the sandbox authorization server (`/sandbox/…`, demo mode only): the consent page,
//! token, userinfo, revocation, and the demo API.

use super::error::ApiError;
use super::extract::{ApiJson, cookie};
use crate::sandbox::{self, AuthorizeError, AuthorizeParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use latch_shared::ErrorCode;
use maud::{Markup, html};
use serde::Deserialize;

const CSRF_COOKIE: &str = "latch_sandbox_csrf";

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1f2328}\
.card{border:1px solid #d0d7de;border-radius:12px;padding:1.5rem}h1{font-size:1.3rem;margin-top:0}\
label{display:block;margin:1rem 0 .25rem}input[type=text]{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}\
.actions{display:flex;gap:.75rem;margin-top:1.25rem}button{font:inherit;padding:.5rem 1.25rem;border-radius:8px;border:1px solid #d0d7de;background:#f6f8fa;cursor:pointer}\
button.approve{background:#1f883d;border-color:#1f883d;color:#fff}small{color:#59636e}";

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let nonce = crate::random::token();
    let body = html! {
        div.card {
            p { small { "Sandbox · a pretend provider built into Latch" } }
            (body)
        }
    };
    let html = super::pages::document(&format!("{title} · Sandbox"), &nonce, STYLE, body).into_string();
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    super::pages::lock_down((status, Html(html)).into_response(), &csp)
}

fn invalid(message: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "Invalid request", html! { h1 { "Invalid request" } p { (message) } })
}

/// The authorization request, carried through the consent form.
fn hidden(p: &AuthorizeParams) -> Markup {
    let fields = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ];
    html! {
        @for (name, value) in fields {
            @if let Some(value) = value {
                input type="hidden" name=(name) value=(value);
            }
        }
    }
}

/// `GET /sandbox/authorize`: the consent page.
pub async fn authorize(State(state): State<AppState>, Query(p): Query<AuthorizeParams>) -> Response {
    match sandbox::check(&state.sandbox, &p) {
        Err(AuthorizeError::Page(message)) => invalid(&message),
        Err(AuthorizeError::Redirect(url)) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
        }
        Ok(()) => {
            let csrf = crate::random::token();
            let scopes = p.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty());
            let body = html! {
                h1 { "Allow Latch demo to use your Sandbox account?" }
                p { "It asks to:" }
                ul { @for scope in scopes { li { code { (scope) } } } }
                form method="post" action="/sandbox/authorize" {
                    (hidden(&p))
                    input type="hidden" name="csrf" value=(csrf);
                    label for="account" { "Sign in as" }
                    input type="text" id="account" name="account" value="demo-user" maxlength="64" autocomplete="off";
                    div.actions {
                        button.approve type="submit" name="decision" value="approve" { "Approve" }
                        button type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
            };
            let mut response = page(StatusCode::OK, "Authorize", body);
            if let Ok(cookie) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={csrf}; Path=/sandbox; HttpOnly; SameSite=Strict; Max-Age=600"
            )) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
    }
}

/// The consent form.
#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    params: AuthorizeParams,
    csrf: Option<String>,
    account: Option<String>,
    decision: Option<String>,
}

/// `POST /sandbox/authorize`: Approve or Deny.
pub async fn decide(State(state): State<AppState>, headers: HeaderMap, Form(d): Form<Decision>) -> Response {
    if !sandbox::csrf_ok(cookie(&headers, CSRF_COOKIE), d.csrf.as_deref()) {
        return page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            html! { h1 { "This form has expired" } p { "Start again from the app." } },
        );
    }
    if let Err(e) = sandbox::check(&state.sandbox, &d.params) {
        return match e {
            AuthorizeError::Page(m) => invalid(&m),
            AuthorizeError::Redirect(url) => {
                (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
            }
        };
    }
    let target = if d.decision.as_deref() == Some("approve") {
        let account: String = d
            .account
            .unwrap_or_default()
            .trim()
            .chars()
            .filter(|c| c.is_alphanumeric() || "-_.@".contains(*c))
            .take(64)
            .collect();
        let account = if account.is_empty() { "demo-user".to_owned() } else { account };
        match sandbox::approve(&state.sandbox, &d.params, &account).await {
            Ok(url) => url,
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        sandbox::error_redirect(&state.sandbox, &d.params, "access_denied", "The user denied access.")
    };
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, target.to_string())]).into_response();
    if let Ok(clear) =
        HeaderValue::from_str(&format!("{CSRF_COOKIE}=; Path=/sandbox; HttpOnly; SameSite=Strict; Max-Age=0"))
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

fn oauth_error(status: u16, error: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(header::CACHE_CONTROL, "no-store")], Json(serde_json::json!({ "error": error }))).into_response()
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// `POST /sandbox/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    match sandbox::token(&state.sandbox, authorization(&headers), &form).await {
        Ok(body) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err((status, error)) => oauth_error(status, error),
    }
}

/// `POST /sandbox/revoke` (RFC 7009).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    match sandbox::revoke(&state.sandbox, authorization(&headers), &form).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err((status, error)) => oauth_error(status, error),
    }
}

/// `GET /sandbox/userinfo`.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match sandbox::account_of(&state.sandbox, authorization(&headers)).await {
        Some(account) => Json(
            serde_json::json!({"sub": account, "name": account, "email": format!("{account}@sandbox.latch.invalid")}),
        )
        .into_response(),
        None => oauth_error(401, "invalid_token"),
    }
}

/// Body of `POST /sandbox/api/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    text: String,
}

/// `POST /sandbox/api/messages`: post a message as the token's account.
pub async fn post_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(m): ApiJson<NewMessage>,
) -> Response {
    let Some(account) = sandbox::account_of(&state.sandbox, authorization(&headers)).await else {
        return oauth_error(401, "invalid_token");
    };
    match sandbox::post_message(&state.sandbox, account, &m.text).await {
        Ok(msg) => (StatusCode::CREATED, Json(serde_json::json!({"id": msg.id, "account": msg.account, "text": msg.text, "created_at": msg.created_at}))).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /sandbox/api/messages`: the latest messages (for the demo page).
pub async fn messages(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state.store.sandbox_messages(20).await?;
    let data: Vec<_> = list
        .into_iter()
        .map(|m| serde_json::json!({"id": m.id, "account": m.account, "text": m.text, "created_at": m.created_at}))
        .collect();
    Ok(Json(serde_json::json!({ "data": data })))
}

/// Body of `POST /sandbox/admin/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeAccount {
    account: String,
}

/// `POST /sandbox/admin/revoke`: the sandbox user removes the app's access ("revoked at the
/// provider"), as a user would in their account settings. JSON only, so no cross-site form can.
pub async fn revoke_account(
    State(state): State<AppState>,
    ApiJson(r): ApiJson<RevokeAccount>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = state.store.sandbox_revoke_account(&r.account, state.clock.unix()).await?;
    if n == 0 {
        return Err(ApiError::new(ErrorCode::NotFound, "No live grant for that sandbox account."));
    }
    Ok(Json(serde_json::json!({ "revoked_grants": n })))
}

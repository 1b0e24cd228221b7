//! The browser side of the connect flow: `/oauth/authorize/{flow_id}` (sets the flow cookie and
//! redirects to the provider), `/oauth/callback` (the provider's redirect target) and
//! `/oauth/result/{flow_id}` (the page that tells the widget, reached by a redirect so the final
//! URL carries no code or state).

use super::extract::cookie;
use super::pages::Page;
use crate::oauth::FlowError;
use crate::oauth::callback::{self, Callback, CallbackQuery};
use crate::oauth::start::{self, StartRequest, cookie_name, is_secure};
use crate::random::digest;
use crate::state::AppState;
use crate::store::flows::FlowRow;
use crate::store::flows::FlowStage;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_shared::ErrorCode;
use latch_shared::api::widget::{CallbackMessage, FlowError as WireFlowError};
use subtle::ConstantTimeEq as _;

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if is_secure(&state.config.public_url) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}")).ok()
}

fn error_page(e: &FlowError) -> Response {
    let status = super::error::status_of(e.code(), None);
    Page {
        title: "Could not connect".into(),
        heading: "Could not connect".into(),
        text: format!("{} (error: {})", e.message(), e.code()),
        ..Page::default()
    }
    .render(status)
}

/// `GET /oauth/authorize/{flow_id}`: a connect link opened as a link (forwarded, pasted) is
/// refused; the widget starts flows with a POST (see `oauth::start`).
pub async fn authorize_link(State(state): State<AppState>, Path(flow_id): Path<String>) -> Response {
    match start::authorize(&state.flows, &flow_id, StartRequest::Get).await {
        Ok(_) => error_page(&FlowError::new(ErrorCode::InternalError, "A connect link cannot be opened directly.")),
        Err(e) => error_page(&e),
    }
}

/// `POST /oauth/authorize/{flow_id}`: the widget's form POST from the token's origin.
pub async fn authorize(State(state): State<AppState>, Path(flow_id): Path<String>, headers: HeaderMap) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match start::authorize(&state.flows, &flow_id, StartRequest::Post { origin }).await {
        Ok(a) => {
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, a.location.as_str())]).into_response();
            if let Some(cookie) = set_cookie(&state, &a.cookie_name, &a.cookie_value, start::FLOW_TTL_SECONDS) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        Err(e) => error_page(&e),
    }
}

/// The pages' look, and the start page's button.
const BUTTON_STYLE: &str = "button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #1f883d;\
background:#1f883d;color:#fff;cursor:pointer}";

/// `GET /oauth/start/{flow_id}`: where an operator opens the link `latch connect --as-developer`
/// printed. Its button is a form POST from Latch's own origin, the flow's, so the flow starts
/// by the same rule as the widget's (see `oauth::start`); an end user's flow is never offered.
pub async fn developer_start(State(state): State<AppState>, Path(flow_id): Path<String>) -> Response {
    let flow = match start::developer_flow(&state.flows, &flow_id).await {
        Ok(flow) => flow,
        Err(e) => return error_page(&e),
    };
    let provider = state.providers.get(&flow.provider);
    let name = provider.map(|p| p.name.clone()).unwrap_or_else(|| flow.provider.clone());
    let nonce = crate::random::token();
    let body = maud::html! {
        main {
            h1 { "Connect " (name) " as the app's own account" }
            p { "This makes a developer connection: an account of the app itself (a bot, a service mailbox), used by its background jobs, not an end user's. Sign in with the account the app should use." }
            @if let Some(label) = &flow.user_label { p { "It will be named " strong { (label) } "." } }
            form method="post" action=(format!("/oauth/authorize/{}", flow.id)) {
                button type="submit" { "Continue to " (name) }
            }
        }
    };
    let style = format!("{}{BUTTON_STYLE}", super::pages::STYLE);
    let html = super::pages::document(&format!("Connect {name}"), &nonce, &style, body).into_string();
    // The POST redirects to the provider, and browsers check `form-action` along redirects.
    let target = provider.map(|p| p.authorization_url.origin().ascii_serialization()).unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'self' {target}; frame-ancestors 'none'"
    );
    let mut response = super::pages::lock_down((StatusCode::OK, axum::response::Html(html)).into_response(), &csp);
    // Not `no-referrer`: with it the browser posts `Origin: null`, which starts no flow.
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// The per-address rate limit of the `/oauth` pages (unauthenticated, reachable by anyone).
pub async fn limit_by_address(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(ip) = super::extract::client_ip(&parts)
        && let Err(limited) = state.limits.oauth_ip(ip)
    {
        return super::error::ApiError::rate_limited(limited).into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, body)).await
}

/// `GET /oauth/callback`.
pub async fn callback(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > 8192 {
        return error_page(&FlowError::new(ErrorCode::Oauth2ExchangeError, "The provider's answer is too long."));
    }
    let q: CallbackQuery = serde_urlencoded::from_str(&query).unwrap_or_default();
    match callback::handle(&state.flows, q, move |name| cookie(&headers, name).map(str::to_owned)).await {
        Callback::Finished(flow_id) => {
            let location = format!("/oauth/result/{flow_id}");
            (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::REFERRER_POLICY, "no-referrer".into())])
                .into_response()
        }
        Callback::Refused(e) => error_page(&e),
    }
}

/// `GET /oauth/result/{flow_id}`: only for the browser that ran the flow.
pub async fn result(State(state): State<AppState>, Path(flow_id): Path<String>, headers: HeaderMap) -> Response {
    let flow = match state.store.flow(&flow_id).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return error_page(&FlowError::new(ErrorCode::FlowNotFound, "No such connect attempt.")),
        Err(e) => return error_page(&e.into()),
    };
    let name = cookie_name(is_secure(&state.config.public_url), &flow.id);
    let bound = match (cookie(&headers, &name), &flow.browser_hash) {
        (Some(v), Some(hash)) => bool::from(digest(v).as_slice().ct_eq(hash.as_slice())),
        _ => false,
    };
    if !bound || !matches!(flow.status, FlowStage::Connected | FlowStage::Error) {
        return error_page(&FlowError::new(
            ErrorCode::FlowNotFound,
            "No finished connect attempt of this browser here.",
        ));
    }
    let page = result_page(&state, &flow).await;
    let mut response =
        page.render(if flow.status == FlowStage::Connected { StatusCode::OK } else { StatusCode::BAD_REQUEST });
    if let Some(clear) = set_cookie(&state, &name, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

async fn result_page(state: &AppState, flow: &FlowRow) -> Page {
    let provider_name =
        state.providers.get(&flow.provider).map(|p| p.name.clone()).unwrap_or_else(|| flow.provider.clone());
    let error = (flow.status != FlowStage::Connected).then(|| WireFlowError {
        code: flow.error_code.clone().unwrap_or_else(|| "internal_error".into()),
        message: flow.error_message.clone().unwrap_or_default(),
    });
    let message = CallbackMessage {
        source: "latch".into(),
        kind: if error.is_some() { "error".into() } else { "connected".into() },
        provider: flow.provider.clone(),
        flow_id: flow.id.clone(),
        connection_id: flow.connection_id.clone(),
        error: error.clone(),
    };
    let (heading, text) = match &error {
        None => {
            let label = match &flow.connection_id {
                Some(id) => {
                    state.store.connection(id).await.ok().flatten().and_then(|c| c.account_label.or(Some(c.account_id)))
                }
                None => None,
            };
            let owner = flow.user_label.as_deref().map(|u| format!(" for {u}")).unwrap_or_default();
            (
                format!("{provider_name} is connected"),
                match label {
                    Some(label) => format!("Connected as {label}{owner}. You can close this window."),
                    None => format!("Connected{owner}. You can close this window."),
                },
            )
        }
        Some(e) => (format!("Could not connect {provider_name}"), format!("{} (error: {})", e.message, e.code)),
    };
    Page {
        title: heading.clone(),
        heading,
        text,
        return_to: flow.return_to.clone(),
        // Never a wildcard: without the token's exact origin there is no message at all.
        message: flow.allowed_origin.clone().map(|origin| (message, origin)),
    }
}

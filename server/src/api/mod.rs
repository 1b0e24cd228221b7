//! HTTP, and only HTTP: every route in one list, the layers around them, and thin handlers that
//! extract the caller and input, call one domain function and return its answer.

pub mod assets;
pub mod error;
pub mod extract;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod health;
pub mod host;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod provider_events;
pub mod request_id;
pub mod sandbox;
pub mod widget;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{delete, get, post};
use error::ApiError;
use latch_shared::ErrorCode;
use latch_shared::endpoint::{Endpoint, Method as EndpointMethod};
use std::iter::once;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted anywhere.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Everything (one listener, the default).
    All,
    /// What browsers and providers reach: the widget API, `/oauth`, `/connect`, `/widget`,
    /// JWKS, health, the OpenAPI document (with `admin_listen` set).
    Public,
    /// The host API and `/metrics` (served there without an API key), plus health.
    Admin,
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    routes(state, Routes::All)
}

/// The routes of one listener.
pub fn routes(state: AppState, which: Routes) -> Router {
    use latch_shared::api::{host as h, widget as w};
    let host = Router::new()
        .at(h::CreateWidgetTokenEndpoint, host::widget_tokens::create)
        .at(h::ListProviders, host::providers::list)
        .at(h::ListConnections, host::connections::list)
        .at(h::GetConnection, host::connections::get)
        .at(h::UpdateConnectionEndpoint, host::connections::update)
        .at(h::DeleteConnection, host::connections::delete)
        .at(h::GetAccessToken, host::access_token::create)
        .at(h::ListInventory, host::inventory::list)
        .at(h::ListActivity, host::activity::list)
        .at(h::ListEvents, host::events::list)
        .at(h::ListWebhookEndpoints, host::webhooks::list)
        .at(h::CreateWebhookEndpointEndpoint, host::webhooks::create)
        .at(h::DeleteWebhookEndpoint, host::webhooks::delete)
        .at(h::RotateWebhookSecret, host::webhooks::rotate)
        .at(h::ListWebhookFailures, host::webhooks::failures)
        .at(h::ResendWebhookFailure, host::webhooks::resend)
        .method_not_allowed_fallback(method_not_allowed)
        // Tokens must not be cached by proxies or clients (RFC 6749 §5.1). One route layer of
        // both headers: each route layer is a boxed service per route (see `layered`).
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .layer(SetResponseHeaderLayer::overriding(header::PRAGMA, HeaderValue::from_static("no-cache"))),
        );

    let origins: Vec<HeaderValue> =
        state.config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let widget = Router::new()
        .at(w::ListIntegrations, widget::integrations::list)
        .at(w::StartConnect, widget::connect::create)
        .at(w::GetFlow, widget::flows::get)
        .at(w::Disconnect, widget::connections::delete)
        // Set before the CORS layer: a fallback set later would replace the layered one and
        // answer preflight requests with 405.
        .method_not_allowed_fallback(method_not_allowed)
        // Only configured origins get CORS; the handler also checks the token's own origin.
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );

    // The sandbox authorization server exists only in demo mode; elsewhere /sandbox/* is 404.
    let sandbox = if state.config.demo {
        Router::new()
            .route("/authorize", get(sandbox::authorize).post(sandbox::decide))
            .route("/token", post(sandbox::token))
            .route("/revoke", post(sandbox::revoke))
            .route("/userinfo", get(sandbox::userinfo))
            .route("/api/messages", get(sandbox::messages).post(sandbox::post_message))
            .route("/admin/revoke", post(sandbox::revoke_account))
            .method_not_allowed_fallback(method_not_allowed)
    } else {
        Router::new()
    };

    let probes = Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    if which == Routes::Admin {
        let admin = probes
            .merge(host.route("/metrics", get(admin_metrics)))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found);
        return layered(admin, state);
    }
    let host = if which == Routes::Public { Router::new() } else { host.route("/metrics", get(host::metrics::get)) };
    let app = probes
        .route("/.well-known/jwks.json", get(health::jwks))
        .route("/openapi.json", get(openapi::serve))
        .route("/widget/latch.js", get(assets::loader))
        .route("/widget/{file}", get(assets::file))
        .route("/connect", get(assets::connect_page))
        .merge(
            Router::new()
                .route("/oauth/start/{flow_id}", get(oauth::developer_start))
                .route("/oauth/authorize/{flow_id}", get(oauth::authorize_link).post(oauth::authorize))
                .route("/oauth/callback", get(oauth::callback))
                .route("/providers/{provider}/events", post(provider_events::receive))
                .route("/oauth/result/{flow_id}", get(oauth::result))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), oauth::limit_by_address)),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .merge(host)
        .merge(widget)
        .nest("/sandbox", sandbox)
        .fallback(not_found);
    #[cfg(feature = "failpoints")]
    let app = app.route("/_test/failpoints/{name}", axum::routing::put(failpoints::set));
    layered(app, state)
}

/// `GET /metrics` on the admin listener: reachable only where the operator put that listener.
async fn admin_metrics(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    host::metrics::scrape(&state).await.into_response()
}

/// The layers around every route of every listener.
///
/// Only `measured` is a route layer (it needs the matched route's template); the rest wrap the
/// router as one service. `Router::layer` wraps each route in a boxed service per layer, and a
/// boxed route clones everything inside it on every call: with ten layers a request cloned boxes
/// inside boxes, a quarter of a `/healthz` request's instructions under callgrind (44,069 before,
/// 32,542 after).
fn layered(app: Router<AppState>, state: AppState) -> Router {
    let routed = app.layer(axum::middleware::from_fn(measured)).with_state(state.clone());
    let around = tower::ServiceBuilder::new()
        // Before the trace layer sees them: credentials are never logged.
        .layer(SetSensitiveRequestHeadersLayer::new(once(header::AUTHORIZATION).chain(once(header::COOKIE))))
        .layer(axum::middleware::map_request(request_id::drop_unacceptable))
        .layer(SetRequestIdLayer::new(request_id::X_REQUEST_ID, request_id::RequestIds))
        .layer(PropagateRequestIdLayer::new(request_id::X_REQUEST_ID))
        // Spans carry the path, never the query: a callback's query holds the code and state.
        // The request's own line is written by `measured`, with the route template.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let id = req.headers().get(request_id::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = id)
                })
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn_with_state(state, bounded))
        .layer(axum::middleware::from_fn(screened))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(routed);
    Router::new().fallback_service(around)
}

/// Routing by the shared endpoint descriptions (`latch_shared::endpoint`).
trait At {
    /// Routes `endpoint`'s method and path to `handler`.
    fn at<E: Endpoint, H: Handler<T, AppState>, T: 'static>(self, endpoint: E, handler: H) -> Self;
}

impl At for Router<AppState> {
    fn at<E: Endpoint, H: Handler<T, AppState>, T: 'static>(self, _: E, handler: H) -> Self {
        let method_router = match E::METHOD {
            EndpointMethod::Get => get(handler),
            EndpointMethod::Post => post(handler),
            EndpointMethod::Patch => axum::routing::patch(handler),
            EndpointMethod::Delete => delete(handler),
        };
        self.route(E::PATH, method_router)
    }
}

/// Every request's path and query go through the one screen for text from outside
/// (`extract::screen`) before any handler, public ones included.
async fn screened(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match extract::screen(request.uri()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Every request: a slot among `http.max_concurrent_requests` (none free: `503 server_busy` at
/// once, not a queue) and `http.request_timeout_seconds` to finish (`408 request_timeout`). Work
/// that must finish (a refresh, a code exchange) runs in its own task and is not cut.
async fn bounded(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Ok(_slot) = state.request_slots.clone().try_acquire_owned() else {
        return ApiError::new(
            ErrorCode::ServerBusy,
            "The server is at its limit of concurrent requests; retry shortly.",
        )
        .retry(1)
        .into_response();
    };
    let limit = std::time::Duration::from_secs(state.config.http.request_timeout_seconds);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::new(ErrorCode::RequestTimeout, "The request took longer than this server allows; retry it.")
                .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No such route.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "This route does not accept that method.")
}

/// Counts every request by its route template (never the raw path, whose ids would make a
/// label per connection), times it, and writes its one info line: method, route template,
/// status, latency and request id; never the path's ids, the query or a header's value.
async fn measured(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    // A clone of the matched path or of a header value is a reference count, not a copy.
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let id = request.headers().get(request_id::X_REQUEST_ID).cloned();
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let took = started.elapsed();
    let route = route.as_ref().map_or("unmatched", axum::extract::MatchedPath::as_str);
    let status = response.status().as_u16();
    crate::metrics::request(route, method.as_str(), status, took);
    tracing::info!(
        method = method.as_str(),
        route,
        status,
        latency_ms = took.as_secs_f64() * 1000.0,
        request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        "request"
    );
    response
}

//! The widget's files (`/widget/latch.js`, `/widget/{hashed file}`) and the hosted widget page
//! (`/connect#token=…`), for host apps that prefer a link or an iframe.

use super::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use latch_shared::ErrorCode;
use maud::{PreEscaped, html};

/// `GET /widget/latch.js`: the stable loader; revalidated, since it names the current files.
pub async fn loader(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        state.assets.loader.clone(),
    )
        .into_response()
}

/// `GET /widget/{file}`: a content-hashed file, cacheable for a year. Public and credential-free,
/// so any origin may load it (host pages import the module and fetch the WebAssembly).
pub async fn file(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let asset = state.assets.files.get(&name).ok_or_else(|| ApiError::new(ErrorCode::NotFound, "No such file."))?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        asset.bytes.clone(),
    )
        .into_response())
}

const CONNECT_STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f8fa}\
main{max-width:40rem;margin:0 auto;padding:2rem 1rem}h1{font-size:1.4rem}\
@media (prefers-color-scheme: dark){body{background:#010409;color:#e6edf3}}";

/// Reads the token from the fragment, removes it from the address bar, mounts the widget.
const MOUNT_FROM_FRAGMENT: &str = r##"(function () {
  var token = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname + location.search);
  var status = document.getElementById("latch-status");
  if (!token) { status.textContent = "This link has no access token. Open it again from the app."; return; }
  Latch.mount("#integrations", { token: token }).catch(function () { status.textContent = "The page could not load. Reload it to try again."; });
})();"##;

/// `GET /connect#token=…`: the widget full-page. The token stays in the fragment (never sent to
/// any server, so never in a log) and is removed from the address bar at once.
pub async fn connect_page(State(state): State<AppState>) -> Response {
    let nonce = crate::random::token();
    let body = html! {
        main {
            h1 { "Connected accounts" }
            div id="integrations" {}
            p id="latch-status" role="status" {}
        }
        script nonce=(nonce) src="/widget/latch.js" {}
        script nonce=(nonce) { (PreEscaped(MOUNT_FROM_FRAGMENT)) }
    };
    let html = super::pages::document("Connected accounts", &nonce, CONNECT_STYLE, body).into_string();
    let ancestors: Vec<&str> = state.config.allowed_origins.iter().map(String::as_str).collect();
    // The widget starts flows with a form POST to Latch that redirects to the provider, and
    // browsers check `form-action` along the redirects: allow the providers' authorization origins.
    let mut form_targets: Vec<String> =
        state.providers.all().map(|p| p.authorization_url.origin().ascii_serialization()).collect();
    form_targets.sort();
    form_targets.dedup();
    let csp = format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self' 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self' {}; frame-ancestors 'self' {}",
        form_targets.join(" "),
        ancestors.join(" ")
    );
    let mut response = (StatusCode::OK, Html(html)).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp.trim_end()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    // Not `no-referrer`: with it, browsers send `Origin: null` on the widget's form POST, and
    // Latch starts a flow only from the token's origin. `same-origin` sends nothing elsewhere.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

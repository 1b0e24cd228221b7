//! The few HTML pages Latch serves itself (flow results and errors): no external resources, a
//! per-response CSP nonce, not framable, not cached, no referrer. Rendered with `maud`, which
//! escapes every dynamic string; the message to the widget is JSON inside a non-executable
//! script element.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use latch_shared::api::widget::CallbackMessage;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// What to render.
#[derive(Debug, Default)]
pub struct Page {
    pub title: String,
    pub heading: String,
    pub text: String,
    /// A link back to the host app.
    pub return_to: Option<String>,
    /// Posted to `window.opener` with this exact target origin, then the window closes.
    pub message: Option<(CallbackMessage, String)>,
}

/// JSON that is safe inside `<script>`: no `<`, so no `</script>` breakout. (Script content is
/// raw text, where HTML escaping would corrupt the JSON, so this is the one unescaped insert.)
fn script_json<T: serde::Serialize>(value: &T) -> PreEscaped<String> {
    PreEscaped(serde_json::to_string(value).unwrap_or_else(|_| "null".into()).replace('<', "\\u003c"))
}

/// The look of every page Latch renders itself.
pub const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2328}\
h1{font-size:1.4rem}a{color:#0969da}";

/// Posts the message to the opener with the exact target `origin` (a JSON string literal), then
/// closes the window.
fn post_message(origin: &PreEscaped<String>) -> PreEscaped<String> {
    PreEscaped(format!(
        r#"(function () {{
  var message = JSON.parse(document.getElementById("latch-message").textContent);
  if (window.opener && !window.opener.closed) {{
    window.opener.postMessage(message, {});
    setTimeout(function () {{ window.close(); }}, 50);
  }}
}})();"#,
        origin.0
    ))
}

/// The frame of every page Latch renders itself; maud escapes every interpolated string.
pub fn document(title: &str, nonce: &str, style: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style nonce=(nonce) { (PreEscaped(style)) }
            }
            body { (body) }
        }
    }
}

impl Page {
    /// Renders with `status`.
    pub fn render(self, status: StatusCode) -> Response {
        let nonce = crate::random::token();
        let body = html! {
            main {
                h1 { (self.heading) }
                p { (self.text) }
                @if let Some(url) = &self.return_to {
                    p { a href=(url) { "Back to the app" } }
                }
            }
            @if let Some((message, origin)) = &self.message {
                script type="application/json" id="latch-message" { (script_json(message)) }
                script nonce=(nonce) { (post_message(&script_json(origin))) }
            }
        };
        let html = document(&self.title, &nonce, STYLE, body).into_string();
        let csp = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        lock_down((status, Html(html)).into_response(), &csp)
    }
}

/// The headers of every page Latch renders itself: this CSP, never framed, never cached, no
/// referrer.
pub fn lock_down(mut response: Response, csp: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_script_breakouts() {
        let page = document("t", "n", "", html! { p { (r#"<img src=x onerror="a">&'"#) } }).into_string();
        assert!(page.contains("&lt;img src=x onerror=&quot;a&quot;&gt;&amp;'"), "{page}");
        assert_eq!(script_json(&"</script><script>").0, r#""\u003c/script>\u003cscript>""#);
    }
}

//! The few HTML pages Latch serves itself (flow results and errors): no external resources, a
//! per-response CSP nonce, not framable, not cached, no referrer. Every dynamic string is
//! escaped; the message to the widget is JSON inside a non-executable script element.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use latch_shared::api::widget::CallbackMessage;

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

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside `<script>`: no `<`, so no `</script>` breakout.
fn script_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into()).replace('<', "\\u003c")
}

impl Page {
    /// Renders with `status`.
    pub fn render(self, status: StatusCode) -> Response {
        let nonce = crate::random::token();
        let script = match &self.message {
            Some((message, origin)) => format!(
                r#"<script type="application/json" id="latch-message">{}</script>
<script nonce="{nonce}">
(function () {{
  var message = JSON.parse(document.getElementById("latch-message").textContent);
  if (window.opener && !window.opener.closed) {{
    window.opener.postMessage(message, {});
    setTimeout(function () {{ window.close(); }}, 50);
  }}
}})();
</script>"#,
                script_json(message),
                script_json(origin),
            ),
            None => String::new(),
        };
        let link = self
            .return_to
            .as_deref()
            .map(|url| format!(r#"<p><a href="{}">Back to the app</a></p>"#, escape(url)))
            .unwrap_or_default();
        let html = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style nonce="{nonce}">body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2328}}h1{{font-size:1.4rem}}a{{color:#0969da}}</style>
</head><body><main><h1>{heading}</h1><p>{text}</p>{link}</main>
{script}
</body></html>"#,
            title = escape(&self.title),
            heading = escape(&self.heading),
            text = escape(&self.text),
        );
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
        assert_eq!(escape(r#"<img src=x onerror="a">&'"#), "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#x27;");
        assert_eq!(script_json(&"</script><script>"), r#""\u003c/script>\u003cscript>""#);
    }
}

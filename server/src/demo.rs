//! The demo host app of `latch demo`: "Acme Deploys", a small SaaS page on its own origin whose
//! own backend uses Latch exactly as a real host app would: it mints widget tokens through the
//! host API and embeds the widget, and its "Deploy" button asks `POST /v1/access-token` for a
//! fresh token and posts a notification through the sandbox provider's API.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;

/// The demo's single signed-in user.
pub const DEMO_USER: &str = "demo-user";
/// What the demo's connections are for, shown beside each one in the widget.
pub const DEMO_PURPOSE: &str = "Posts a message to your team on every deploy";

/// What the demo backend knows: where Latch is, its own origin, and its API key.
#[derive(Clone)]
pub struct Demo(Arc<Inner>);

struct Inner {
    latch_url: String,
    origin: String,
    api_key: String,
    http: reqwest::Client,
}

impl Demo {
    /// A demo backend for Latch at `latch_url`, served from `origin`.
    pub fn new(latch_url: String, origin: String, api_key: String) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
        Self(Arc::new(Inner { latch_url: latch_url.trim_end_matches('/').to_owned(), origin, api_key, http }))
    }

    async fn host_api(&self, path: &str, body: Value) -> Result<(u16, Value), String> {
        let response = self
            .0
            .http
            .post(format!("{}{path}", self.0.latch_url))
            .bearer_auth(&self.0.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Latch is unreachable: {e}"))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo").field("latch_url", &self.0.latch_url).finish_non_exhaustive()
    }
}

/// The demo app's routes.
pub fn router(demo: Demo) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/demo", get(page))
        .route("/demo/api/widget-token", post(widget_token))
        .route("/demo/api/deploy", post(deploy))
        .with_state(demo)
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// The demo's backend mints a widget token for its signed-in user (the browser never sees the
/// API key).
async fn widget_token(State(demo): State<Demo>) -> Response {
    let body = json!({
        "user_id": DEMO_USER,
        "allowed_origin": demo.0.origin,
        "providers": null,
        "purpose": DEMO_PURPOSE,
    });
    match demo.host_api("/v1/widget-tokens", body).await {
        Ok((201, token)) => json_response(200, json!({"token": token["token"]})),
        Ok((status, error)) => {
            json_response(502, json!({"error": format!("Latch answered {status}"), "detail": error["error"]}))
        }
        Err(e) => json_response(502, json!({"error": e})),
    }
}

/// "Deploy": ask Latch for a fresh token, then notify through the sandbox API with it.
async fn deploy(State(demo): State<Demo>) -> Response {
    let answer = match demo
        .host_api("/v1/access-token", json!({"user_id": DEMO_USER, "provider": crate::sandbox::KEY}))
        .await
    {
        Ok((200, answer)) => answer,
        Ok((status, error)) => {
            return json_response(502, json!({"error": format!("Latch answered {status}"), "detail": error["error"]}));
        }
        Err(e) => return json_response(502, json!({"error": e})),
    };
    if answer["active"] != true {
        return json_response(200, json!({"ok": false, "reconnect": true, "reason": answer["error"]}));
    }
    let token = answer["access_token"].as_str().unwrap_or_default();
    let t = crate::clock::Clock::default().now();
    let text = format!("Deployed acme-web to production at {:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second());
    let posted = demo
        .0
        .http
        .post(format!("{}/sandbox/api/messages", demo.0.latch_url))
        .bearer_auth(token)
        .json(&json!({"text": text}))
        .send()
        .await;
    match posted {
        Ok(r) if r.status() == StatusCode::CREATED => {
            let message: Value = r.json().await.unwrap_or(Value::Null);
            json_response(200, json!({"ok": true, "message": message}))
        }
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
            // The provider refused a token Latch thought valid (the user revoked the app): a
            // forced refresh lets Latch find out and mark the connection for reconnecting.
            let _ = demo
                .host_api(
                    "/v1/access-token",
                    json!({"user_id": DEMO_USER, "provider": crate::sandbox::KEY, "force_refresh": true}),
                )
                .await;
            json_response(200, json!({"ok": false, "reconnect": true, "reason": "token rejected"}))
        }
        Ok(r) => json_response(502, json!({"error": format!("the sandbox answered {}", r.status())})),
        Err(e) => json_response(502, json!({"error": format!("the sandbox is unreachable: {e}")})),
    }
}

async fn page(State(demo): State<Demo>) -> Html<String> {
    Html(PAGE.replace("{{LATCH}}", &demo.0.latch_url))
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Deploys · Integrations</title>
<style>
  body { margin: 0; font: 16px/1.5 system-ui, sans-serif; background: #f6f8fa; color: #1f2328; }
  header { background: #24292f; color: #fff; padding: 14px 24px; display: flex; gap: 12px; align-items: center; }
  header strong { font-size: 18px; }
  main { max-width: 46rem; margin: 0 auto; padding: 24px; display: grid; gap: 24px; }
  section { background: #fff; border: 1px solid #d0d7de; border-radius: 12px; padding: 20px; }
  h1 { font-size: 22px; margin: 0; } h2 { font-size: 17px; margin: 0 0 12px; }
  #deploy { font: inherit; padding: 8px 16px; border-radius: 8px; border: 0; background: #1f883d; color: #fff; cursor: pointer; }
  #deploy-result { margin: 12px 0 0; }
  /* The host's own button styles must not leak into the widget (it lives in a shadow root). */
  button { text-transform: uppercase; }
  @media (prefers-color-scheme: dark) { body { background: #010409; color: #e6edf3; } section { background: #0d1117; border-color: #30363d; } }
</style></head>
<body>
<header><strong>Acme Deploys</strong><span>· Settings</span></header>
<main>
  <h1>Integrations</h1>
  <section><h2>Connected apps</h2><div id="integrations"></div></section>
  <section>
    <h2>Deploy</h2>
    <p>Each deploy posts a notification to your connected Sandbox account.</p>
    <button id="deploy" type="button">Deploy now</button>
    <p id="deploy-result" role="status"></p>
  </section>
</main>
<script src="{{LATCH}}/widget/latch.js"></script>
<script>
  async function getToken() {
    const r = await fetch("/demo/api/widget-token", { method: "POST" });
    if (!r.ok) throw new Error("could not get a widget token");
    window.latchTokenFetches = (window.latchTokenFetches || 0) + 1;
    return (await r.json()).token;
  }
  window.latchEvents = [];
  getToken().then(function (token) {
    return Latch.mount("#integrations", {
      token: token,
      getToken: getToken,
      onEvent: function (e) { window.latchEvents.push(e); console.log("latch event", e); }
    });
  });
  document.getElementById("deploy").addEventListener("click", async function () {
    const out = document.getElementById("deploy-result");
    out.textContent = "Deploying…";
    const r = await fetch("/demo/api/deploy", { method: "POST" });
    const body = await r.json();
    if (body.ok) out.textContent = "Deployed. Notification sent: " + body.message.text;
    else if (body.reconnect) out.textContent = "Reconnect needed: connect your Sandbox account above, then deploy again.";
    else out.textContent = "Deploy failed: " + (body.error || "unknown error");
  });
</script>
</body></html>
"##;

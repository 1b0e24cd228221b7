//! Who may call what: API keys on the host API, widget tokens on the widget API, never crossed.

use crate::harness::{TestApp, assert_error, both, send};
use reqwest::Method;

both!(api_key_checks, |backend| async move {
    let app = TestApp::start(backend).await;
    let url = format!("{}/v1/connections", app.url);
    assert_error(&send(app.http.get(&url)).await, 401, "unauthorized");
    assert_error(&send(app.http.get(&url).header("authorization", "Basic abc")).await, 401, "unauthorized");
    for bad in ["nope", "latch_sk_short", &format!("latch_sk_{}", "A".repeat(43)), &"x".repeat(10_000)] {
        assert_error(&send(app.http.get(&url).bearer_auth(bad)).await, 401, "invalid_api_key");
    }
    let (status, _) = app.get("/v1/connections").await;
    assert_eq!(status, 200);

    // Revocation is effective at once on the replica that revoked (it drops its cache).
    app.state.store.revoke_api_key("test-host", app.state.clock.unix()).await.unwrap();
    app.state.api_keys.forget_all();
    assert_error(&app.get("/v1/connections").await, 401, "invalid_api_key");
});

both!(credentials_never_cross_apis, |backend| async move {
    let app = TestApp::start(backend).await;
    let (_, minted) = app.post("/v1/widget-tokens", serde_json::json!({"user_id": "alice"})).await;
    let widget_token = minted["token"].as_str().unwrap().to_owned();
    for path in ["/v1/connections", "/v1/providers", "/v1/activity"] {
        let r = send(app.http.get(format!("{}{path}", app.url)).bearer_auth(&widget_token)).await;
        assert_error(&r, 401, "invalid_api_key");
    }
    let r =
        send(app.http.request(Method::GET, format!("{}/widget/v1/integrations", app.url)).bearer_auth(&app.api_key))
            .await;
    assert_error(&r, 401, "invalid_widget_token");
    let r = send(app.http.get(format!("{}/widget/v1/integrations", app.url)).bearer_auth(&widget_token)).await;
    assert_eq!(r.0, 200, "{}", r.1);
});

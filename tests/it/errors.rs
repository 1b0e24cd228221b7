//! Every error is the JSON envelope with a stable code and a fitting status, axum's own
//! rejections included.

use crate::harness::{TestApp, assert_error, assert_error_says, both, send};
use reqwest::Method;
use serde_json::json;

both!(request_shape_errors, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.host(Method::POST, "/v1/access-token").header("content-type", content_type).body(body)
    };
    assert_error(&send(post_raw("{not json", "application/json")).await, 400, "invalid_json");
    assert_error(
        &send(post_raw("{\"user_id\":\"a\",\"provider\":\"acme\"} trailing", "application/json")).await,
        400,
        "invalid_json",
    );
    assert_error(
        &send(post_raw("{\"user_id\":\"a\",\"provider\":\"acme\"}", "text/plain")).await,
        415,
        "unsupported_media_type",
    );

    let unknown = app.post("/v1/access-token", json!({"user_id": "a", "provider": "acme", "colour": 1})).await;
    assert_error(&unknown, 422, "invalid_request");
    assert_eq!(unknown.1["error"]["field"], "colour");
    let missing = app.post("/v1/access-token", json!({"user_id": "a"})).await;
    assert_error(&missing, 422, "invalid_request");
    assert_eq!(missing.1["error"]["field"], "provider");
    let wrong_type = app.post("/v1/access-token", json!({"user_id": 5, "provider": "acme"})).await;
    assert_error(&wrong_type, 422, "invalid_request");
    assert_eq!(wrong_type.1["error"]["field"], "user_id");
    let long_id = app.post("/v1/access-token", json!({"user_id": "x".repeat(10_000), "provider": "acme"})).await;
    assert_error(&long_id, 422, "invalid_request");
    assert_eq!(long_id.1["error"]["field"], "user_id");
    let control = app.post("/v1/access-token", json!({"user_id": "a\u{0}b", "provider": "acme"})).await;
    assert_error(&control, 422, "invalid_request");

    let big = format!("{{\"user_id\":\"{}\",\"provider\":\"acme\"}}", "a".repeat(70 * 1024));
    let too_large =
        send(app.host(Method::POST, "/v1/access-token").header("content-type", "application/json").body(big)).await;
    assert_error(&too_large, 413, "payload_too_large");

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested =
        send(app.host(Method::POST, "/v1/access-token").header("content-type", "application/json").body(deep)).await;
    assert!(nested.0 == 400 || nested.0 == 422, "{nested:?}");

    assert_error(&app.get("/v1/nope").await, 404, "not_found");
    assert_error(&app.get("/nope").await, 404, "not_found");
    assert_error(&send(app.host(Method::PUT, "/v1/access-token")).await, 405, "method_not_allowed");

    let bad_limit = app.get("/v1/connections?limit=0").await;
    assert_error_says(&bad_limit, 422, "invalid_request", "limit: must be between 1 and 200");
    assert_eq!(bad_limit.1["error"]["field"], "limit");
    let bad_status = app.get("/v1/connections?status=sleeping").await;
    assert_error(&bad_status, 422, "invalid_request");
    assert_eq!(bad_status.1["error"]["field"], "status");
    let unknown_param = app.get("/v1/connections?colour=red").await;
    assert_error(&unknown_param, 422, "invalid_request");
});

both!(health_and_readiness, |backend| async move {
    let app = TestApp::start(backend).await;
    let (status, body) = send(app.http.get(format!("{}/healthz", app.url))).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, _) = send(app.http.get(format!("{}/readyz", app.url))).await;
    assert_eq!(status, 200);
    app.state.store.close().await;
    let down = send(app.http.get(format!("{}/readyz", app.url))).await;
    assert_error(&down, 503, "database_unavailable");
});

both!(a_database_outage_is_503_on_every_route, |backend| async move {
    let app = TestApp::start(backend).await;
    use latch_shared::api::host::{GetConnection, ListActivity, ListConnections, ListEvents, ListWebhookEndpoints};
    // Cached API key checks let the requests reach their handlers.
    assert_eq!(app.call::<ListConnections>(&[], None).await.0, 200);
    app.state.store.close().await;
    for down in [
        app.call::<ListConnections>(&[], None).await,
        app.call::<GetConnection>(&["conn_1"], None).await,
        app.call::<ListActivity>(&[], None).await,
        app.call::<ListEvents>(&[], None).await,
        app.call::<ListWebhookEndpoints>(&[], None).await,
    ] {
        assert_error_says(&down, 503, "database_unavailable", "retry shortly");
    }
});

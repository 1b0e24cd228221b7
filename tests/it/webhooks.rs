//! Events and webhooks: written with the change they describe, polled in order, delivered signed
//! the Standard Webhooks way (checked with that spec's own Rust library), retried while the
//! receiver is down, given up after 24 hours and re-sendable, and never to private addresses
//! unless allowed.

use crate::harness::fake_provider::Scripted;
use crate::harness::{Seed, TestApp, assert_error, both, send, wait_until};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deliveries as received: headers and body.
type Deliveries = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver that can be switched off (it then answers 503).
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    up: Arc<Mutex<bool>>,
    pub(crate) got: Deliveries,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let up = Arc::new(Mutex::new(true));
        let got: Deliveries = Arc::default();
        let (u, g) = (up.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (u, g) = (u.clone(), g.clone());
                async move {
                    if !*u.lock().unwrap() {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    g.lock().unwrap().push((headers, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, up, got }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect()
    }

    pub(crate) fn types(&self) -> Vec<String> {
        self.bodies().iter().map(|b| b["type"].as_str().unwrap().to_owned()).collect()
    }

    pub(crate) async fn wait_for(&self, n: usize) {
        let ok = wait_until(Duration::from_secs(15), || async { self.got.lock().unwrap().len() >= n }).await;
        assert!(ok, "expected {n} deliveries, got {:?}", self.types());
    }
}

async fn endpoint(app: &TestApp, url: &str, events: Option<Vec<&str>>) -> Value {
    let mut body = json!({"url": url});
    if let Some(e) = events {
        body["events"] = json!(e);
    }
    let (status, created) = app.post("/v1/webhook-endpoints", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

both!(events_are_written_signed_delivered_and_polled, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let receiver = Receiver::start().await;
    let created = endpoint(&app, &receiver.url, None).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app.get("/v1/webhook-endpoints").await;
    assert!(listed["data"][0].get("secret").is_none(), "the secret is shown once");

    // Connect: connection.created, signed, carrying the connection and no token.
    let id = app.connect_flow("alice", "acme").await.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    receiver.wait_for(1).await;
    let (headers, body) = receiver.got.lock().unwrap()[0].clone();
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier.verify(&body, &headers).expect("a genuine delivery verifies");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(verifier.verify(&tampered, &headers).is_err(), "a tampered body does not verify");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "connection.created");
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["status"], "active");
    assert!(event["timestamp"].is_string());
    assert!(!String::from_utf8_lossy(&body).contains("at-1"), "no token in events");
    let webhook_id = headers["webhook-id"].to_str().unwrap().to_owned();

    // The grant dies at the provider: connection.needs_reauthorization, with the status change.
    fake.with(|s| s.script.push_back(Scripted::json(400, json!({"error": "invalid_grant"}))));
    let (_, r) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(r["error"], "needs_reauthorization");
    receiver.wait_for(2).await;
    assert_eq!(receiver.bodies()[1]["data"]["status"], "needs_reauthorization");
    // Reconnecting the same account: connection.reauthorized; deleting: connection.deleted.
    app.connect_flow("alice", "acme").await;
    send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{id}"))).await;
    receiver.wait_for(4).await;
    assert_eq!(
        receiver.types(),
        ["connection.created", "connection.needs_reauthorization", "connection.reauthorized", "connection.deleted"]
    );

    // Polling offers the same events, in order, from any point.
    let (_, all) = app.get("/v1/events").await;
    let polled: Vec<&str> = all["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(polled, receiver.types());
    assert_eq!(all["data"][0]["id"], webhook_id.as_str(), "webhook-id is the event id");
    let (_, after) = app.get(&format!("/v1/events?after={webhook_id}&limit=2")).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 2);
    assert_eq!(after["data"][0]["type"], "connection.needs_reauthorization");
    assert!(after["next_cursor"].is_string());
    assert_error(&app.get("/v1/events?after=evt_nope").await, 404, "event_not_found");
    let bad_limit = app.get("/v1/events?limit=0").await;
    assert_error(&bad_limit, 422, "invalid_request");
    assert_eq!(bad_limit.1["error"]["field"], "limit");
});

both!(a_receiver_that_was_down_gets_everything_in_order, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let receiver = Receiver::start().await;
    *receiver.up.lock().unwrap() = false;
    let created = endpoint(&app, &receiver.url, Some(vec!["connection.created", "connection.deleted"])).await;
    let a = app.connect_flow("alice", "acme").await.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let b = app.connect_flow("bob", "acme").await.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{a}"))).await;
    let failing = wait_until(Duration::from_secs(10), || async {
        app.get("/v1/webhook-endpoints").await.1["data"][0]["failing_attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert!(failing);
    let (_, list) = app.get("/v1/webhook-endpoints").await;
    assert_eq!(list["data"][0]["last_error"], "HTTP 503");
    // Back up; the retry is due after its back-off.
    *receiver.up.lock().unwrap() = true;
    app.state.clock.advance(10);
    receiver.wait_for(3).await;
    let got = receiver.bodies();
    let seen: Vec<(&str, &str)> =
        got.iter().map(|e| (e["type"].as_str().unwrap(), e["data"]["id"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [("connection.created", a.as_str()), ("connection.created", b.as_str()), ("connection.deleted", a.as_str())]
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(receiver.got.lock().unwrap().len(), 3, "each event once");
    let ids: Vec<String> =
        receiver.got.lock().unwrap().iter().map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
    let _ = created;
});

both!(rotation_give_up_and_resend, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let receiver = Receiver::start().await;
    let created = endpoint(&app, &receiver.url, None).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = app.post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    app.seed(Seed::default()).await;
    let row = app.state.store.connections_of_user("alice", "").await.unwrap().remove(0);
    crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{}", row.id))).await;
    receiver.wait_for(1).await;
    let (headers, body) = receiver.got.lock().unwrap()[0].clone();
    // During the overlap both secrets sign.
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret).unwrap().verify(&body, &headers).expect("verifies with either secret");
    }

    // Down for more than 24 hours: the event is given up, listed, and can be re-sent.
    *receiver.up.lock().unwrap() = false;
    app.seed(Seed { user_id: "bob", ..Seed::default() }).await;
    let row = app.state.store.connections_of_user("bob", "").await.unwrap().remove(0);
    crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{}", row.id))).await;
    let failed_once = wait_until(Duration::from_secs(10), || async {
        app.get("/v1/webhook-endpoints").await.1["data"][0]["failing_attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    assert!(failed_once);
    app.state.clock.advance(25 * 3600);
    let given_up = wait_until(Duration::from_secs(10), || async {
        app.get(&format!("/v1/webhook-endpoints/{id}/failures")).await.1["data"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    })
    .await;
    assert!(given_up, "the event was not given up after 24 hours");
    let (_, failures) = app.get(&format!("/v1/webhook-endpoints/{id}/failures")).await;
    let failure = failures["data"][0]["id"].as_str().unwrap().to_owned();
    *receiver.up.lock().unwrap() = true;
    let (status, _) = app.post(&format!("/v1/webhook-endpoints/{id}/failures/{failure}/resend"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(receiver.got.lock().unwrap().len(), 2);
    let (_, failures) = app.get(&format!("/v1/webhook-endpoints/{id}/failures")).await;
    assert!(failures["data"][0]["resent_at"].is_string());
    assert_eq!(send(app.host(reqwest::Method::DELETE, &format!("/v1/webhook-endpoints/{id}"))).await.0, 204);
    assert_error(
        &send(app.host(reqwest::Method::DELETE, &format!("/v1/webhook-endpoints/{id}"))).await,
        404,
        "webhook_endpoint_not_found",
    );
});

both!(private_targets_are_refused, |backend| async move {
    let app = TestApp::start_with(backend, |c| c.allow_private_webhook_targets = false).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "ftp://example.com/",
        "https://user:pw@example.com/",
    ] {
        let r = app.post("/v1/webhook-endpoints", json!({"url": url})).await;
        assert_error(&r, 422, "invalid_request");
        assert_eq!(r.1["error"]["field"], "url", "{url}");
    }
    let r = app
        .post("/v1/webhook-endpoints", json!({"url": "https://127.0.0.1/x", "events": ["connection.exploded"]}))
        .await;
    assert_error(&r, 422, "invalid_request");
});

both!(building_the_state_starts_no_worker_and_serving_does, |backend| async move {
    let mut app = TestApp::start(backend).await;
    let receiver = Receiver::start().await;
    endpoint(&app, &receiver.url, None).await;
    app.stop().await;
    let event = latch_server::store::events::NewEvent {
        id: latch_server::store::new_id("evt"),
        kind: "connection.deleted".into(),
        connection_id: None,
        created_at: app.state.clock.unix(),
        data: "{}".into(),
    };
    app.state.store.insert_event(&event).await.unwrap();
    // What a one-shot command (`latch keys rotate`, `latch secret add`) does: build, work, exit.
    let one_shot = latch_server::AppState::build(app.state.config.clone(), Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(receiver.types().is_empty(), "a state that is only built delivers nothing");
    // Serving it starts the deliverer, and stopping the server stops it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(latch_server::serve(listener, one_shot, async {
        let _ = stopped.await;
    }));
    receiver.wait_for(1).await;
    assert_eq!(receiver.types(), ["connection.deleted"]);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server).await.unwrap().unwrap().unwrap();
});

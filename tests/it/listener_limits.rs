//! The listener and request limits: a slow-loris client is cut off at the header deadline, a
//! request that runs too long answers `408 request_timeout` (its refresh still finishes), one
//! over the concurrency cap answers `503 server_busy` at once, and connections over the cap wait.

use crate::harness::{Seed, TestApp, both, wait_until};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

both!(a_slow_loris_client_is_cut_off, |backend| async move {
    let app = TestApp::start_with(backend, |c| c.http.header_read_timeout_seconds = 1).await;
    let mut slow = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n").await.unwrap();
    // Real requests are served meanwhile.
    assert_eq!(app.http.get(format!("{}/healthz", app.url)).send().await.unwrap().status(), 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    let answer = String::from_utf8_lossy(&rest);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
});

both!(a_request_over_time_is_408_and_its_refresh_still_finishes, |backend| async move {
    let (app, fake) = TestApp::with_fake_configured(backend, |c| {
        c.http.request_timeout_seconds = 1;
        c.refresh_caller_wait_ms = 5000;
    })
    .await;
    fake.with(|s| {
        s.current_refresh_token = Some("rt-default".into());
        s.hold_ms = 2500;
    });
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    let r = app.host(reqwest::Method::POST, "/v1/access-token").json(&json!({"user_id": "alice", "provider": "acme"}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 408);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    let finished = wait_until(Duration::from_secs(5), || async {
        app.state.store.connection(&row.id).await.unwrap().unwrap().version > row.version
    })
    .await;
    assert!(finished, "the refresh was cut with the request");
    fake.with(|s| s.hold_ms = 0);
    let (_, again) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(again["access_token"], "at-1", "{again}");
});

both!(requests_over_the_concurrency_cap_are_refused_at_once, |backend| async move {
    let (app, fake) = TestApp::with_fake_configured(backend, |c| c.http.max_concurrent_requests = 1).await;
    fake.with(|s| {
        s.current_refresh_token = Some("rt-default".into());
        s.hold_ms = 1000;
    });
    app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    let slow =
        app.host(reqwest::Method::POST, "/v1/access-token").json(&json!({"user_id": "alice", "provider": "acme"}));
    let slow = tokio::spawn(slow.send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let busy = app.host(reqwest::Method::GET, "/v1/providers").send().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(500), "refused at once, not queued");
    assert!(busy.headers().contains_key("retry-after"));
    assert_eq!(busy.json::<Value>().await.unwrap()["error"]["code"], "server_busy");
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(app.host(reqwest::Method::GET, "/v1/providers").send().await.unwrap().status(), 200);
});

both!(connections_over_the_cap_wait_their_turn, |backend| async move {
    let app = TestApp::start_with(backend, |c| c.http.max_connections = 1).await;
    let idle = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    let waited = fresh().get(format!("{}/healthz", app.url)).send().await;
    assert!(waited.is_err_and(|e| e.is_timeout()), "a second connection was served beyond the cap");
    drop(idle);
    let served = wait_until(Duration::from_secs(5), || async {
        fresh().get(format!("{}/healthz", app.url)).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served, "the queued connection was never served");
});

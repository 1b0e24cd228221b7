//! The outbox and webhook delivery under faults: a transaction that commits late, a delivery
//! worker that overran its lease, an endpoint that never answers.

use crate::harness::db::{Backend, postgres_available};
use crate::harness::{Seed, TestApp, both, send, wait_until};
use crate::webhooks::Receiver;
use latch_server::store::events::Position;
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::time::{Duration, Instant};

async fn endpoint(app: &TestApp, url: &str) -> String {
    let (status, created) = app.post("/v1/webhook-endpoints", json!({"url": url})).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn delete_connection_of(app: &TestApp, user: &str) -> String {
    let row = app.seed(Seed { user_id: user, ..Seed::default() }).await;
    let (status, _) = send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{}", row.id))).await;
    assert_eq!(status, 204);
    row.id
}

fn polled_ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// PostgreSQL only: SQLite has one writer at a time, so its commit order is its `seq` order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_that_commits_late_is_not_skipped() {
    if !postgres_available() {
        return;
    }
    let (app, _fake) = TestApp::with_fake(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    endpoint(&app, &receiver.url).await;
    // T1 writes an event (taking the lower sequence number) and stays open.
    let mut held = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut t1 = held.begin().await.unwrap();
    let early = latch_server::store::new_id("evt");
    sqlx::query("INSERT INTO events (id, type, connection_id, created_at, data) VALUES ($1, 'connection.deleted', NULL, $2, '{}')")
        .bind(&early)
        .bind(app.state.clock.unix())
        .execute(&mut *t1)
        .await
        .unwrap();
    // T2 commits an event meanwhile.
    let late = delete_connection_of(&app, "bob").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Nobody reads past T1 while it may still commit: neither the worker nor a poller.
    assert!(receiver.got.lock().unwrap().is_empty(), "delivered past an event that may still commit");
    assert!(polled_ids(&app.get("/v1/events").await.1).is_empty());
    t1.commit().await.unwrap();
    receiver.wait_for(2).await;
    let delivered: Vec<String> =
        receiver.got.lock().unwrap().iter().map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned()).collect();
    let polled = polled_ids(&app.get("/v1/events").await.1);
    assert_eq!(delivered.len(), 2, "both events delivered: {delivered:?}");
    assert_eq!(delivered, polled, "every reader sees one order");
    assert_eq!(delivered[0], early);
    let body: Value = serde_json::from_slice(&receiver.got.lock().unwrap()[1].1).unwrap();
    assert_eq!(body["data"]["id"], late.as_str());
    // Paging from the first event gives the second.
    let (_, after) = app.get(&format!("/v1/events?after={early}")).await;
    assert_eq!(polled_ids(&after), [polled[1].clone()]);
}

both!(a_delivery_worker_that_overran_its_lease_changes_nothing, |backend| async move {
    let app = TestApp::start(backend).await;
    let store = &app.state.store;
    // Stop the worker from taking the endpoint: a receiver that is not there.
    let id = endpoint(&app, "http://127.0.0.1:9/hook").await;
    let now = app.state.clock.unix();
    // Take the lease before the background worker does (it may already hold it: wait it out).
    let taken = wait_until(Duration::from_secs(3), || async {
        store.lease_endpoint(&id, "first", now, now + 60).await.unwrap()
    })
    .await;
    assert!(taken);
    // The first worker overran; a second one took the endpoint.
    assert!(store.lease_endpoint(&id, "second", now + 61, now + 121).await.unwrap());
    assert!(!store.advance_endpoint(&id, "first", Position { xid: 0, seq: 99 }).await.unwrap());
    store.endpoint_attempt_failed(&id, "first", 7, now, now + 5, "late").await.unwrap();
    store.release_endpoint(&id, "first").await.unwrap();
    let row = store.endpoint(&id).await.unwrap().unwrap();
    assert_eq!((row.delivered_seq, row.attempts), (0, 0), "the late worker moved nothing");
    assert!(!store.lease_endpoint(&id, "third", now + 62, now + 122).await.unwrap(), "the second lease stands");
    assert!(store.advance_endpoint(&id, "second", Position { xid: 0, seq: 1 }).await.unwrap());
});

/// A receiver that accepts connections and never answers.
async fn dead_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

both!(a_dead_endpoint_does_not_delay_the_others, |backend| async move {
    let app = TestApp::start(backend).await;
    endpoint(&app, &dead_receiver().await).await;
    let receiver = Receiver::start().await;
    endpoint(&app, &receiver.url).await;
    let started = Instant::now();
    delete_connection_of(&app, "alice").await;
    receiver.wait_for(1).await;
    assert!(started.elapsed() < Duration::from_secs(4), "the healthy endpoint waited {:?}", started.elapsed());
    delete_connection_of(&app, "bob").await;
    receiver.wait_for(2).await;
    assert!(started.elapsed() < Duration::from_secs(6), "the healthy endpoint waited {:?}", started.elapsed());
});

both!(a_name_that_rebinds_to_a_private_address_is_refused_when_connecting, |backend| async move {
    let app = TestApp::start_with(backend, |c| c.allow_private_webhook_targets = false).await;
    // An endpoint whose name resolved to a public address when it was created and resolves to
    // loopback now (DNS rebinding): stored directly, as creation would have let it through.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let id = latch_server::store::new_id("whe");
    let secret = latch_server::events::webhooks::new_secret();
    let sealed = app.state.vault.seal_str(latch_server::vault::Sealed::WebhookSecret.slot(&id), &secret);
    let url = format!("https://localhost:{port}/hook");
    app.state.store.insert_endpoint(&id, &url, "", &sealed, app.state.clock.unix()).await.unwrap();
    delete_connection_of(&app, "alice").await;
    let failed = wait_until(Duration::from_secs(10), || async {
        app.state.store.endpoint(&id).await.unwrap().unwrap().attempts >= 1
    })
    .await;
    assert!(failed, "the delivery was not attempted");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "connected to a refused address");
});

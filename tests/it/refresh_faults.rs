//! The refresh protocol under ordinary faults: a caller that hangs up (also on a code exchange or
//! a delete with revocation), a holder that overran its lease, a reconnect that lands
//! mid-refresh, a provider that fails, hangs or revokes everything.
//! Each test reproduces the fault first; see ARCHITECTURE.md's refresh walkthrough.

use crate::harness::fake_provider::Scripted;
use crate::harness::{Seed, TestApp, assert_error, both, wait_until};
use latch_server::activity::{Action, Actor, Entry};
use latch_server::store::activity::ActivityFilter;
use latch_server::store::connections::{Chain, ConnectionRow, RefreshedTokens};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn ask(user: &str) -> Value {
    json!({"user_id": user, "provider": "acme"})
}

/// Posts an access-token request with a client that gives up after `ms` milliseconds.
async fn hang_up_after(app: &TestApp, ms: u64, body: Value) {
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(ms)).build().unwrap();
    let sent =
        impatient.post(format!("{}/v1/access-token", app.url)).bearer_auth(&app.api_key).json(&body).send().await;
    assert!(sent.is_err_and(|e| e.is_timeout()), "the caller was meant to hang up first");
}

both!(a_caller_that_hangs_up_does_not_cost_the_grant, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| {
        s.current_refresh_token = Some("rt-default".into());
        s.hold_ms = 2000; // rotates at once, answers 2 s later
    });
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    hang_up_after(&app, 300, ask("alice")).await;
    // The refresh goes on without its caller and commits the rotated token.
    let committed = wait_until(Duration::from_secs(5), || async {
        app.state.store.connection(&row.id).await.unwrap().unwrap().version > row.version
    })
    .await;
    assert!(committed, "the refresh did not outlive its caller");
    fake.with(|s| s.hold_ms = 0);
    let (status, body) = app.post("/v1/access-token", ask("alice")).await;
    assert_eq!((status, body["active"].as_bool(), body["access_token"].as_str()), (200, Some(true), Some("at-1")));
    // The grant is alive: the stored refresh token is the rotated one.
    let (_, again) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    // On a loaded machine the caller may be answered with the still-valid token before the
    // refresh lands (refresh_caller_wait_ms); the refresh itself goes on and must succeed.
    assert!(again["access_token"] == "at-2" || again["access_token"] == "at-1", "{again}");
    let refreshed = wait_until(Duration::from_secs(5), || async {
        app.post("/v1/access-token", ask("alice")).await.1["access_token"] == "at-2"
    })
    .await;
    assert!(refreshed, "the forced refresh presented the rotated token and stored at-2");
    assert_eq!(fake.token_calls(), 2, "no reuse of a spent refresh token");
    assert_eq!(app.state.store.connection(&row.id).await.unwrap().unwrap().status, "active");
});

both!(a_caller_that_hangs_up_against_oidc_provider, |backend| async move {
    let (app, oidc) = crate::oidc_flow::setup(backend).await;
    let run = app.connect_flow("alice", "oidc").await;
    assert_eq!(run.message.as_ref().unwrap()["type"], "connected", "{}", run.page);
    let forced = json!({"user_id": "alice", "provider": "oidc", "force_refresh": true});
    oidc.hold(2000).await;
    hang_up_after(&app, 300, forced.clone()).await;
    let rotated = wait_until(Duration::from_secs(6), || async { oidc.stats().await["refresh_token"] == 1 }).await;
    assert!(rotated);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    oidc.hold(0).await;
    let (_, body) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc"})).await;
    assert_eq!(body["active"], true, "{body}");
    // The rotated refresh token was stored: another rotation works and nothing was reused.
    let (_, again) = app.post("/v1/access-token", forced).await;
    assert_eq!(again["active"], true, "{again}");
    let stats = oidc.stats().await;
    assert_eq!((stats["refresh_token"].as_i64(), stats["errors"].as_i64()), (Some(2), Some(0)), "{stats}");
    assert_eq!(stats["revoked_grants"], 0, "the grant is alive at the provider");
});

both!(writes_under_a_lease_are_fenced, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let store = &app.state.store;
    let row = app.seed(Seed::default()).await;
    let now = app.state.clock.unix();
    assert!(store.take_refresh_lease(&row.id, row.version, "first", now, now + 15).await.unwrap());
    // The first holder overran: its lease expired and a second holder took it.
    assert!(store.take_refresh_lease(&row.id, row.version, "second", now + 20, now + 35).await.unwrap());
    let tokens = |at: &str| RefreshedTokens {
        access_token: app.state.vault.seal_str(latch_server::vault::Sealed::AccessToken.slot(&row.id), at),
        refresh_token: None,
        token_type: "bearer".into(),
        expires_at: Some(now + 3600),
        scopes: None,
    };
    let trail =
        |holder: &str| Entry::new(now, &Actor::ApiKey(holder.into()), Action::Refreshed).connection(&row).into_row();
    assert!(
        store
            .store_refreshed_tokens(
                &row.id,
                Chain::Primary,
                row.version,
                "first",
                &tokens("at-late"),
                now,
                &trail("first")
            )
            .await
            .unwrap()
            .is_none()
    );
    store.release_refresh_lease(&row.id, "first").await.unwrap();
    let flipped = store
        .set_connection_status(
            &row.id,
            row.version,
            Some("first"),
            latch_shared::ConnectionStatus::NeedsReauthorization,
            now,
            None,
        )
        .await;
    assert!(!flipped.unwrap());
    let current = store.connection(&row.id).await.unwrap().unwrap();
    assert_eq!(
        (current.refresh_attempt.as_deref(), current.status.as_str(), current.version),
        (Some("second"), "active", row.version),
        "the late holder changed nothing"
    );
    store.write_usage(&[], &[(&row.id, now - 5, "key-used")]).await.unwrap();
    let written = store
        .store_refreshed_tokens(
            &row.id,
            Chain::Primary,
            row.version,
            "second",
            &tokens("at-second"),
            now,
            &trail("second"),
        )
        .await
        .unwrap()
        .expect("the holder's write lands");
    // The row it returns is the row as stored, usage included.
    let stored = store.connection(&row.id).await.unwrap().unwrap();
    assert_eq!(
        (written.version, &written.refresh_attempt, &written.access_token, written.last_used_at, &written.last_used_by),
        (row.version + 1, &None, &stored.access_token, Some(now - 5), &Some("key-used".to_owned()))
    );
    assert_eq!(
        (written.version, written.refresh_attempt, written.access_token, written.last_used_at, written.last_used_by),
        (stored.version, stored.refresh_attempt, stored.access_token, stored.last_used_at, stored.last_used_by)
    );
    // The trail entry commits with the tokens: the late holder's write left none.
    let filter =
        ActivityFilter { connection_id: Some(&row.id), user_id: None, provider: None, before: None, limit: 50 };
    let refreshed: Vec<String> = store
        .list_activity(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == Action::Refreshed)
        .map(|e| e.actor_name)
        .collect();
    assert_eq!(refreshed, ["second"]);
});

both!(a_reconnect_during_a_refresh_wins_without_a_false_failure, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    // The old grant was revoked by the reconnect: the provider rejects its refresh token, late.
    fake.with(|s| {
        s.hold_ms = 800;
        s.script.push_back(Scripted::json(400, json!({"error": "invalid_grant"})));
    });
    let pending = {
        let (http, url, key) = (app.http.clone(), app.url.clone(), app.api_key.clone());
        tokio::spawn(async move {
            let r = http.post(format!("{url}/v1/access-token")).bearer_auth(key).json(&ask("alice")).send().await;
            r.unwrap().json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = app.state.clock.unix();
    let vault = &app.state.vault;
    let reconnected = ConnectionRow {
        access_token: Some(vault.seal_str(latch_server::vault::Sealed::AccessToken.slot(&row.id), "at-reconnected")),
        refresh_token: Some(vault.seal_str(latch_server::vault::Sealed::RefreshToken.slot(&row.id), "rt-reconnected")),
        access_token_expires_at: Some(now + 3600),
        updated_at: now,
        ..row.clone()
    };
    app.state.store.replace_grant(&reconnected, None).await.unwrap();
    let answer = pending.await.unwrap();
    assert_eq!(
        (answer["active"].as_bool(), answer["access_token"].as_str()),
        (Some(true), Some("at-reconnected")),
        "{answer}"
    );
    assert_eq!(app.state.store.connection(&row.id).await.unwrap().unwrap().status, "active");
    let trail = app.activity(&format!("connection_id={}", row.id)).await;
    assert!(!trail.iter().any(|e| e["action"] == "refresh_failed"), "no false refresh_failed: {trail:?}");
});

/// Fires `n` concurrent access-token requests; returns the answers and how long the last took.
async fn storm(app: &TestApp, n: usize, body: Value) -> (Vec<(u16, Value, Option<String>)>, Duration) {
    let started = Instant::now();
    let calls = (0..n).map(|_| async {
        let r = app.host(reqwest::Method::POST, "/v1/access-token").json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (status, r.json::<Value>().await.unwrap_or(Value::Null), retry)
    });
    let answers = futures::future::join_all(calls).await;
    (answers, started.elapsed())
}

both!(fifty_callers_on_a_failing_provider_make_at_most_three_calls, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| (0..200).for_each(|_| s.script.push_back(Scripted::json(500, json!({"error": "server_error"})))));
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    let (answers, took) = storm(&app, 50, ask("alice")).await;
    assert!(took < Duration::from_secs(2), "all 50 answered within 2 s, took {took:?}");
    for (status, body, retry) in &answers {
        assert_eq!((*status, body["error"]["code"].as_str()), (503, Some("provider_unavailable")), "{body}");
        assert!(retry.as_deref().is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s >= 1)), "Retry-After: {retry:?}");
    }
    assert!(fake.token_calls() <= 3, "{} provider calls for one connection", fake.token_calls());
    assert_eq!(app.state.store.connection(&row.id).await.unwrap().unwrap().status, "active");
});

both!(fifty_callers_on_a_failing_oidc_provider, |backend| async move {
    let (app, oidc) = crate::oidc_flow::setup_with_ttl(backend, 2).await;
    let run = app.connect_flow("alice", "oidc").await;
    assert_eq!(run.message.as_ref().unwrap()["type"], "connected", "{}", run.page);
    tokio::time::sleep(Duration::from_millis(2500)).await; // the access token has expired
    oidc.fail_next(1000).await;
    let (answers, took) = storm(&app, 50, json!({"user_id": "alice", "provider": "oidc"})).await;
    assert!(took < Duration::from_secs(2), "all 50 answered within 2 s, took {took:?}");
    assert!(answers.iter().all(|(status, body, _)| *status == 503 && body["error"]["code"] == "provider_unavailable"));
    let stats = oidc.stats().await;
    assert!(stats["injected_failures"].as_i64().unwrap() <= 3, "{stats}");
    // Recovery, once the back-off is over, on the same grant.
    oidc.fail_next(0).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, body) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc"})).await;
    assert_eq!(body["active"], true, "{body}");
    let stats = oidc.stats().await;
    assert_eq!((stats["refresh_token"].as_i64(), stats["errors"].as_i64()), (Some(1), Some(0)), "{stats}");
});

/// A provider that accepts connections and never answers; counts them.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

both!(a_black_holed_provider_keeps_the_bound, |backend| async move {
    let (hole, accepted) = black_hole().await;
    let provider = TestApp::provider("acme", &hole, "");
    let app = TestApp::start_with(backend, |c| c.providers = vec![provider]).await;
    app.set_client_secret("acme", "acme-client-secret").await;
    app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    let (answers, took) = storm(&app, 50, ask("alice")).await;
    assert!(took < Duration::from_secs(3), "answered within the caller wait, took {took:?}");
    assert!(answers.iter().all(|(status, body, _)| *status == 503 && body["error"]["code"] == "provider_unavailable"));
    // Later callers share the same refresh in flight.
    let (again, _) = storm(&app, 10, ask("alice")).await;
    assert!(again.iter().all(|(status, _, _)| *status == 503));
    assert!(accepted.load(Ordering::SeqCst) <= 3, "{} connections to the provider", accepted.load(Ordering::SeqCst));
    // A still-valid token is served at once however dead the provider is.
    app.seed(Seed { user_id: "bob", access_token: "at-bob", expires_in: Some(30), ..Seed::default() }).await;
    let (status, body) = app.post("/v1/access-token", ask("bob")).await;
    assert_eq!((status, body["access_token"].as_str()), (200, Some("at-bob")), "{body}");
});

both!(the_circuit_opens_holds_back_and_recovers, |backend| async move {
    let (app, fake) = TestApp::with_fake_configured(backend, |c| {
        c.provider_health.breaker_failures = 2;
        c.provider_health.breaker_open_seconds = 30;
    })
    .await;
    fake.with(|s| (0..10).for_each(|_| s.script.push_back(Scripted::json(503, json!({"error": "unavailable"})))));
    app.seed(Seed { expires_in: Some(-10), refresh_token: Some("rt-a"), ..Seed::default() }).await;
    app.seed(Seed { user_id: "bob", expires_in: Some(-10), refresh_token: Some("rt-b"), ..Seed::default() }).await;
    assert_error(&app.post("/v1/access-token", ask("alice")).await, 503, "provider_unavailable");
    assert_eq!(fake.token_calls(), 2, "the second failure opens the circuit: no third attempt");
    let (_, providers) = app.get("/v1/providers").await;
    assert_eq!(providers["data"][0]["circuit"], "open", "{providers}");
    // Another connection of the same provider is answered at once, with no provider call.
    let held = app.host(reqwest::Method::POST, "/v1/access-token").json(&ask("bob")).send().await.unwrap();
    assert_eq!(held.status(), 503);
    let retry: u32 = held.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((20..=30).contains(&retry), "Retry-After is the circuit's cool-down: {retry}");
    assert_eq!(fake.token_calls(), 2);
    let trail = app.activity("provider=acme").await;
    assert!(trail.iter().any(|e| e["action"] == "circuit_opened"), "{trail:?}");
    // After the cool-down one probe goes through; it succeeds and closes the circuit.
    fake.with(|s| {
        s.script.clear();
        s.live_refresh_tokens.insert("rt-c".to_owned());
    });
    app.seed(Seed { user_id: "carol", expires_in: Some(-10), refresh_token: Some("rt-c"), ..Seed::default() }).await;
    app.state.clock.advance(31);
    let (status, body) = app.post("/v1/access-token", ask("carol")).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}");
    assert_eq!(app.get("/v1/providers").await.1["data"][0]["circuit"], "closed");
    assert!(app.activity("provider=acme").await.iter().any(|e| e["action"] == "circuit_closed"));
});

both!(a_provider_that_revokes_every_grant_is_an_incident, |backend| async move {
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| c.provider_health.incident_invalid_grants = 3).await;
    // No refresh token is live at the provider: it answers invalid_grant to every refresh.
    let mut ids = Vec::new();
    for i in 0..10 {
        let user = format!("user-{i}");
        ids.push(app.seed(Seed { user_id: &user, expires_in: Some(-10), ..Seed::default() }).await.id);
    }
    for i in 0..10 {
        let r = app.post("/v1/access-token", ask(&format!("user-{i}"))).await;
        if i < 3 {
            assert_eq!(r.1["error"], "needs_reauthorization", "{r:?}");
        } else {
            assert_error(&r, 503, "provider_unavailable");
        }
    }
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(app.state.store.connection(id).await.unwrap().unwrap().status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == "needs_reauthorization").count(), 3, "{statuses:?}");
    let incidents: Vec<_> =
        app.activity("provider=acme").await.into_iter().filter(|e| e["action"] == "provider_incident").collect();
    assert_eq!(incidents.len(), 1, "one provider-level incident");
    assert!(incidents[0]["connection_id"].is_null());
});

both!(a_browser_that_hangs_up_on_the_callback_loses_nothing, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (flow_id, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = crate::harness::browser::Browser::new();
    let (_, to_provider, _) = browser.start(&authorize).await;
    let (_, to_callback, _) = browser.get(&to_provider.unwrap()).await;
    // The code exchange is answered late; the browser gives up first.
    fake.with(|s| s.hold_ms = 2000);
    let gave_up = browser.http.get(to_callback.unwrap()).timeout(Duration::from_millis(300)).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let connected = wait_until(Duration::from_secs(6), || async {
        let (_, flow) = app.widget(reqwest::Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
        flow["status"] == "connected"
    })
    .await;
    assert!(connected, "the flow was left in the middle of its code exchange");
    assert_eq!(app.state.store.connections_of_user("alice", "").await.unwrap().len(), 1);
});

both!(a_caller_that_hangs_up_on_delete_with_revoke_loses_nothing, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    fake.with(|s| s.hold_ms = 2000);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let gave_up = impatient
        .delete(format!("{}/v1/connections/{}?revoke=true", app.url, row.id))
        .bearer_auth(&app.api_key)
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let deleted =
        wait_until(Duration::from_secs(6), || async { app.state.store.connection(&row.id).await.unwrap().is_none() })
            .await;
    assert!(deleted, "revoked at the provider but still here");
    assert_eq!(fake.with(|s| s.revoke_calls.len()), 1);
    // The `deleted` entry is written just after the row is gone.
    let query = format!("connection_id={}", row.id);
    wait_until(Duration::from_secs(3), || async { app.activity(&query).await.len() >= 2 }).await;
    let trail = app.activity(&query).await;
    let actions: Vec<&str> = trail.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["deleted", "revoked"], "{trail:?}");
});

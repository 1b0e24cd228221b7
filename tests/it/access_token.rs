//! `POST /v1/access-token`: fresh tokens without writes, refresh when expiring, and each failure
//! classified the way a host app can act on.

use crate::harness::fake_provider::Scripted;
use crate::harness::{Seed, TestApp, assert_error, both, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

/// `{"active":false,"error":"needs_reauthorization",connection_id,reconnect_url}` where the URL
/// is the hosted widget page with a widget token for that user and provider only.
async fn assert_reauth(app: &TestApp, r: &(u16, Value), id: &str) {
    assert_eq!(r.0, 200);
    assert_eq!(
        (r.1["active"].as_bool(), r.1["error"].as_str(), r.1["connection_id"].as_str()),
        (Some(false), Some("needs_reauthorization"), Some(id))
    );
    let url = r.1["reconnect_url"].as_str().unwrap();
    let token = url.strip_prefix(&format!("{}/connect#token=", app.url)).unwrap_or_else(|| panic!("{url}"));
    let claims = app.state.signer.verify(token, app.state.clock.unix()).await.unwrap();
    let row = app.state.store.connection(id).await.unwrap().unwrap();
    assert_eq!((claims.sub, claims.providers), (row.user_id, vec![row.provider]));
}

fn ask(user: &str) -> Value {
    json!({"user_id": user, "provider": "acme"})
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.state.store.connection(id).await.unwrap().unwrap().status.to_string()
}

both!(fresh_token_and_lookup_rules, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed { access_token: "at-fresh", ..Seed::default() }).await;
    let second = app.seed(Seed { account_id: "acct-2", access_token: "at-second", ..Seed::default() }).await;
    let org = app
        .seed(Seed { organization_id: Some("org1"), account_id: "acct-org", access_token: "at-org", ..Seed::default() })
        .await;

    let (status, body) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "account_id": "acct-1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["access_token"], "at-fresh");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["connection_id"], row.id);
    assert_eq!(body["account_id"], "acct-1");
    assert_eq!(body["scopes"], json!(["read", "write"]));
    assert_eq!(body["missing_scopes"], json!([]));
    assert!(body["expires_at"].is_string());
    assert_eq!(fake.token_calls(), 0);

    let by_id =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "connection_id": second.id})).await;
    assert_eq!(by_id.1["access_token"], "at-second");
    let in_org =
        app.post("/v1/access-token", json!({"user_id": "alice", "organization_id": "org1", "provider": "acme"})).await;
    assert_eq!(in_org.1["access_token"], "at-org");

    // The hot path wrote nothing: usage is flushed later, in the background.
    let after = app.state.store.connection(&row.id).await.unwrap().unwrap();
    assert_eq!((after.version, after.updated_at, after.last_used_at), (row.version, row.updated_at, None));
    let used = wait_until(Duration::from_secs(5), || async {
        app.state.store.connection(&row.id).await.unwrap().unwrap().last_used_at.is_some()
    })
    .await;
    assert!(used, "last_used_at was never flushed");
    let (_, trail) = app.get(&format!("/v1/activity?connection_id={}", row.id)).await;
    assert_eq!(trail["data"][0]["action"], "token_retrieved");
    assert_eq!(trail["data"][0]["actor"]["name"], "test-host");

    // Not installed, and the other user's or organization's connections are out of reach.
    let none = app.post("/v1/access-token", ask("bob")).await;
    assert_eq!(none, (200, json!({"active": false, "error": "not_installed"})));
    let foreign =
        app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme", "connection_id": row.id})).await;
    assert_error(&foreign, 404, "token_not_found");
    let wrong_org = app
        .post(
            "/v1/access-token",
            json!({"user_id": "alice", "organization_id": "org2", "provider": "acme", "connection_id": org.id}),
        )
        .await;
    assert_error(&wrong_org, 404, "token_not_found");
    let wrong_provider =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "plain", "connection_id": row.id})).await;
    assert_error(&wrong_provider, 404, "token_not_found");
    assert_error(
        &app.post("/v1/access-token", json!({"user_id": "alice", "provider": "nope"})).await,
        404,
        "provider_not_found",
    );

    let reauth = app.seed(Seed { user_id: "carol", status: "needs_reauthorization", ..Seed::default() }).await;
    let r = app.post("/v1/access-token", ask("carol")).await;
    assert_reauth(&app, &r, &reauth.id).await;
});

both!(refresh_rotates_and_is_committed, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| s.current_refresh_token = Some("rt-default".into()));
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;

    let (status, body) = app.post("/v1/access-token", ask("alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"], "at-1");
    assert_eq!(fake.token_calls(), 1);
    let call = fake.with(|s| s.token_calls[0].clone());
    assert_eq!(call["grant_type"], "refresh_token");
    assert_eq!(call["refresh_token"], "rt-default");
    assert!(!call.contains_key("client_secret"), "basic auth must not also post the secret");
    let auth = fake.with(|s| s.authorization_headers[0].clone()).unwrap();
    assert!(auth.starts_with("Basic "));

    // The rotated refresh token is what is stored now, and the next call needs no refresh.
    let stored = app.state.store.connection(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert!(stored.last_refreshed_at.is_some());
    assert_eq!(app.post("/v1/access-token", ask("alice")).await.1["access_token"], "at-1");
    assert_eq!(fake.token_calls(), 1);

    // force_refresh refreshes anyway, presenting the rotated token.
    let forced =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(forced.1["access_token"], "at-2");
    assert_eq!(fake.with(|s| s.token_calls[1]["refresh_token"].clone()), "rt-at-1");

    // A provider that does not rotate: the stored refresh token is kept.
    fake.with(|s| s.no_rotation = true);
    let forced =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(forced.1["access_token"], "at-3");
    let forced =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(forced.1["access_token"], "at-4", "{forced:?}");
    assert_eq!(fake.with(|s| s.token_calls[3]["refresh_token"].clone()), "rt-at-2");

    let (_, trail) = app.get(&format!("/v1/activity?connection_id={}", row.id)).await;
    assert!(trail["data"].as_array().unwrap().iter().any(|e| e["action"] == "refreshed"));
});

both!(concurrent_callers_share_one_refresh, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| {
        s.current_refresh_token = Some("rt-default".into());
        s.delay_ms = 200;
    });
    app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    let calls = (0..50).map(|_| app.post("/v1/access-token", ask("alice")));
    let results = futures::future::join_all(calls).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"], "at-1");
    }
    assert_eq!(fake.token_calls(), 1, "exactly one refresh at the provider");
});

both!(dead_grant_needs_reauthorization, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    fake.with(|s| {
        s.script.push_back(Scripted::json(
            400,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
    });
    let r = app.post("/v1/access-token", ask("alice")).await;
    assert_reauth(&app, &r, &row.id).await;
    assert_eq!(status_of(&app, &row.id).await, "needs_reauthorization");
    assert_eq!(app.post("/v1/access-token", ask("alice")).await.1["error"], "needs_reauthorization");
    assert_eq!(fake.token_calls(), 1, "a dead grant is not retried");
    let (_, trail) = app.get(&format!("/v1/activity?connection_id={}", row.id)).await;
    let failed = trail["data"].as_array().unwrap().iter().find(|e| e["action"] == "refresh_failed").unwrap();
    assert_eq!(failed["error_code"], "needs_reauthorization");
    assert_eq!(failed["outcome"], "failure");
});

both!(expired_without_refresh_token, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed { expires_in: Some(-10), refresh_token: None, ..Seed::default() }).await;
    let r = app.post("/v1/access-token", ask("alice")).await;
    assert_eq!(r.1["error"], "needs_reauthorization");
    let (_, trail) = app.get(&format!("/v1/activity?connection_id={}", row.id)).await;
    assert_eq!(trail["data"][0]["error_code"], "no_refresh_token");
});

both!(provider_outage_is_transient, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| s.current_refresh_token = Some("rt-default".into()));
    let valid = app.seed(Seed { access_token: "at-still-valid", ..Seed::default() }).await;
    let html_500 = || Scripted { status: 500, content_type: "text/html", body: "<h1>oops</h1>".into() };
    // One failure is retried away.
    fake.with(|s| s.script.push_back(html_500()));
    let r = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(r.1["access_token"], "at-1", "{r:?}");
    assert_eq!(fake.token_calls(), 2);
    // A longer outage: bounded attempts, then the still-valid token is served.
    fake.with(|s| (0..3).for_each(|_| s.script.push_back(html_500())));
    let r = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(r.1["access_token"], "at-1", "{r:?}");
    assert_eq!(fake.token_calls(), 5, "three attempts at most");
    assert_eq!(status_of(&app, &valid.id).await, "active");

    let expired = app
        .seed(Seed { user_id: "bob", expires_in: Some(-10), refresh_token: Some("rt-bob"), ..Seed::default() })
        .await;
    fake.with(|s| {
        (0..3).for_each(|_| s.script.push_back(Scripted::json(503, json!({"error": "temporarily_unavailable"}))))
    });
    let r = app.post("/v1/access-token", ask("bob")).await;
    assert_error(&r, 503, "provider_unavailable");
    assert_eq!(status_of(&app, &expired.id).await, "active");
    // Callers right behind the failure share it instead of asking the provider again…
    let calls = fake.token_calls();
    assert_error(&app.post("/v1/access-token", ask("bob")).await, 503, "provider_unavailable");
    assert_eq!(fake.token_calls(), calls, "within the back-off, no new provider call");
    // Six failures in a row opened the provider's circuit (five by default)…
    assert_eq!(app.get("/v1/providers").await.1["data"][0]["circuit"], "open");
    // …and recovery needs no intervention once the back-off (at most 2 s) and the circuit's
    // cool-down (30 s, on the injected clock) are over.
    fake.with(|s| {
        s.script.clear();
        s.current_refresh_token = Some("rt-bob".into());
    });
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.state.clock.advance(31);
    let r = app.post("/v1/access-token", ask("bob")).await;
    assert_eq!(r.1["active"], true, "{r:?}");
});

both!(bad_client_credentials_are_the_operators_problem, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed { expires_in: Some(-10), ..Seed::default() }).await;
    fake.with(|s| s.script.push_back(Scripted::json(401, json!({"error": "invalid_client"}))));
    let r = app.post("/v1/access-token", ask("alice")).await;
    assert_error(&r, 503, "provider_misconfigured");
    assert_eq!(status_of(&app, &row.id).await, "active", "a user's grant is not blamed for the app's credentials");
    let (_, trail) = app.get("/v1/activity?provider=acme").await;
    let alert = trail["data"].as_array().unwrap().iter().find(|e| e["error_code"] == "provider_misconfigured").unwrap();
    assert!(alert["connection_id"].is_null(), "provider-level entry");
});

both!(slack_style_ok_false, |backend| async move {
    let fake = crate::harness::fake_provider::FakeProvider::start().await;
    let slack = TestApp::provider("slack", &fake.url, "dialect = \"slack\"\ntoken_auth_method = \"post\"");
    let app = TestApp::start_with(backend, |c| c.providers = vec![slack]).await;
    app.set_client_secret("slack", "slack-secret").await;
    let row = app.seed(Seed { provider: "slack", expires_in: Some(-10), ..Seed::default() }).await;
    fake.with(|s| s.script.push_back(Scripted::json(200, json!({"ok": false, "error": "invalid_refresh_token"}))));
    let r = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "slack"})).await;
    assert_eq!(r.1["error"], "needs_reauthorization", "{r:?}");
    assert_eq!(status_of(&app, &row.id).await, "needs_reauthorization");
    let call = fake.with(|s| s.token_calls[0].clone());
    assert_eq!(call["client_secret"], "slack-secret", "post auth sends the secret in the form");
});

both!(missing_client_secret, |backend| async move {
    let fake = crate::harness::fake_provider::FakeProvider::start().await;
    let p = TestApp::provider("nosecret", &fake.url, "");
    let app = TestApp::start_with(backend, |c| c.providers = vec![p]).await;
    app.seed(Seed { provider: "nosecret", expires_in: Some(-10), ..Seed::default() }).await;
    let r = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "nosecret"})).await;
    assert_error(&r, 503, "missing_client_secret");
    assert_eq!(fake.token_calls(), 0);
});

both!(a_busy_connections_usage_is_written_once_a_window, |backend| async move {
    // The first use in a while is written within a second; later uses are gathered and written
    // at most once per `usage::COALESCE`, so the writes follow how many connections are in use,
    // not how many requests they get.
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let retrievals = || async {
        let trail = app.activity(&format!("connection_id={}", row.id)).await;
        let details: Vec<String> = trail
            .iter()
            .filter(|e| e["action"] == "token_retrieved")
            .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
            .collect();
        let used = app.state.store.connection(&row.id).await.unwrap().unwrap().last_used_at;
        (details, used)
    };
    assert_eq!(app.post("/v1/access-token", ask("alice")).await.0, 200);
    app.state.usage.flush_due(&app.state.store).await;
    let (first, used) = retrievals().await;
    assert_eq!(first, ["retrieved 1 time"], "the first use is written at once");
    assert!(used.is_some());

    for _ in 0..3 {
        assert_eq!(app.post("/v1/access-token", ask("alice")).await.0, 200);
    }
    app.state.usage.flush_due(&app.state.store).await;
    assert_eq!(retrievals().await.0, first, "within the window, nothing more is written");

    app.state.usage.flush(&app.state.store).await;
    let (all, _) = retrievals().await;
    assert_eq!(all, ["retrieved 3 times", "retrieved 1 time"], "a full flush (shutdown) writes the rest, counted");
});

both!(a_write_stales_only_its_owners_cached_rows, |backend| async move {
    use latch_server::store::connections::TokenLookup;
    let (app, fake) = TestApp::with_fake(backend).await;
    let alice = app.seed(Seed::default()).await;
    fake.with(|s| s.live_refresh_tokens.insert("rt-bob".into()));
    app.seed(Seed { user_id: "bob", refresh_token: Some("rt-bob"), ..Seed::default() }).await;
    let lookup = |user| TokenLookup {
        user_id: user,
        organization_id: "",
        provider: "acme",
        account_id: None,
        connection_id: None,
    };
    let cached = |user| app.state.tokens.cache.get(&lookup(user), app.state.store.changes()).is_ok();
    for user in ["alice", "bob"] {
        assert_eq!(app.post("/v1/access-token", ask(user)).await.0, 200);
        assert!(cached(user), "{user}'s row is cached");
    }
    // Bob's token is refreshed (the refresher does this all day long): alice's entry stays warm.
    let forced =
        app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme", "force_refresh": true})).await;
    assert_eq!(forced.1["access_token"], "at-1", "{forced:?}");
    assert!(cached("alice"), "a write to bob's connection emptied alice's cache entry");
    assert!(!cached("bob"), "bob's own entry is stale after his refresh");
    // Alice's connection deleted: her entry is gone at once, and she is not served.
    let (status, _) =
        crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{}", alice.id))).await;
    assert_eq!(status, 204);
    assert!(!cached("alice"));
    assert_eq!(app.post("/v1/access-token", ask("alice")).await.1["error"], "not_installed");
});

both!(usage_is_written_in_multi_row_statements_and_never_moves_back, |backend| async move {
    // More trail entries than one statement carries (200 rows), so full chunks and a remainder
    // run (the uses are one statement: a JSON array on SQLite, three arrays on PostgreSQL); a
    // use older than the stored one leaves `last_used_at` alone.
    use latch_server::store::activity::ActivityRow;
    let (app, _fake) = TestApp::with_fake(backend).await;
    let mut ids = Vec::new();
    for i in 0..450 {
        let user = format!("u{i}");
        ids.push(app.seed(Seed { user_id: &user, ..Seed::default() }).await.id);
    }
    let row = |i: usize, id: &str| ActivityRow {
        id: format!("act_batch_{i:04}"),
        at: 1_000 + i as i64,
        actor_kind: "api_key".into(),
        actor_name: "backend".into(),
        action: latch_shared::activity::Action::TokenRetrieved,
        connection_id: Some(id.to_owned()),
        user_id: Some(format!("u{i}")),
        organization_id: Some(String::new()),
        provider: Some("acme".into()),
        outcome: "success".into(),
        error_code: None,
        detail: Some("retrieved 1 time".into()),
    };
    let rows: Vec<ActivityRow> = ids.iter().enumerate().map(|(i, id)| row(i, id)).collect();
    // A key name that JSON must escape: SQLite's batch travels as one JSON array.
    let key = "back\"end \\ ✓";
    let uses: Vec<(&str, i64, &str)> = ids.iter().map(|id| (id.as_str(), 5_000, key)).collect();
    app.state.store.write_usage(&rows, &uses).await.unwrap();
    let older: Vec<(&str, i64, &str)> = ids.iter().map(|id| (id.as_str(), 4_000, "older")).collect();
    app.state.store.write_usage(&[], &older).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let c = app.state.store.connection(id).await.unwrap().unwrap();
        assert_eq!((c.last_used_at, c.last_used_by.as_deref()), (Some(5_000), Some(key)), "connection {i}");
    }
    for i in [0, 199, 200, 399, 400, 449] {
        let trail = app.activity(&format!("connection_id={}", ids[i])).await;
        let retrieved: Vec<_> = trail.iter().filter(|e| e["action"] == "token_retrieved").collect();
        assert_eq!(retrieved.len(), 1, "entry {i}");
        assert_eq!(retrieved[0]["detail"], "retrieved 1 time");
    }
});

both!(a_connection_deleted_while_its_usage_is_written_costs_no_other_usage, |backend| async move {
    // The usage recorder's batch meets a connection whose delete is still in flight in another
    // transaction. On PostgreSQL the usage row's key check waits for that delete, then finds no
    // connection; the batch must not fail for it (and lose every other connection's usage), and
    // no usage may outlive its connection.
    let (app, _fake) = TestApp::with_fake(backend).await;
    let gone = app.seed(Seed::default()).await;
    let kept = app.seed(Seed { user_id: "bob", ..Seed::default() }).await;
    let held = app.db.hold(&format!("DELETE FROM connections WHERE id = '{}'", gone.id)).await;
    let ids = [gone.id.clone(), kept.id.clone()];
    let store = app.state.store.clone();
    let write =
        tokio::spawn(
            async move { store.write_usage(&[], &ids.each_ref().map(|id| (id.as_str(), 5_000, "backend"))).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.commit().await;
    let written = tokio::time::timeout(Duration::from_secs(10), write).await.unwrap().unwrap();
    written.expect("the batch is written without the deleted connection");
    let c = app.state.store.connection(&kept.id).await.unwrap().unwrap();
    assert_eq!((c.last_used_at, c.last_used_by.as_deref()), (Some(5_000), Some("backend")));
    assert!(app.state.store.connection(&gone.id).await.unwrap().is_none());
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM connection_usage").await, 1, "only the kept connection's usage");
    // A connection deleted later takes its usage with it.
    app.db.execute(&format!("DELETE FROM connections WHERE id = '{}'", kept.id)).await;
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM connection_usage").await, 0);
});

both!(usage_batches_that_share_connections_never_deadlock, |backend| async move {
    // Replicas write usage batches of the same connections (a user's requests spread over them),
    // each in its own order. On PostgreSQL a batch that locks connection B, then waits for A,
    // while another holds A and wants B, is a deadlock: one batch is aborted and its window's
    // usage lost. A transaction holding the first connection's usage row plays the other batch.
    let (app, _fake) = TestApp::with_fake(backend).await;
    let mut ids = [app.seed(Seed::default()).await.id, app.seed(Seed { user_id: "bob", ..Seed::default() }).await.id];
    ids.sort();
    let [first, second] = ids;
    let uses = |at: i64| [second.as_str(), first.as_str()].map(|id| (id, at, "backend"));
    app.state.store.write_usage(&[], &uses(1_000)).await.unwrap();
    // With statistics, as in production: without them PostgreSQL happened to sort the batch
    // (a merge join), which hid the deadlock.
    app.db.execute("ANALYZE connections").await;
    let update = |id: &str| format!("UPDATE connection_usage SET last_used_at = 2000 WHERE connection_id = '{id}'");
    let mut held = app.db.hold(&update(&first)).await;
    let store = app.state.store.clone();
    let batch = [second.clone(), first.clone()];
    let write = tokio::spawn(async move {
        store.write_usage(&[], &batch.each_ref().map(|id| (id.as_str(), 5_000, "backend"))).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.execute(&update(&second)).await;
    held.commit().await;
    let written = tokio::time::timeout(Duration::from_secs(10), write).await.unwrap().unwrap();
    written.expect("the batch waits for the other one instead of deadlocking with it");
    for id in [&first, &second] {
        let c = app.state.store.connection(id).await.unwrap().unwrap();
        assert_eq!((c.last_used_at, c.last_used_by.as_deref()), (Some(5_000), Some("backend")), "{id}");
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_listens_for_changes_before_it_answers() {
    // A change listener that connects after the first answers has missed what happened before
    // it, so it declares every cached row stale: under load this emptied a warm cache (a flaky
    // cache test, the benchmark's warm-up). So a replica listens before it accepts a request.
    use latch_server::store::connections::TokenLookup;
    if !crate::harness::db::postgres_available() {
        return;
    }
    // Every PostgreSQL server this test process starts meanwhile connects its listener late.
    fail::cfg("changes.listen_delay", "return(600)").unwrap();
    let (app, _fake) = TestApp::with_fake(crate::harness::db::Backend::Postgres).await;
    app.seed(Seed::default()).await;
    let answered = app.post("/v1/access-token", ask("alice")).await.0;
    fail::remove("changes.listen_delay");
    assert_eq!(answered, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let lookup =
        TokenLookup { user_id: "alice", organization_id: "", provider: "acme", account_id: None, connection_id: None };
    let cached = app.state.tokens.cache.get(&lookup, app.state.store.changes());
    assert!(cached.is_ok(), "the row cached by the first answer was declared stale: {:?}", cached.err());
}

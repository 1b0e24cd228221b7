//! A deleted connection leaves a tombstone: no secret left in the database's bytes, the row kept
//! for the inventory with who deleted it and what became of its grant, purged after retention.

use crate::harness::cli::Cli;
use crate::harness::{Seed, TestApp, assert_error, both, canary, send, wait_until};
use latch_server::AppState;
use latch_server::clock::Clock;
use latch_server::workers::Workers;
use serde_json::{Value, json};
use std::time::Duration;

/// `DELETE /v1/connections/{path}` as the host, which must succeed.
async fn delete(app: &TestApp, path: &str) {
    let (status, body) = send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{path}"))).await;
    assert_eq!(status, 204, "{body}");
}

async fn inventory(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app.get(&format!("/v1/inventory?{query}")).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

both!(a_deleted_connection_is_a_tombstone_without_secrets, |backend| async move {
    let (mut app, _fake) = TestApp::with_fake(backend).await;
    let (access, refresh) = (canary("AT"), canary("RT"));
    let gone = app.seed(Seed { access_token: &access, refresh_token: Some(&refresh), ..Seed::default() }).await;
    let revoked = app.seed(Seed { account_id: "acct-2", ..Seed::default() }).await;
    let kept = app.seed(Seed { user_id: "bob", ..Seed::default() }).await;
    let sealed = [gone.access_token.clone().unwrap(), gone.refresh_token.clone().unwrap()];
    assert!(app.db.contains_bytes(&sealed[0]).await, "the scan sees a live ciphertext");

    delete(&app, &gone.id).await;
    delete(&app, &format!("{}?revoke=true", revoked.id)).await;

    assert_error(&app.get(&format!("/v1/connections/{}", gone.id)).await, 404, "connection_not_found");
    let live: Vec<String> = inventory(&app, "").await.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(live, std::slice::from_ref(&kept.id), "tombstones are not listed by default");
    let all = inventory(&app, "include_deleted=true").await;
    assert_eq!(all.len(), 3, "{all:?}");
    let tomb = all.iter().find(|e| e["id"] == gone.id.as_str()).unwrap();
    assert_eq!(tomb["status"], "deleted");
    assert_eq!(tomb["deleted_by"], "test-host");
    assert_eq!(tomb["revocation"], "not_requested");
    assert!(tomb["deleted_at"].is_string());
    assert_eq!(
        (&tomb["user_id"], &tomb["account_id"], &tomb["provider"]),
        (&json!("alice"), &json!("acct-1"), &json!("acme"))
    );
    assert_eq!(tomb["scopes"].as_array().unwrap().len(), 2, "what it could do is kept: {tomb}");
    let other = all.iter().find(|e| e["id"] == revoked.id.as_str()).unwrap();
    assert_eq!(other["revocation"], "revoked", "{other}");
    let only: Vec<_> = inventory(&app, "status=deleted").await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(only, [json!("deleted"), json!("deleted")]);
    assert!(inventory(&app, "status=deleted&user_id=bob").await.is_empty(), "filters hold for tombstones");
    let (status, csv) = {
        let r = app.host(reqwest::Method::GET, "/v1/inventory?include_deleted=true&format=csv").send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let tomb_row = rows.iter().find(|r| &r[0] == gone.id.as_str()).unwrap();
    assert_eq!((&tomb_row[column("status")], &tomb_row[column("deleted_by")]), ("deleted", "test-host"));
    assert_eq!(&tomb_row[column("revocation")], "not_requested");
    assert_eq!(&tomb_row[column("token_type")], "bearer");

    // The same account connects again at once: a tombstone holds no place.
    app.seed(Seed { access_token: "at-again", ..Seed::default() }).await;
    let (status, token) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "account_id": "acct-1"})).await;
    assert_eq!((status, token["access_token"].as_str()), (200, Some("at-again")));

    // Every secret is gone from the bytes the database keeps, free pages and WAL included, while
    // the server still runs.
    for ciphertext in &sealed {
        assert!(
            !app.db.contains_bytes(ciphertext).await,
            "a deleted connection's ciphertext is still in the {:?} database",
            backend
        );
    }
    app.stop().await;
    assert!(!app.db.raw_contents().await.contains(&access));
});

both!(tombstones_are_purged_after_their_retention, |backend| async move {
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| c.tombstone_retention_days = 30).await;
    let row = app.seed(Seed::default()).await;
    delete(&app, &row.id).await;
    let store = &app.state.store;
    assert_eq!(latch_server::connections::purge_tombstones(store, &app.state.clock, 30).await.unwrap(), 0);
    app.state.clock.advance(29 * 86_400);
    assert_eq!(
        latch_server::connections::purge_tombstones(store, &app.state.clock, 30).await.unwrap(),
        0,
        "within retention"
    );
    assert_eq!(inventory(&app, "status=deleted").await.len(), 1);

    // A serving process purges on its own: the upkeep runs when the workers start.
    let clock = Clock::default();
    clock.advance(31 * 86_400);
    let later = AppState::build(app.state.config.clone(), clock).await.unwrap();
    let workers = Workers::start(&later).await;
    let purged = wait_until(Duration::from_secs(10), || async {
        store.connection_or_tombstone(&row.id).await.unwrap().is_none()
    })
    .await;
    workers.shutdown(std::time::Duration::from_secs(10)).await;
    assert!(purged, "the upkeep purged the tombstone");
    assert!(inventory(&app, "include_deleted=true").await.is_empty());
});

both!(the_cli_lists_and_shows_tombstones, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let cli = Cli::new(&app, &fake.url, &[("acme", r#"["read", "write"]"#)]);
    let (ok, out, err) = cli.run(&["connections", "remove", &row.id, "--yes"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("deleted\t"), "{out}");
    let (_, out, _) = cli.run(&["connections", "list"]);
    assert!(!out.contains(&row.id), "{out}");
    let (ok, out, err) = cli.run(&["connections", "list", "--include-deleted", "--format", "json"]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!((listed.len(), &listed[0]["status"], &listed[0]["deleted_by"]), (1, &json!("deleted"), &json!("cli")));
    let (_, out, _) = cli.run(&["connections", "list", "--status", "deleted"]);
    assert!(out.contains(&row.id) && out.contains("deleted"), "{out}");
    let (ok, out, err) = cli.run(&["connections", "show", &row.id]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&shown["status"], &shown["revocation"]), (&json!("deleted"), &json!("not_requested")));
});

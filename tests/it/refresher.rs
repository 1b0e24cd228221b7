//! Background upkeep: the proactive refresher renews tokens about to expire (once each, even
//! with the hot path asking at the same time), and re-validation flips revoked tokens.

use crate::harness::{Seed, TestApp, both};
use latch_server::oauth::refresher;
use serde_json::json;

both!(tokens_about_to_expire_are_renewed_once, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (user, rt) = (format!("user-{i}"), format!("rt-seed-{i}"));
        fake.with(|s| s.live_refresh_tokens.insert(rt.clone()));
        // Expiring in 5 minutes: inside the 10-minute window, outside the hot path's skew.
        let row =
            app.seed(Seed { user_id: &user, refresh_token: Some(&rt), expires_in: Some(300), ..Seed::default() }).await;
        ids.push((user, row.id));
    }
    let far = app.seed(Seed { user_id: "far", expires_in: Some(3 * 3600), ..Seed::default() }).await;
    // The hot path asks for the same tokens while the refresher runs.
    let hot = ids.iter().map(|(user, _)| app.post("/v1/access-token", json!({"user_id": user, "provider": "acme"})));
    let (refreshed, answers) = tokio::join!(refresher::refresh_round(&app.state), futures::future::join_all(hot));
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(refreshed, 5);
    assert_eq!(fake.token_calls(), 5, "one provider call per connection");
    for (_, id) in &ids {
        let row = app.state.store.connection(id).await.unwrap().unwrap();
        assert_eq!(row.version, 1);
        assert!(row.access_token_expires_at.unwrap() > app.state.clock.unix() + 3000);
    }
    assert_eq!(app.state.store.connection(&far.id).await.unwrap().unwrap().version, 0, "not yet due");
    assert_eq!(refresher::refresh_round(&app.state).await, 0, "nothing left to do");
});

both!(revalidation_flips_revoked_tokens, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| {
        s.expires_in = None;
        s.no_refresh_token = true;
    });
    // A long-lived token the provider knows, and one it has revoked (unknown to it).
    let good = app.connect_flow("alice", "acme").await.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let revoked = app.seed(Seed { user_id: "bob", expires_in: None, refresh_token: None, ..Seed::default() }).await;
    app.state.clock.advance(2 * 86_400);
    assert_eq!(refresher::validation_round(&app.state).await, 2);
    let good_row = app.state.store.connection(&good).await.unwrap().unwrap();
    assert_eq!(good_row.status, "active");
    assert!(good_row.last_validated_at.unwrap() >= app.state.clock.unix() - 5, "validated just now");
    assert_eq!(app.state.store.connection(&revoked.id).await.unwrap().unwrap().status, "needs_reauthorization");
    let (_, events) = app.get("/v1/events").await;
    assert!(
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "connection.needs_reauthorization" && e["data"]["id"] == revoked.id.as_str())
    );
    let (_, connection) = app.get(&format!("/v1/connections/{good}")).await;
    assert!(connection["last_validated_at"].is_string());
});

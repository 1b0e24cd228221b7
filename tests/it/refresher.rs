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
        // One-hour tokens.
        let row = app.seed(Seed { user_id: &user, refresh_token: Some(&rt), ..Seed::default() }).await;
        ids.push((user, row.id));
    }
    let far = app.seed(Seed { user_id: "far", expires_in: Some(3 * 3600), ..Seed::default() }).await;
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "nothing is due yet");
    // 55 minutes later, 5 minutes are left: inside the 10-minute window, outside the hot path's skew.
    app.state.clock.advance(3300);
    // The hot path asks for the same tokens while the refresher runs.
    let hot = ids.iter().map(|(user, _)| app.post("/v1/access-token", json!({"user_id": user, "provider": "acme"})));
    let (refreshed, answers) =
        tokio::join!(refresher::refresh_round(&app.state.refresher), futures::future::join_all(hot));
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(refreshed, 5);
    assert_eq!(fake.token_calls(), 5, "one provider call per connection");
    for (_, id) in &ids {
        let row = app.state.store.connection(id).await.unwrap().unwrap();
        assert_eq!(row.version, 1);
        assert!(row.access_token_expires_at.unwrap() > app.state.clock.unix() + 3000);
        assert_eq!(row.lease_until, None);
    }
    assert_eq!(app.state.store.connection(&far.id).await.unwrap().unwrap().version, 0, "not yet due");
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "nothing left to do");
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
    assert_eq!(refresher::validation_round(&app.state.refresher).await, 2);
    let good_row = app.state.store.connection(&good).await.unwrap().unwrap();
    assert_eq!(good_row.status, "active");
    assert!(good_row.last_validated_at.unwrap() >= app.state.clock.unix() - 5, "validated just now");
    assert_eq!(app.state.store.connection(&revoked.id).await.unwrap().unwrap().status, "needs_reauthorization");
    // Events become readable once every older transaction in the cluster has ended (on
    // PostgreSQL another test's transaction may still be open for a moment).
    let listed = crate::harness::wait_until(std::time::Duration::from_secs(10), || async {
        let (_, events) = app.get("/v1/events").await;
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "connection.needs_reauthorization" && e["data"]["id"] == revoked.id.as_str())
    })
    .await;
    assert!(listed);
    let (_, connection) = app.get(&format!("/v1/connections/{good}")).await;
    assert!(connection["last_validated_at"].is_string());
});

both!(a_short_token_is_renewed_once_per_lifetime, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| {
        s.expires_in = Some(300);
        s.live_refresh_tokens.insert("rt-short".into());
    });
    // A 5-minute token lives shorter than the 10-minute window.
    let row = app.seed(Seed { refresh_token: Some("rt-short"), expires_in: Some(300), ..Seed::default() }).await;
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "not on every round");
    app.state.clock.advance(200);
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "two thirds in: not yet");
    app.state.clock.advance(30);
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 1, "the last quarter of its life");
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "the new token is not due");
    app.state.clock.advance(100);
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0);
    app.state.clock.advance(140);
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 1, "once per lifetime");
    assert_eq!(fake.token_calls(), 2);
    assert_eq!(app.state.store.connection(&row.id).await.unwrap().unwrap().version, 2);
});

both!(revalidation_moves_past_what_it_cannot_check, |backend| async move {
    let fake = crate::harness::fake_provider::FakeProvider::start().await;
    let acme = TestApp::provider("acme", &fake.url, "");
    let mut blind = TestApp::provider("blind", &fake.url, "");
    blind.identity = None;
    let app = TestApp::start_with(backend, |c| c.providers = vec![acme, blind]).await;
    // Sixty connections nobody can check come first; then one whose token was revoked.
    for i in 0..60 {
        let user = format!("user-{i}");
        app.seed(Seed { provider: "blind", user_id: &user, expires_in: None, refresh_token: None, ..Seed::default() })
            .await;
    }
    let revoked = app.seed(Seed { user_id: "bob", expires_in: None, refresh_token: None, ..Seed::default() }).await;
    fake.with(|s| s.userinfo_script.extend([(401, "{}".to_owned()), (401, "{}".to_owned())]));
    app.state.clock.advance(2 * 86_400);
    assert_eq!(refresher::validation_round(&app.state.refresher).await, 0, "the first fifty cannot be checked");
    assert_eq!(refresher::validation_round(&app.state.refresher).await, 1, "the next round moves on");
    assert_eq!(app.state.store.connection(&revoked.id).await.unwrap().unwrap().status, "needs_reauthorization");
    assert_eq!(refresher::validation_round(&app.state.refresher).await, 0, "everything was looked at");
});

both!(one_401_is_confirmed_before_a_flip, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    // A hiccup: one 401, then the provider knows the token again.
    let hiccup = app.seed(Seed { user_id: "alice", expires_in: None, refresh_token: None, ..Seed::default() }).await;
    fake.with(|s| s.userinfo_script.extend([(401, "{}".to_owned()), (200, r#"{"sub":"acct-1"}"#.to_owned())]));
    app.state.clock.advance(2 * 86_400);
    assert_eq!(refresher::validation_round(&app.state.refresher).await, 1);
    let row = app.state.store.connection(&hiccup.id).await.unwrap().unwrap();
    assert_eq!(row.status, "active");
    assert!(row.last_validated_at.is_some(), "the second answer validated it");
});

both!(a_401_on_a_refreshable_connection_is_settled_by_a_refresh, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| {
        s.live_refresh_tokens.insert("rt-bob".into());
        s.userinfo_script.push_back((401, "{}".to_owned()));
    });
    let rotated = app
        .seed(Seed { user_id: "bob", expires_in: Some(30 * 86_400), refresh_token: Some("rt-bob"), ..Seed::default() })
        .await;
    app.state.clock.advance(2 * 86_400);
    refresher::validation_round(&app.state.refresher).await;
    let row = app.state.store.connection(&rotated.id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.version), ("active", 1), "refreshed, not flipped");
    assert_eq!(fake.token_calls(), 1);
});

both!(one_round_keeps_up_with_the_expiry_rate, |backend| async move {
    // 100,000 one-hour tokens expire at ~28 a second, 420 per 15-second round; a round used to
    // renew at most 20 per provider, leaving the rest to expire in front of a caller.
    let (app, fake) = TestApp::with_fake(backend).await;
    const DUE: usize = 600;
    for i in 0..DUE {
        let (user, rt) = (format!("user-{i}"), format!("rt-due-{i}"));
        fake.with(|s| s.live_refresh_tokens.insert(rt.clone()));
        app.seed(Seed { user_id: &user, refresh_token: Some(&rt), ..Seed::default() }).await;
    }
    app.state.clock.advance(3600 - 500);
    let started = std::time::Instant::now();
    let renewed = refresher::refresh_round(&app.state.refresher).await;
    eprintln!("refresher: {renewed} tokens renewed in one round in {:?}", started.elapsed());
    assert_eq!(renewed, DUE, "every due token in one round");
    assert_eq!(fake.token_calls(), DUE, "one provider call each");
    assert_eq!(refresher::refresh_round(&app.state.refresher).await, 0, "nothing left");
});

//! Rate limits: token buckets per API key, per widget user and per client address, per address
//! on the `/oauth` pages and per provider on refreshes; a refused request is `429 rate_limited`
//! with `Retry-After` in the error envelope, and other keys, users and providers are unaffected.

use crate::harness::{HOST_ORIGIN, Seed, TestApp, assert_error, both, send};
use latch_server::auth::api_keys;
use latch_server::store::new_id;
use serde_json::json;

fn assert_limited(r: &reqwest::Response) {
    assert_eq!(r.status(), 429);
    let retry: u32 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
}

both!(host_api_keys_have_their_own_buckets, |backend| async move {
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| {
        c.rate_limits.host_per_second = 1;
        c.rate_limits.host_burst = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/providers").await.0, 200);
    }
    let refused = app.host(reqwest::Method::GET, "/v1/providers").send().await.unwrap();
    assert_limited(&refused);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another key is not held back by this one.
    let other = api_keys::generate();
    app.state.store.insert_api_key(&new_id("key"), "other", &other.hash, app.state.clock.unix()).await.unwrap();
    let r = send(app.http.get(format!("{}/v1/providers", app.url)).bearer_auth(&other.plaintext)).await;
    assert_eq!(r.0, 200, "{:?}", r.1);
});

both!(widget_users_and_addresses_have_buckets, |backend| async move {
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| {
        c.rate_limits.widget_user_per_minute = 3;
        c.rate_limits.widget_ip_per_minute = 5;
    })
    .await;
    let alice = app.widget_token("alice", None, &["acme"]).await;
    let bob = app.widget_token("bob", None, &["acme"]).await;
    let list = |token: &str| {
        app.http
            .get(format!("{}/widget/v1/integrations", app.url))
            .bearer_auth(token)
            .header("origin", HOST_ORIGIN)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(list(&alice).await.unwrap().status(), 200);
    }
    assert_limited(&list(&alice).await.unwrap());
    // Bob has his own bucket, but the address (all tests come from 127.0.0.1) has one too.
    assert_eq!(list(&bob).await.unwrap().status(), 200);
    assert_limited(&list(&bob).await.unwrap());
    // An unauthenticated flood is held by the address bucket before any token is checked.
    let anonymous = app.http.get(format!("{}/widget/v1/integrations", app.url)).send().await.unwrap();
    assert_limited(&anonymous);
});

both!(oauth_pages_are_limited_per_address, |backend| async move {
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| c.rate_limits.oauth_ip_per_minute = 2).await;
    let page = || app.http.get(format!("{}/oauth/callback?state=nope&code=x", app.url)).send();
    assert_eq!(page().await.unwrap().status(), 400);
    assert_eq!(page().await.unwrap().status(), 400);
    assert_limited(&page().await.unwrap());
});

both!(refreshes_are_limited_per_provider, |backend| async move {
    let (app, fake) = TestApp::with_fake_configured(backend, |c| {
        c.rate_limits.provider_per_second = 1;
        c.rate_limits.provider_burst = 1;
    })
    .await;
    fake.with(|s| s.live_refresh_tokens.extend(["rt-a".to_owned(), "rt-b".to_owned(), "rt-c".to_owned()]));
    app.seed(Seed { user_id: "a", refresh_token: Some("rt-a"), expires_in: Some(-10), ..Seed::default() }).await;
    app.seed(Seed { user_id: "b", refresh_token: Some("rt-b"), expires_in: Some(-10), ..Seed::default() }).await;
    app.seed(Seed {
        provider: "plain",
        user_id: "c",
        refresh_token: Some("rt-c"),
        expires_in: Some(-10),
        ..Seed::default()
    })
    .await;
    let (_, first) = app.post("/v1/access-token", json!({"user_id": "a", "provider": "acme"})).await;
    assert_eq!(first["active"], true, "{first}");
    assert_error(
        &app.post("/v1/access-token", json!({"user_id": "b", "provider": "acme"})).await,
        503,
        "provider_unavailable",
    );
    assert_eq!(fake.token_calls(), 1, "the second refresh did not reach the provider");
    // Another provider has its own bucket.
    let (_, other) = app.post("/v1/access-token", json!({"user_id": "c", "provider": "plain"})).await;
    assert_eq!(other["active"], true, "{other}");
});

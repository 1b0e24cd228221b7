//! Against a real authorization server that someone else wrote (panva/oidc-provider): the whole
//! connect flow with PKCE required and RFC 9207 `iss`, a rotating refresh, and RFC 7009
//! revocation that really kills the grant.

use crate::harness::browser::Browser;
use crate::harness::oidc::Oidc;
use crate::harness::{HOST_ORIGIN, TestApp, both};
use latch_server::providers::Provider;
use serde_json::json;

/// A server with oidc-provider configured as `oidc` (its client secret stored).
pub(crate) async fn setup(backend: crate::harness::db::Backend) -> (TestApp, Oidc) {
    setup_with_ttl(backend, 3600).await
}

/// [`setup`] with access tokens that live `access_token_ttl` seconds at the provider.
pub(crate) async fn setup_with_ttl(backend: crate::harness::db::Backend, access_token_ttl: u32) -> (TestApp, Oidc) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let latch = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let oidc = Oidc::start(&format!("{latch}/oauth/callback"), "oidc-client-secret", access_token_ttl);
    let provider = Provider::from_config("oidc", toml::from_str(&oidc.provider_toml()).unwrap()).unwrap();
    let app = TestApp::start_on(listener, backend, |c| {
        c.providers = vec![provider];
        c.allowed_origins = vec![HOST_ORIGIN.into()];
    })
    .await;
    app.set_client_secret("oidc", "oidc-client-secret").await;
    (app, oidc)
}

both!(connect_refresh_and_revoke_against_oidc_provider, |backend| async move {
    let (app, oidc) = setup(backend).await;
    let run = app.connect_flow("alice", "oidc").await;
    let message = run.message.clone().unwrap_or_else(|| panic!("{}", run.page));
    assert_eq!(message["type"], "connected", "{}", run.page);
    let id = message["connection_id"].as_str().unwrap().to_owned();
    let (_, c) = app.get(&format!("/v1/connections/{id}")).await;
    assert_eq!((c["account_id"].as_str(), c["account_label"].as_str()), (Some("alice"), Some("alice@oidc.example")));
    assert!(c["scopes"].as_array().unwrap().contains(&json!("offline_access")), "{c}");
    assert_eq!(oidc.stats().await["authorization_code"], 1);

    // A forced refresh rotates the refresh token; a second one proves the rotated one was stored.
    let (_, first) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc"})).await;
    let (_, second) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})).await;
    let (_, third) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})).await;
    assert_eq!(third["active"], true, "{third}");
    assert_ne!(first["access_token"], second["access_token"]);
    assert_ne!(second["access_token"], third["access_token"]);
    let stats = oidc.stats().await;
    assert_eq!((stats["refresh_token"].as_i64(), stats["errors"].as_i64()), (Some(2), Some(0)), "{stats}");

    // An outage at the token endpoint: the still-valid token is served, the status stays active.
    oidc.fail_next(3).await;
    let (_, during) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})).await;
    assert_eq!(during["access_token"], third["access_token"], "{during}");
    assert_eq!(app.get(&format!("/v1/connections/{id}")).await.1["status"], "active");
    // Callers right behind the failure share its outcome for a short back-off (at most 2 s).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, after) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})).await;
    assert_ne!(after["access_token"], third["access_token"], "recovered without intervention");

    // Reconnecting as another account is refused; as the same account it replaces the grant.
    let token = app.widget_token("alice", None, &["oidc"]).await;
    oidc.set_account("bob").await;
    let (_, authorize) = app.connect(&token, json!({"provider": "oidc", "connection_id": id})).await;
    assert_eq!(Browser::new().run(&app.url, &authorize).await.message.unwrap()["error"]["code"], "account_mismatch");
    oidc.set_account("alice").await;

    // Disconnect with revocation: the grant is dead at the provider.
    let (status, _) =
        crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{id}?revoke=true"))).await;
    assert_eq!(status, 204);
    let trail = app.activity(&format!("connection_id={id}")).await;
    assert!(trail.iter().any(|e| e["action"] == "revoked"), "{trail:?}");
    assert_eq!(oidc.stats().await["revoked_grants"], 1, "the provider revoked the whole grant");
});

both!(denied_issuer_mix_up_and_pkce_with_a_real_server, |backend| async move {
    let (app, oidc) = setup(backend).await;
    let token = app.widget_token("alice", None, &["oidc"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "oidc"})).await;
    let browser = Browser::new();
    let (_, to_provider, _) = browser.start(&authorize).await;
    let to_provider = to_provider.unwrap();
    assert!(to_provider.contains("code_challenge_method=S256"));
    // Walk to the provider's redirect, then tamper with `iss` before delivering it.
    let mut next = to_provider;
    let callback_prefix = format!("{}/oauth/callback", app.url);
    let callback = loop {
        if next.starts_with(&callback_prefix) {
            break next;
        }
        let (_, location, _) = browser.get(&next).await;
        let location = location.unwrap();
        next = if location.starts_with('/') {
            url::Url::parse(&next).unwrap().join(&location).unwrap().to_string()
        } else {
            location
        };
    };
    assert!(callback.contains("iss="), "oidc-provider sends RFC 9207 iss: {callback}");
    let tampered = callback.replace("iss=http%3A%2F%2F127.0.0.1", "iss=http%3A%2F%2F127.0.0.9");
    assert_ne!(tampered, callback);
    let run = browser.finish(&app.url, &tampered, vec![]).await;
    assert_eq!(run.message.unwrap()["error"]["code"], "oauth2_exchange_error");
    assert_eq!(oidc.stats().await["authorization_code"], 0, "no exchange after a wrong iss");
});

both!(two_hundred_callers_one_refresh_against_oidc_provider, |backend| async move {
    let (app, oidc) = setup(backend).await;
    assert_eq!(app.connect_flow("alice", "oidc").await.message.unwrap()["type"], "connected");
    // Expired as far as Latch can tell; oidc-provider rotates refresh tokens and revokes the
    // whole grant if one is presented twice, so a second concurrent refresh would be fatal.
    app.state.clock.advance(7200);
    let calls = (0..200).map(|_| app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc"})));
    let results = futures::future::join_all(calls).await;
    let first = results[0].1["access_token"].clone();
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"], first, "every caller gets the same new token");
    }
    let stats = oidc.stats().await;
    assert_eq!((stats["refresh_token"].as_i64(), stats["errors"].as_i64()), (Some(1), Some(0)), "{stats}");
    // The grant is still alive.
    let (_, again) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})).await;
    assert_eq!(again["active"], true, "{again}");
    assert_eq!(oidc.stats().await["revoked_grants"], 0);
});

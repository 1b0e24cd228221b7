//! Master-key rotation: with the new key active and the old one still configured, `rotate`
//! re-seals every secret (tokens, client secrets, signing keys, PKCE verifiers, webhook
//! secrets); afterwards the old key can be dropped, and a server holding only the old key
//! refuses to start. Running it again does nothing.

use crate::harness::{MASTER_KEY, Seed, TestApp, both};
use latch_server::AppState;
use latch_server::clock::Clock;
use latch_server::config::MasterKeySource;
use latch_server::vault::{MasterKey, Sealed, Secret, Vault};
use serde_json::json;

both!(master_key_rotation_reseals_everything, |backend| async move {
    let (mut app, _fake) = TestApp::with_fake(backend).await;
    let rows = [
        app.seed(Seed {
            user_id: "alice",
            access_token: "at-alice",
            refresh_token: Some("rt-alice"),
            ..Seed::default()
        })
        .await,
        app.seed(Seed { user_id: "bob", access_token: "at-bob", refresh_token: None, ..Seed::default() }).await,
    ];
    let (status, _) = app.post("/v1/webhook-endpoints", json!({"url": "http://127.0.0.1:9/hook"})).await;
    assert_eq!(status, 201);
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    assert_eq!(
        crate::harness::browser::Browser::new().start(&authorize).await.0,
        303,
        "a flow with a sealed PKCE verifier"
    );
    app.stop().await;

    let old = MasterKey::from_base64(MASTER_KEY).unwrap();
    let new_b64 = MasterKey::generate_base64();
    let new = MasterKey::from_base64(&new_b64).unwrap();
    let mut config = app.state.config.clone();
    config.master_key = MasterKeySource::Inline(Secret::new(new_b64.clone()));
    config.previous_master_keys = vec![MasterKeySource::Inline(Secret::new(MASTER_KEY))];
    let both_keys = AppState::build(config.clone(), Clock::default()).await.unwrap();
    let done = latch_server::vault::rotate(&both_keys.store, &both_keys.vault, |_, _| {}).await.unwrap();
    assert!(done.resealed >= 8, "resealed {}", done.resealed);
    assert_eq!(done.retired, [old.id().to_owned()]);
    for &column in Sealed::ROTATED {
        for (row, envelope) in both_keys.store.sealed_page(column, "", 1000).await.unwrap() {
            assert_eq!(Vault::key_id_of(&envelope), Some(new.id()), "{column:?} of {row} still under the old key");
        }
    }
    let again = latch_server::vault::rotate(&both_keys.store, &both_keys.vault, |_, _| {}).await.unwrap();
    assert_eq!((again.resealed, again.retired.len()), (0, 0), "idempotent");

    // Only the new key: everything opens, the same secrets as before.
    config.previous_master_keys = vec![];
    let only_new = AppState::build(config.clone(), Clock::default()).await.unwrap();
    for (row, expected) in rows.iter().zip(["at-alice", "at-bob"]) {
        let stored = only_new.store.connection(&row.id).await.unwrap().unwrap();
        let token = only_new
            .vault
            .open_secret(latch_server::vault::Sealed::AccessToken.slot(&row.id), stored.access_token.as_ref().unwrap())
            .unwrap();
        assert_eq!(token.expose(), expected);
    }
    let secret = only_new.store.client_secret("acme").await.unwrap().unwrap();
    assert_eq!(
        only_new.vault.open_secret(latch_server::vault::Sealed::ClientSecret.slot("acme"), &secret).unwrap().expose(),
        "acme-client-secret"
    );

    // Only the old key: refused, naming the key it lacks.
    config.master_key = MasterKeySource::Inline(Secret::new(MASTER_KEY));
    let err = AppState::build(config, Clock::default()).await.unwrap_err().to_string();
    assert!(err.contains(new.id()), "{err}");
});

//! Secrets never appear in plaintext: not in the database bytes, not in logs, not in responses;
//! ciphertexts are bound to their row; a wrong master key stops the server before any write.

use crate::harness::fake_provider::Scripted;
use crate::harness::{MASTER_KEY, Seed, TestApp, assert_error, both, canary, logs};
use latch_server::AppState;
use latch_server::clock::Clock;
use latch_server::config::MasterKeySource;
use latch_server::vault::Secret;
use serde_json::json;

both!(no_plaintext_in_database_or_logs, |backend| async move {
    let (mut app, fake) = TestApp::with_fake(backend).await;
    let access = canary("AT");
    let refresh = canary("RT");
    let client_secret = canary("CS");
    let issued_prefix = canary("NEWAT");
    let provider_echo = canary("ECHO");
    app.set_client_secret("acme", &client_secret).await;
    fake.with(|s| {
        s.current_refresh_token = Some(refresh.clone());
        s.token_prefix = issued_prefix.clone();
    });
    app.seed(Seed { access_token: &access, refresh_token: Some(&refresh), ..Seed::default() }).await;
    app.seed(Seed {
        user_id: "bob",
        access_token: &access,
        refresh_token: Some(&refresh),
        expires_in: Some(-5),
        ..Seed::default()
    })
    .await;

    // Fresh read, refresh (rotating in new canary tokens), and an error answer echoing a canary.
    assert_eq!(
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await.1["access_token"],
        access.as_str()
    );
    let refreshed = app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme"})).await;
    assert!(refreshed.1["access_token"].as_str().unwrap().starts_with(&issued_prefix));
    fake.with(|s| {
        s.script.push_back(Scripted::json(
            400,
            json!({"error": provider_echo, "error_description": format!("bad {provider_echo}")}),
        ))
    });
    let failed =
        app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme", "force_refresh": true})).await;
    assert!(!failed.1.to_string().contains(&provider_echo), "{failed:?}");
    let (_, trail) = app.get("/v1/activity?limit=200").await;
    assert!(!trail.to_string().contains(&provider_echo));
    // An invalid API key that is itself a canary.
    let bad_key = format!("latch_sk_{}0000", canary("K"));
    let _ = crate::harness::send(app.http.get(format!("{}/v1/connections", app.url)).bearer_auth(&bad_key)).await;
    app.stop().await;

    let raw = app.db.raw_contents().await;
    assert!(raw.len() > 1000, "scanned the database");
    for secret in [&access, &refresh, &client_secret, &issued_prefix, &app.api_key] {
        assert!(!raw.contains(secret.as_str()), "plaintext secret found in the {:?} database", app.db.backend);
    }
    let logged = logs::captured();
    assert!(logged.len() > 1000, "logs were captured");
    for secret in [&access, &refresh, &client_secret, &issued_prefix, &provider_echo, &app.api_key, &bad_key] {
        assert!(!logged.contains(secret.as_str()), "secret found in logs");
    }
    assert!(!logged.contains("latch_sk_"), "an API key reached the logs");
});

both!(ciphertext_moved_to_another_row_does_not_open, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let secret = canary("AT");
    let a = app.seed(Seed { user_id: "alice", access_token: &secret, ..Seed::default() }).await;
    let b = app.seed(Seed { user_id: "bob", access_token: "at-bob", ..Seed::default() }).await;
    app.db
        .execute(&format!("UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE id = '{}') WHERE id = '{}'", a.id, b.id))
        .await;
    let r = app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme"})).await;
    assert_error(&r, 500, "internal_error");
    assert!(!r.1.to_string().contains(&secret));
    // The owner is unaffected.
    assert_eq!(
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await.1["access_token"],
        secret.as_str()
    );
});

both!(wrong_master_key_refuses_to_start, |backend| async move {
    let mut app = TestApp::start(backend).await;
    app.stop().await;
    // A database one migration behind (0015 undone), as a newer binary finds it.
    for index in ["connections_refresh_due", "connections_user_refresh_due", "connections_validation_due"] {
        app.db.execute(&format!("DROP INDEX {index}")).await;
    }
    app.db.execute("DELETE FROM _sqlx_migrations WHERE version = 15").await;
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut config = app.state.config.clone();
    config.master_key = MasterKeySource::Inline(Secret::new(wrong));
    let err = AppState::build(config, Clock::default()).await.unwrap_err().to_string();
    let right = latch_server::vault::MasterKey::from_base64(MASTER_KEY).unwrap();
    assert!(err.contains(right.id()), "{err}");
    assert!(err.contains("master key") && err.contains("nothing was written"), "{err}");
    let migrated = "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 15";
    assert_eq!(app.db.scalar(migrated).await, 0, "a start with the wrong key migrated the database");
    // Nor does a CLI command with the wrong key (each migrates before its work); `keys list`,
    // the tool for finding the right key, still lists.
    let dir = tempfile::tempdir().unwrap();
    for args in [&["migrate"][..], &["api-keys", "create", "--name", "wrong-key"], &["keys", "list"]] {
        let out = crate::harness::latch_command(dir.path(), &app.db.url)
            .env("LATCH_MASTER_KEY", wrong)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if args[0] == "keys" {
            let listed = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && listed.contains(&format!("master\t{}\tmissing", right.id())),
                "{listed}{err}"
            );
        } else {
            assert!(!out.status.success() && err.contains("nothing was written"), "latch {args:?}: {err}");
        }
        assert_eq!(app.db.scalar(migrated).await, 0, "latch {args:?} with the wrong key migrated the database");
    }
    // With the right key it migrates and starts.
    AppState::build(app.state.config.clone(), Clock::default()).await.unwrap();
    assert_eq!(app.db.scalar(migrated).await, 1);
    let mut config = app.state.config.clone();
    config.master_key = MasterKeySource::Missing;
    let err = AppState::build(config, Clock::default()).await.unwrap_err().to_string();
    assert!(err.contains("LATCH_MASTER_KEY"), "{err}");
});

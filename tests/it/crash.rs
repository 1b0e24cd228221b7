//! kill -9 of a `latch serve` in the middle of a refresh loop, then a restart: the connection
//! that the provider still honours keeps working (the interrupted refresh is recorded as
//! `refresh_outcome_unknown`, its lease expires, the stored refresh token is used).

use crate::harness::browser::Browser;
use crate::harness::oidc::Oidc;
use crate::harness::{HOST_ORIGIN, latch_command, send, wait_until};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::KilledOnDrop as Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_refreshes_loses_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let public = format!("http://127.0.0.1:{port}");
    let oidc = Oidc::start(&format!("{public}/oauth/callback"), "crash-secret", 3600);
    std::fs::write(
        dir.path().join("latch.toml"),
        format!("allowed_origins = [\"{HOST_ORIGIN}\"]\nbackground_refresh = false\n[providers.oidc]\n{}client_secret_env = \"LATCH_IT_OIDC_SECRET\"\n", oidc.provider_toml()),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut c = latch_command(dir.path(), &format!("sqlite://{}/latch.db", dir.path().display()));
        c.args(args)
            .env("LATCH_CONFIG", dir.path().join("latch.toml"))
            .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCH_IT_OIDC_SECRET", "crash-secret")
            .env("RUST_LOG", "warn");
        c
    };
    let out = command(&["api-keys", "create", "--name", "crash"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let http = reqwest::Client::new();
    let start = || async {
        let child = Server(command(&["serve"]).stdout(Stdio::null()).spawn().unwrap());
        let url = format!("{public}/readyz");
        assert!(
            wait_until(Duration::from_secs(20), || async {
                http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
            })
            .await
        );
        child
    };
    let mut server = start().await;
    let (_, minted) = send(
        http.post(format!("{public}/v1/widget-tokens"))
            .bearer_auth(&key)
            .json(&json!({"user_id": "alice", "allowed_origin": HOST_ORIGIN})),
    )
    .await;
    let started = send(
        http.post(format!("{public}/widget/v1/connect"))
            .bearer_auth(minted["token"].as_str().unwrap())
            .header("origin", HOST_ORIGIN)
            .json(&json!({"provider": "oidc"})),
    )
    .await;
    let run = Browser::new().run(&public, started.1["authorize_url"].as_str().unwrap()).await;
    assert_eq!(run.message.unwrap()["type"], "connected");

    // A refresh loop; each token request is held 1.5 s before the provider processes it, and
    // the server is killed while the first one is in flight (its lease already committed).
    oidc.delay(1500).await;
    let force = json!({"user_id": "alice", "provider": "oidc", "force_refresh": true});
    let looping = {
        let (http, key, public, force) = (http.clone(), key.clone(), public.clone(), force.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                let _ = http.post(format!("{public}/v1/access-token")).bearer_auth(&key).json(&force).send().await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    looping.abort();
    oidc.delay(0).await;

    // Restart: the interrupted refresh's lease expires, then the stored refresh token works.
    let server = start().await;
    let (status, body) = send(http.post(format!("{public}/v1/access-token")).bearer_auth(&key).json(&force)).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}");
    let stats = oidc.stats().await;
    // The request cut by the kill may show up as an aborted one (`invalid_request`), but no
    // refresh token was ever presented twice: no `invalid_grant`, no revoked grant.
    assert_eq!(stats["revoked_grants"], 0, "{stats}");
    assert!(!stats["error_codes"].as_array().unwrap().iter().any(|c| c == "invalid_grant"), "{stats}");
    // The refresh that follows the dead lease (at most 15 s later) records what happened.
    let recorded = wait_until(Duration::from_secs(20), || async {
        let (_, trail) = send(http.get(format!("{public}/v1/activity?limit=200")).bearer_auth(&key)).await;
        trail["data"].as_array().unwrap().iter().any(|e| e["action"] == "refresh_outcome_unknown")
    })
    .await;
    assert!(recorded, "the interrupted refresh is recorded");
    drop(server);
}

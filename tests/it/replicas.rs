//! Several `latch serve` processes on one PostgreSQL, against oidc-provider with rotating refresh
//! tokens and reuse detection: 200 concurrent requests round-robin across 3 replicas on an
//! expiring token make exactly one refresh at the provider, and the grant stays alive.

use crate::harness::browser::Browser;
use crate::harness::db::{Backend, TestDb, postgres_available};
use crate::harness::oidc::Oidc;
use crate::harness::{HOST_ORIGIN, latch_command, send, wait_until};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::KilledOnDrop as Replica;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_one_refresh() {
    if !postgres_available() {
        return;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let public = format!("http://127.0.0.1:{}", ports[0]);
    // Access tokens live 6 s at the provider; Latch refreshes within half a lifetime of expiry.
    let oidc = Oidc::start(&format!("{public}/oauth/callback"), "replica-secret", 6);
    std::fs::write(
        dir.path().join("latch.toml"),
        format!(
            "allowed_origins = [\"{HOST_ORIGIN}\"]\nbackground_refresh = false\n[providers.oidc]\n{}client_secret_env = \"LATCH_IT_OIDC_SECRET\"\n",
            oidc.provider_toml()
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut c = latch_command(dir.path(), &db.url);
        c.args(args)
            .env("LATCH_CONFIG", dir.path().join("latch.toml"))
            .env("LATCH_PUBLIC_URL", &public)
            .env("LATCH_IT_OIDC_SECRET", "replica-secret")
            .env("RUST_LOG", "warn");
        c
    };
    assert!(command(&["migrate"]).status().unwrap().success());
    let out = command(&["api-keys", "create", "--name", "replicas"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let _replicas: Vec<Replica> = ports
        .iter()
        .map(|p| {
            Replica(
                command(&["serve"])
                    .env("LATCH_LISTEN", format!("127.0.0.1:{p}"))
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let http = reqwest::Client::new();
    for p in ports {
        let url = format!("http://127.0.0.1:{p}/readyz");
        assert!(
            wait_until(Duration::from_secs(20), || async {
                http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
            })
            .await
        );
    }
    let host = |i: usize, path: &str| http.post(format!("http://127.0.0.1:{}{path}", ports[i % 3])).bearer_auth(&key);

    // Connect through replica A (the public URL).
    let (_, minted) =
        send(host(0, "/v1/widget-tokens").json(&json!({"user_id": "alice", "allowed_origin": HOST_ORIGIN}))).await;
    let token = minted["token"].as_str().unwrap();
    // A token minted by A is accepted by B.
    let started = send(
        http.post(format!("http://127.0.0.1:{}/widget/v1/connect", ports[1]))
            .bearer_auth(token)
            .header("origin", HOST_ORIGIN)
            .json(&json!({"provider": "oidc"})),
    )
    .await;
    assert_eq!(started.0, 201, "{}", started.1);
    let run = Browser::new().run(&public, started.1["authorize_url"].as_str().unwrap()).await;
    assert_eq!(run.message.unwrap()["type"], "connected", "{}", run.page);

    // Let the access token come within its refresh window, then 200 callers on 3 replicas.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls =
        (0..200).map(|i| send(host(i, "/v1/access-token").json(&json!({"user_id": "alice", "provider": "oidc"}))));
    let results = futures::future::join_all(calls).await;
    let first = results[0].1["access_token"].clone();
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"], first, "one new token for everyone");
    }
    let stats = oidc.stats().await;
    assert_eq!((stats["refresh_token"].as_i64(), stats["errors"].as_i64()), (Some(1), Some(0)), "{stats}");
    // The grant is alive: a forced refresh on replica C works.
    let (_, again) =
        send(host(2, "/v1/access-token").json(&json!({"user_id": "alice", "provider": "oidc", "force_refresh": true})))
            .await;
    assert_eq!(again["active"], true, "{again}");
    assert_eq!(oidc.stats().await["revoked_grants"], 0);
}

//! Several `latch serve` processes on one PostgreSQL, against oidc-provider with rotating refresh
//! tokens and reuse detection: 200 concurrent requests round-robin across 3 replicas on an
//! expiring token make exactly one refresh at the provider, and the grant stays alive.

use crate::harness::browser::Browser;
use crate::harness::db::{Backend, TestDb, postgres_available};
use crate::harness::oidc::Oidc;
use crate::harness::{HOST_ORIGIN, free_port, latch_command, send, wait_until};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::KilledOnDrop as Replica;

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

/// Two `latch serve` replicas on one PostgreSQL: what one changes, the other stops serving within
/// 200 ms (`LISTEN`/`NOTIFY`), not after its caches' TTL: a deleted connection, a revoked API
/// key; and a replica whose listener connection is killed listens again and still converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_reach_the_other_replica_at_once() {
    if !postgres_available() {
        return;
    }
    use latch_server::store::Store;
    use latch_server::vault::{MasterKey, Vault};
    let db = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    std::fs::write(
        dir.path().join("latch.toml"),
        "background_refresh = false\n[providers.acme]\nclient_id = \"client-acme\"\n\
         authorization_url = \"http://127.0.0.1:9/authorize\"\ntoken_url = \"http://127.0.0.1:9/token\"\n\
         identity = { url = \"http://127.0.0.1:9/userinfo\", account_identifier = \"$.sub\" }\n",
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut c = latch_command(dir.path(), &db.url);
        c.args(args).env("LATCH_CONFIG", dir.path().join("latch.toml"));
        c
    };
    assert!(command(&["migrate"]).status().unwrap().success());
    let key_of = |name: &str| {
        let out = command(&["api-keys", "create", "--name", name]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (key, doomed_key) = (key_of("backend"), key_of("doomed"));
    let store = Store::connect(&db.url).await.unwrap();
    let vault = Vault::new(MasterKey::from_base64(crate::harness::MASTER_KEY).unwrap(), []);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let seed = |user: &'static str| crate::harness::Seed { user_id: user, ..crate::harness::Seed::default() };
    let alice = crate::harness::seed_connection(&store, &vault, now, seed("alice")).await;
    let bob = crate::harness::seed_connection(&store, &vault, now, seed("bob")).await;
    let _replicas: Vec<Replica> = ports
        .iter()
        .map(|p| {
            let mut serve = command(&["serve"]);
            serve.env("LATCH_LISTEN", format!("127.0.0.1:{p}")).stdout(Stdio::null());
            Replica(serve.spawn().unwrap())
        })
        .collect();
    let http = reqwest::Client::new();
    for p in ports {
        let url = format!("http://127.0.0.1:{p}/readyz");
        let ready = || async { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) };
        assert!(wait_until(Duration::from_secs(20), ready).await);
    }
    let token = |replica: usize, user: &'static str, key: String| {
        let request = http
            .post(format!("http://127.0.0.1:{}/v1/access-token", ports[replica]))
            .bearer_auth(key)
            .json(&json!({"user_id": user, "provider": "acme"}));
        async move { send(request).await }
    };
    let delete = |replica: usize, id: String| {
        let request =
            http.delete(format!("http://127.0.0.1:{}/v1/connections/{id}", ports[replica])).bearer_auth(key.clone());
        async move { send(request).await.0 }
    };
    /// How long until `check` holds, polled every 10 ms for at most 5 s.
    async fn converges<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(mut check: F) -> Duration {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if check().await {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("did not converge within 5 s");
    }
    // Replica B has alice's row cached; A deletes it.
    assert_eq!(token(1, "alice", key.clone()).await.1["active"], true);
    assert_eq!(token(1, "alice", key.clone()).await.1["active"], true);
    assert_eq!(delete(0, alice.id.clone()).await, 204);
    let took = converges(|| async { token(1, "alice", key.clone()).await.1["error"] == "not_installed" }).await;
    eprintln!("replicas: a delete on A reached B in {took:?}");
    assert!(took < Duration::from_millis(200), "a deleted connection served by B for {took:?}");

    // B has the doomed key cached; it is revoked (by the CLI, a third process).
    assert_eq!(token(1, "bob", doomed_key.clone()).await.0, 200);
    assert!(command(&["api-keys", "revoke", "doomed"]).status().unwrap().success());
    let took = converges(|| async { token(1, "bob", doomed_key.clone()).await.0 == 401 }).await;
    eprintln!("replicas: an API key revocation reached B in {took:?}");
    assert!(took < Duration::from_millis(200), "a revoked key accepted by B for {took:?}");

    // Kill every listener connection; each replica listens again, then still converges at once.
    let admin = |sql: &'static str| {
        let url = db.url.clone();
        async move {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
            n
        }
    };
    let listening =
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
    assert!(wait_until(Duration::from_secs(5), || async { admin(listening).await == 2 }).await, "two listeners");
    let killed = admin(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .await;
    assert_eq!(killed, 2);
    assert!(wait_until(Duration::from_secs(10), || async { admin(listening).await == 2 }).await, "listening again");
    assert_eq!(token(1, "bob", key.clone()).await.1["active"], true);
    assert_eq!(delete(0, bob.id.clone()).await, 204);
    let took = converges(|| async { token(1, "bob", key.clone()).await.1["error"] == "not_installed" }).await;
    eprintln!("replicas: after the listener was killed, a delete on A reached B in {took:?}");
    assert!(took < Duration::from_millis(200), "B did not converge after its listener was killed: {took:?}");
}

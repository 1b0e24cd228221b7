//! SIGTERM, as systemd, `docker stop` and Kubernetes send it, to a `latch serve` under load:
//! it shuts down like Ctrl-C (stops accepting, drains the requests in flight, lets a refresh in
//! flight finish and store its tokens, even once its caller has stopped waiting, writes the
//! usage it holds) and exits 0.

use crate::harness::fake_provider::FakeProvider;
use crate::harness::{KilledOnDrop, MASTER_KEY, Seed, latch_command, seed_connection, wait_until};
use latch_server::store::Store;
use latch_server::vault::{MasterKey, Vault};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

/// Users whose fresh tokens are asked for in a loop.
const USERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_usage_and_no_refresh() {
    let fake = FakeProvider::start().await;
    // The provider rotates `late`'s refresh token at once but holds its answer 1.5 s: SIGTERM
    // lands in between, when exiting would lose the only refresh token that still works.
    fake.with(|s| {
        s.current_refresh_token = Some("rt-default".into());
        s.hold_ms = 1500;
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/latch.db", dir.path().display());
    let port = crate::harness::free_port();
    let public = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("latch.toml"),
        format!(
            "background_refresh = false\nrefresh_caller_wait_ms = 200\n[providers.acme]\nclient_id = \"client-acme\"\n\
             authorization_url = \"{u}/authorize\"\ntoken_url = \"{u}/token\"\nscopes = [\"read\", \"write\"]\n\
             client_secret_env = \"LATCH_IT_ACME_SECRET\"\n\
             identity = {{ url = \"{u}/userinfo\", account_identifier = \"$.sub\" }}\n",
            u = fake.url
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut c = latch_command(dir.path(), &url);
        c.args(args)
            .env("LATCH_CONFIG", dir.path().join("latch.toml"))
            .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCH_IT_ACME_SECRET", "acme-client-secret");
        c
    };
    assert!(command(&["migrate"]).status().unwrap().success());
    let out = command(&["api-keys", "create", "--name", "loader"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let store = Store::connect(&url).await.unwrap();
    let vault = Vault::new(MasterKey::from_base64(MASTER_KEY).unwrap(), []);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let users: Vec<String> = (0..USERS).map(|i| format!("user-{i}")).collect();
    let mut fresh = Vec::new();
    for user in &users {
        fresh.push(seed_connection(&store, &vault, now, Seed { user_id: user, ..Seed::default() }).await);
    }
    let late =
        seed_connection(&store, &vault, now, Seed { user_id: "late", expires_in: Some(-10), ..Seed::default() }).await;
    store.close().await;

    let mut serve = command(&["serve"]);
    // Not every request's line: nothing reads the pipe while the load runs, and a full pipe blocks.
    serve.env("RUST_LOG", "warn,latch_server::cli=info").stdout(Stdio::null()).stderr(Stdio::piped());
    let mut server = KilledOnDrop::serving(serve, &public).await;
    let http = reqwest::Client::new();

    let ask = {
        let (http, endpoint, key) = (http.clone(), format!("{public}/v1/access-token"), key.clone());
        move |user: String| {
            let request = http.post(&endpoint).bearer_auth(&key);
            async move {
                let response = request.json(&json!({"user_id": user, "provider": "acme"})).send().await.ok()?;
                let body: Value = response.json().await.ok()?;
                (body["active"] == true).then_some(body)
            }
        }
    };
    let refreshing = {
        let request = http.post(format!("{public}/v1/access-token")).bearer_auth(&key);
        tokio::spawn(async move {
            let response = request.json(&json!({"user_id": "late", "provider": "acme"})).send().await;
            match response {
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_else(|e| e.to_string())),
                Err(e) => format!("no answer: {e}"),
            }
        })
    };
    // Each user's caller asks again and again until the server stops answering.
    let loaders: Vec<_> = users
        .iter()
        .map(|user| {
            let (ask, user) = (ask.clone(), user.clone());
            tokio::spawn(async move {
                let mut served = 0;
                for _ in 0..10_000 {
                    match ask(user.clone()).await {
                        Some(_) => served += 1,
                        None => break,
                    }
                }
                served
            })
        })
        .collect();
    // The refresh's caller stops waiting after `refresh_caller_wait_ms`; then no request holds
    // the shutdown, and the refresh is still at the provider.
    let answered = refreshing.await.unwrap();
    assert!(answered.contains("\"provider_unavailable\""), "{answered}");
    // On a loaded machine the refresh may reach the provider only after its caller gave up; the
    // SIGTERM must come while the provider holds its answer (1.5 s), so wait for the call first.
    let called = wait_until(Duration::from_secs(5), || async { fake.token_calls() == 1 }).await;
    assert!(called, "the provider has rotated the refresh token; its answer is held");
    let output = server.terminate(Duration::from_secs(20)).expect("latch serve exits within 20 s of SIGTERM");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SIGTERM is a clean exit, got {:?}: {log}", output.status);

    // The refresh ran to its end all the same: the new tokens are stored.
    let store = Store::connect(&url).await.unwrap();
    let row = store.connection(&late.id).await.unwrap().unwrap();
    assert!(row.version > late.version && row.access_token_expires_at > Some(now + 600), "{row:?}");
    assert_eq!(fake.token_calls(), 1);

    // Every connection that served a token has its use written, and its trail entry.
    let mut served_total = 0;
    for (loader, row) in loaders.into_iter().zip(&fresh) {
        let served = loader.await.unwrap();
        served_total += served;
        let stored = store.connection(&row.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at.is_some(), served > 0, "{} served {served} times", row.user_id);
    }
    assert!(served_total > USERS, "the load ran ({served_total} tokens served)");
    assert!(log.contains("SIGTERM"), "the log says why it stopped: {log}");
}

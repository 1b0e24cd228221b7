//! Load benchmark of `POST /v1/access-token` for a fresh token, next to a bare axum handler that
//! parses the same body and answers a same-sized JSON, in the same process and run.
//!
//! `cargo bench -p latch-tests --bench access_token` (PostgreSQL too when
//! `LATCH_TEST_DATABASE_URL` is set). Knobs: `BENCH_SECONDS` (default 5), `BENCH_CONCURRENCY`
//! (default 64). The server and the load generator each get their own 1-thread… N-thread runtime
//! so they share the machine's cores the way two processes would.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)] // a benchmark binary: fail loudly, print results

use latch_server::AppState;
use latch_server::auth::api_keys;
use latch_server::clock::Clock;
use latch_server::config::Config;
use latch_server::providers::{Provider, ProviderConfig};
use latch_server::store::connections::{ConnectionRow, Owner};
use latch_server::store::new_id;
use latch_shared::api::host::{AccessTokenRequest, AccessTokenResponse, ActiveToken};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

struct Target {
    name: String,
    url: String,
    api_key: String,
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut targets = vec![server_rt.block_on(bare_handler())];
    targets.push(server_rt.block_on(latch(&format!("sqlite://{}/bench.db", dir.path().display()), "latch (SQLite)")));
    let pg_db = std::env::var("LATCH_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()).map(|admin| {
        let name = format!("latch_bench_{}", uuid::Uuid::new_v4().simple());
        server_rt.block_on(async {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        });
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        (admin, name, url.to_string())
    });
    if let Some((_, _, url)) = &pg_db {
        targets.push(server_rt.block_on(latch(url, "latch (PostgreSQL)")));
    } else {
        eprintln!("*** PostgreSQL skipped: set LATCH_TEST_DATABASE_URL ***");
    }

    println!(
        "POST /v1/access-token, fresh token, concurrency {concurrency}, {seconds} s each, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("{:<22} {:>12} {:>10} {:>10} {:>8} {:>8}", "target", "req/s", "p50 µs", "p99 µs", "errors", "% bare");
    let mut bare_rps = 0.0;
    for target in &targets {
        // Warm up connections and caches, then measure.
        client_rt.block_on(load(target, concurrency, Duration::from_secs(1)));
        let (rps, p50, p99, errors) = client_rt.block_on(load(target, concurrency, Duration::from_secs(seconds)));
        if bare_rps == 0.0 {
            bare_rps = rps;
        }
        println!(
            "{:<22} {:>12.0} {:>10} {:>10} {:>8} {:>7.0}%",
            target.name,
            rps,
            p50,
            p99,
            errors,
            100.0 * rps / bare_rps
        );
    }
    for backend in ["SQLite", "PostgreSQL"] {
        let url = match backend {
            "SQLite" => format!("sqlite://{}/storm.db", dir.path().display()),
            _ => match &pg_db {
                Some((_, _, url)) => url.clone(),
                None => continue,
            },
        };
        let (n, callers) = (200, 4);
        let (endpoint, auth, calls) = server_rt.block_on(storm_setup(&url, n));
        let started = Instant::now();
        client_rt.block_on(storm_load(endpoint, auth, n, callers));
        let elapsed = started.elapsed();
        let (calls, expiries) = (calls.load(Ordering::SeqCst), n);
        println!(
            "refresh storm ({backend}): {expiries} connections expiring at once, 4 callers each: {calls} provider calls ({:.2} per expiry), all refreshed in {} ms",
            calls as f64 / expiries as f64,
            elapsed.as_millis()
        );
    }
    if let Some((admin, name, _)) = pg_db {
        drop(targets);
        drop(server_rt);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
        });
    }
}

/// The floor: axum parsing the same body and answering a same-shaped JSON, no auth, no storage.
async fn bare_handler() -> Target {
    async fn handler(axum::Json(req): axum::Json<AccessTokenRequest>) -> axum::Json<AccessTokenResponse> {
        axum::Json(AccessTokenResponse::Active(ActiveToken {
            active: true,
            access_token: format!("token-for-{}", req.user_id.unwrap_or_default()),
            token_type: "bearer".into(),
            expires_at: None,
            scopes: vec!["read".into(), "write".into()],
            missing_scopes: vec![],
            connection_id: "conn_0192aaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            account_id: "acct-1".into(),
            incoming_webhook_url: None,
        }))
    }
    let app = axum::Router::new().route("/v1/access-token", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Target { name: "bare axum handler".into(), url, api_key: "none".into() }
}

/// A real Latch server with one user's fresh connection.
async fn latch(database_url: &str, name: &str) -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::for_tests(database_url, MASTER_KEY);
    config.public_url = format!("http://{addr}").parse().unwrap();
    let provider: ProviderConfig = toml::from_str(
        "client_id = \"c\"\nauthorization_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"http://127.0.0.1:9/t\"\nidentity = { url = \"http://127.0.0.1:9/me\", account_identifier = \"$.sub\" }",
    )
    .unwrap();
    config.providers = vec![Provider::from_config("acme", provider).unwrap()];
    let state = AppState::build(config, Clock::default()).await.unwrap();
    let key = api_keys::generate();
    state.store.insert_api_key(&new_id("key"), "bench", &key.hash, state.clock.unix()).await.unwrap();
    let now = state.clock.unix();
    seed(&state, "acme", "alice", ("xoxb-bench-token", "xoxe-bench-refresh"), now, now + 86_400).await;
    tokio::spawn(async move { latch_server::serve(listener, state, std::future::pending()).await.unwrap() });
    Target { name: name.into(), url: format!("http://{addr}"), api_key: key.plaintext }
}

/// Runs `concurrency` request loops for `duration`; returns req/s, p50 and p99 in µs, errors.
async fn load(target: &Target, concurrency: usize, duration: Duration) -> (f64, u64, u64, u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let url = Arc::new(format!("{}/v1/access-token", target.url));
    let auth = Arc::new(format!("Bearer {}", target.api_key));
    let body = r#"{"user_id":"alice","provider":"acme"}"#;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, auth, stop) = (client.clone(), url.clone(), auth.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match client
                        .post(url.as_str())
                        .header("authorization", auth.as_str())
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    latencies.push(t.elapsed().as_micros() as u64);
                    if !ok {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    (all.len() as f64 / elapsed, pct(0.50), pct(0.99), errors)
}

/// A Latch with `n` connections expired at once and a counting token endpoint.
async fn storm_setup(database_url: &str, n: usize) -> (String, String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::AtomicUsize;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let provider_app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(serde_json::json!({"access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"), "expires_in": 3600, "token_type": "Bearer"}))
            }
        }),
    );
    let provider_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_url = format!("http://{}", provider_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(provider_listener, provider_app).await.unwrap() });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::for_tests(database_url, MASTER_KEY);
    config.public_url = format!("http://{addr}").parse().unwrap();
    let provider: ProviderConfig = toml::from_str(&format!(
        "client_id = \"c\"\nauthorization_url = \"{provider_url}/a\"\ntoken_url = \"{provider_url}/token\"\nidentity = {{ url = \"{provider_url}/me\", account_identifier = \"$.sub\" }}"
    ))
    .unwrap();
    config.providers = vec![Provider::from_config("storm", provider).unwrap()];
    // On PostgreSQL the fresh-token target's `acme` connections share this database.
    config.allow_orphaned_providers = true;
    let state = AppState::build(config, Clock::default()).await.unwrap();
    state
        .store
        .put_client_secret(
            "storm",
            &state.vault.seal_str(latch_server::vault::Sealed::ClientSecret.slot("storm"), "s"),
            0,
        )
        .await
        .unwrap();
    let key = api_keys::generate();
    state.store.insert_api_key(&new_id("key"), "storm", &key.hash, state.clock.unix()).await.unwrap();
    let now = state.clock.unix();
    for i in 0..n {
        seed(&state, "storm", &format!("user-{i}"), ("old", &format!("rt-old-{i}")), now - 3600, now - 1).await;
    }
    tokio::spawn(async move { latch_server::serve(listener, state, std::future::pending()).await.unwrap() });
    (format!("http://{addr}/v1/access-token"), format!("Bearer {}", key.plaintext), calls)
}

/// `callers` concurrent requests for each of the `n` connections.
async fn storm_load(url: String, auth: String, n: usize, callers: usize) {
    let client = reqwest::Client::new();
    let requests = (0..n * callers).map(|i| {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        tokio::spawn(async move {
            let body = format!("{{\"user_id\":\"user-{}\",\"provider\":\"storm\"}}", i % n);
            let r = client
                .post(url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            r.map(|r| r.status().is_success()).unwrap_or(false)
        })
    });
    let failures = futures::future::join_all(requests).await.into_iter().filter(|r| !matches!(r, Ok(true))).count();
    assert_eq!(failures, 0, "every caller got a token");
}

/// Stores one active connection with sealed `(access, refresh)` tokens, as the connect flow would.
async fn seed(state: &AppState, provider: &str, user: &str, tokens: (&str, &str), issued: i64, expires_at: i64) {
    let owner = Owner { provider, user_id: user, organization_id: "", account_id: "acct-1" };
    let row = ConnectionRow::new(new_id("conn"), owner, issued).with_tokens(&state.vault, tokens.0, Some(tokens.1));
    let row =
        ConnectionRow { scopes: "read write".to_owned().into(), access_token_expires_at: Some(expires_at), ..row };
    state.store.insert_connection(&row, None).await.unwrap();
}

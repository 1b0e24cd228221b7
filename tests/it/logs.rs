//! What `latch serve` writes to stderr: with `LATCH_LOG_FORMAT=json` every line is a JSON
//! object, each request has one info line (method, route template, status, latency, request
//! id) and its id in `x-request-id`, no line carries a credential or a query, and `debug`
//! is not flooded by the idle pollers' SQL.

use crate::harness::{KilledOnDrop, free_port, latch_command};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

/// A directory with its SQLite database and a free port: `latch ARGS` run there, on that port.
struct Rig {
    dir: tempfile::TempDir,
    port: u16,
    public: String,
}

impl Rig {
    fn new() -> Self {
        let port = free_port();
        Self { dir: tempfile::tempdir().unwrap(), port, public: format!("http://127.0.0.1:{port}") }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = latch_command(self.dir.path(), &format!("sqlite://{}/latch.db", self.dir.path().display()));
        c.args(args).env("LATCH_LISTEN", format!("127.0.0.1:{}", self.port));
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_one_per_request_and_no_secret() {
    let rig = Rig::new();
    let public = &rig.public;
    let command = |args: &[&str]| {
        let mut c = rig.command(args);
        c.env("LATCH_LOG_FORMAT", "json");
        c
    };
    let out = command(&["api-keys", "create", "--name", "logs"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut serve = command(&["serve"]);
    // `debug`: the idle pollers (the change log, every 100 ms) must not fill it with SQL.
    serve.env("RUST_LOG", "debug").stdout(Stdio::null()).stderr(Stdio::piped());
    let mut server = KilledOnDrop::serving(serve, public).await;
    let http = reqwest::Client::new();

    let proxied = http.get(format!("{public}/healthz")).header("x-request-id", "proxy-7").send().await.unwrap();
    assert_eq!(proxied.headers()["x-request-id"], "proxy-7", "a proxy's id is kept");
    let forged = http.get(format!("{public}/healthz")).header("x-request-id", "a\"}{b").send().await.unwrap();
    let made = forged.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(made != "a\"}{b" && !made.is_empty(), "an id that is not a short token is replaced: {made}");
    let minted = http
        .post(format!("{public}/v1/widget-tokens"))
        .bearer_auth(&key)
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    let widget_token = minted.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let missing = http
        .get(format!("{public}/v1/connections/conn_nope?code=secret-query"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let missing_id = missing.headers()["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await; // idle: the pollers run ~15 times

    let output = server.terminate(Duration::from_secs(20)).expect("latch serve exits on SIGTERM");
    assert!(output.status.success(), "{:?}", output.status);
    let log = String::from_utf8(output.stderr).unwrap();

    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    for secret in [key.as_str(), widget_token.as_str(), "secret-query"] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let line = |id: &str| requests.iter().find(|l| l["request_id"] == id).copied();
    let proxied = line("proxy-7").expect("the proxied request's line");
    assert_eq!(
        (proxied["method"].as_str(), proxied["route"].as_str(), proxied["status"].as_u64()),
        (Some("GET"), Some("/healthz"), Some(200))
    );
    assert_eq!(proxied["level"], "INFO");
    assert!(proxied["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    let missing = line(&missing_id).expect("the 404's line");
    assert_eq!((missing["route"].as_str(), missing["status"].as_u64()), (Some("/v1/connections/{id}"), Some(404)));
    assert!(line(&made).is_some(), "the replaced id is the one logged");
    assert_eq!(
        requests.len(),
        4 + requests.iter().filter(|l| l["route"] == "/readyz").count(),
        "one line per request: the readiness probes, two health checks, a widget token and a 404"
    );
    let sql = lines.iter().filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with("sqlx"))).count();
    assert_eq!(sql, 0, "debug is not flooded by the pollers' SQL");
    assert!(lines.iter().any(|l| l["message"] == "configuration read"), "the configuration is said as JSON too");
}

/// A log nobody reads (a stderr pipe left full, a stalled log shipper) must not stop the server:
/// lines are written by a background writer that drops them when it cannot keep up, rather
/// than by the request's own thread, which would block on the full pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_does_not_stop_the_server() {
    let rig = Rig::new();
    let public = &rig.public;
    let mut serve = rig.command(&["serve"]);
    // Piped and never read: a pipe holds 64 KiB, about 400 request lines.
    serve.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped());
    let _server = KilledOnDrop::serving(serve, public).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for i in 0..3000 {
        let answer = http.get(format!("{public}/healthz")).send().await;
        assert!(answer.is_ok_and(|a| a.status() == 200), "request {i} was not served: the log blocked the server");
    }
}

//! schemathesis (every check, see `tests/schemathesis/schemathesis.toml`) against a running
//! `latch serve` on SQLite with an API key: the host API answers what its OpenAPI document says,
//! accepts what it documents as valid, rejects what it documents as invalid, never a 5xx.

use crate::harness::{latch_command, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::KilledOnDrop as Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_nothing() {
    let st = std::env::var("LATCH_SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    if Command::new(&st).arg("--version").output().is_err() {
        crate::harness::skip::missing(
            "schemathesis",
            "pip install schemathesis and set LATCH_SCHEMATHESIS (tests/run does)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = format!("sqlite://{}/latch.db", dir.path().display());
    let command = |args: &[&str]| {
        let mut c = latch_command(dir.path(), &db);
        c.args(args).env("LATCH_LISTEN", format!("127.0.0.1:{port}"));
        c
    };
    let out = command(&["api-keys", "create", "--name", "schemathesis"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let _server = Server(command(&["serve"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = wait_until(Duration::from_secs(20), || async {
        http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/schemathesis.toml");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .arg("--config-file")
            .arg(config)
            .args(["run", &format!("{base}/openapi.json"), "-H", &format!("Authorization: Bearer {key}")])
            .args(["--max-examples", "30", "--seed", "20261201", "--exclude-path-regex", "^/widget/", "--no-color"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "schemathesis found failures:\n{report}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(report.contains("passed"), "{report}");
}

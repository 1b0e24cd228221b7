//! An operator's first day, through the built binary: the README's "Using it" steps pasted into
//! a shell in an empty directory, `latch init`, paths relative to the configuration file, the
//! start-up summary, the widget built into the binary, and a provider without a client secret.

use crate::harness::{KilledOnDrop, latch_binary};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The shell blocks of the README's "Using it" section: the set-up, then the host backend's calls.
fn using_it_blocks() -> (String, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("\n## Using it\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut blocks = section.split("```sh\n").skip(1).map(|b| b.split("\n```").next().unwrap().to_owned());
    (blocks.next().unwrap(), blocks.next().unwrap())
}

/// `bash -euo pipefail` on `script` in `dir`, a fresh environment with `latch` on the PATH.
fn bash(dir: &Path, script: &str, stdin: &str, port: u16) -> (bool, String, String) {
    std::fs::write(dir.join(".script.sh"), script).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", latch_binary().parent().unwrap().display());
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", ".script.sh"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_readme_steps_work_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::harness::free_port();
    let (setup, calls) = using_it_blocks();
    let (setup, serve) = setup.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(serve, "latch serve", "the set-up ends by serving");

    // Everything before `latch serve`, with the client secret typed on stdin.
    let (ok, _, err) = bash(dir.path(), &format!("{setup}\nprintf %s \"$KEY\" > .key\n"), "xoxs-CANARY-secret\n", port);
    assert!(ok, "the README's set-up failed:\n{err}");
    assert!(err.contains("configuration: latch.toml"), "every command says what it read: {err}");
    assert_eq!((mode(&dir.path().join("latch.toml")), mode(&dir.path().join("master.key"))), (0o600, 0o600));
    assert_eq!(mode(&dir.path().join("latch-data/latch.db")), 0o600);
    let key = std::fs::read_to_string(dir.path().join(".key")).unwrap();
    assert!(key.starts_with("latch_sk_"), "{key:?}");

    let log = std::fs::File::create(dir.path().join(".serve.log")).unwrap();
    let mut serve = Command::new(latch_binary());
    serve
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    let url = format!("http://127.0.0.1:{port}");
    let mut server = KilledOnDrop::serving(serve, &url).await;

    // The host backend's calls, as printed (on this test's port).
    let calls = calls.replace("localhost:8080", &format!("localhost:{port}"));
    let (ok, out, err) = bash(dir.path(), &format!("KEY=$(cat .key)\n{calls}"), "", port);
    assert!(ok, "{err}");
    let answers: Vec<Value> = serde_json::Deserializer::from_str(&out).into_iter().map(Result::unwrap).collect();
    let widget_token = answers[0]["token"].as_str().unwrap_or_else(|| panic!("{out}")).to_owned();
    assert_eq!(answers[1]["error"], "not_installed", "{out}");

    // The widget comes from the binary, run from a directory that has none.
    let http = reqwest::Client::new();
    let loader = http.get(format!("{url}/widget/latch.js")).send().await.unwrap().text().await.unwrap();
    assert!(loader.contains("Latch widget loader"), "{loader}");
    let wasm = loader.split("wasm: \"").nth(1).unwrap().split('"').next().unwrap();
    let module = http.get(format!("{url}{wasm}")).send().await.unwrap();
    assert_eq!(module.headers()["content-type"], "application/wasm");
    assert!(module.bytes().await.unwrap().starts_with(b"\0asm"));

    // Slack has its secret: offered, and every view agrees. Without it: offered nowhere.
    let offered = || async {
        let providers: Value =
            http.get(format!("{url}/v1/providers")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        let integrations: Value = http
            .get(format!("{url}/widget/v1/integrations"))
            .bearer_auth(&widget_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = Command::new(latch_binary())
            .args(["providers", "list"])
            .current_dir(dir.path())
            .env_clear()
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        (
            providers["data"][0]["client_secret_configured"].clone(),
            integrations["data"].as_array().unwrap().len(),
            listed,
        )
    };
    let (configured, integrations, listed) = offered().await;
    assert_eq!((configured, integrations), (Value::Bool(true), 1));
    assert!(listed.starts_with("slack\tSlack\tchat:write\tsecret stored\t"), "{listed}");
    let removed = Command::new(latch_binary())
        .args(["secret", "remove", "--provider", "slack"])
        .current_dir(dir.path())
        .env_clear()
        .status()
        .unwrap();
    assert!(removed.success());
    let (configured, integrations, listed) = offered().await;
    assert_eq!((configured, integrations), (Value::Bool(false), 0));
    assert!(listed.starts_with("slack\tSlack\tchat:write\tno secret\t"), "{listed}");

    let out = server.terminate(Duration::from_secs(20)).expect("latch serve stops on SIGTERM");
    assert!(out.status.success());
    let log = std::fs::read_to_string(dir.path().join(".serve.log")).unwrap();
    let summary = log.lines().find(|l| l.contains("latch is listening")).unwrap_or_else(|| panic!("{log}"));
    for part in ["configuration=latch.toml", "backend=sqlite", "slack (secret stored)", "built into the binary"] {
        assert!(summary.contains(part), "the summary lacks {part}: {summary}");
    }
    assert!(!log.contains("xoxs-CANARY-secret") && !log.contains(&key), "a secret in the log");
}

#[test]
fn init_writes_private_files_never_overwrites_and_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let latch = |args: &[&str]| {
        let out = Command::new(latch_binary()).args(args).current_dir(dir.path()).env_clear().output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, _, err) = latch(&["init", "--dir", "conf"]);
    assert!(ok, "{err}");
    assert!(err.contains("cd conf") && err.contains("latch api-keys create") && err.contains("latch serve"), "{err}");
    let conf = dir.path().join("conf");
    assert_eq!((mode(&conf.join("latch.toml")), mode(&conf.join("master.key"))), (0o600, 0o600));
    let key = std::fs::read_to_string(conf.join("master.key")).unwrap();

    let (ok, _, err) = latch(&["init", "--dir", "conf"]);
    assert!(!ok && err.contains("already exists; nothing was written"), "{err}");
    assert_eq!(std::fs::read_to_string(conf.join("master.key")).unwrap(), key, "the key is untouched");

    // Started from another directory, the file's relative paths (master.key, the default
    // data_dir) are found beside it, not in the working directory.
    let (ok, out, err) = latch(&["--config", "conf/latch.toml", "api-keys", "create", "--name", "ci"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("latch_sk_"));
    assert!(err.contains("configuration: conf/latch.toml"), "{err}");
    assert!(conf.join("latch-data/latch.db").exists());
    assert!(!dir.path().join("latch-data").exists());
}

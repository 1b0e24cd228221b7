//! The `latch` binary as operators use it: key management on stdout/stderr, secrets from stdin,
//! and `serve` starting from environment configuration. Runs the binary built by
//! `cargo build -p latch-server` (the README's test command builds it first).

use crate::harness::{latch_command, wait_until};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

fn latch(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = latch_command(dir, &format!("sqlite://{}/latch.db", dir.display()));
    cmd.args(args).env("RUST_LOG", "info");
    cmd
}

#[test]
fn api_keys_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let out = latch(dir.path(), &["api-keys", "create", "--name", "ci"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "the key alone on stdout");
    assert!(key.starts_with("latch_sk_") && key.len() == 52, "{key}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));

    let dup = latch(dir.path(), &["api-keys", "create", "--name", "ci"]).output().unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let list = latch(dir.path(), &["api-keys", "list"]).output().unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("\tci\tactive"), "{listed}");
    assert!(!listed.contains(key), "list never shows the key");

    assert!(latch(dir.path(), &["api-keys", "revoke", "ci"]).status().unwrap().success());
    let listed = String::from_utf8(latch(dir.path(), &["api-keys", "list"]).output().unwrap().stdout).unwrap();
    assert!(listed.contains("\tci\trevoked"), "{listed}");
    assert!(!latch(dir.path(), &["api-keys", "revoke", "ci"]).status().unwrap().success());

    let db = std::fs::read(dir.path().join("latch.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(key));
}

#[test]
fn secret_add_reads_stdin_and_config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latch.toml"), "[providers.slack]\nclient_id = \"123.456\"\n").unwrap();
    let mut child = latch(dir.path(), &["--config", "latch.toml", "secret", "add", "--provider", "slack"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"CANARYsecretvalue\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let providers = latch(dir.path(), &["--config", "latch.toml", "providers", "list"]).output().unwrap();
    let providers = String::from_utf8(providers.stdout).unwrap();
    assert!(providers.starts_with("slack\tSlack\tchat:write,channels:read\tsecret stored"), "{providers}");
    let db = std::fs::read(dir.path().join("latch.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("CANARYsecretvalue"));

    std::fs::write(dir.path().join("bad.toml"), "listen = \"127.0.0.1:1\"\ncolour = \"red\"\n").unwrap();
    let out = latch(dir.path(), &["--config", "bad.toml", "migrate"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("colour") && err.contains("line 2"), "{err}");

    std::fs::write(
        dir.path().join("secret.toml"),
        "[providers.slack]\nclient_id = \"x\"\nclient_secret = \"CANARYinline\"\n",
    )
    .unwrap();
    let out = latch(dir.path(), &["--config", "secret.toml", "migrate"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("providers.slack.client_secret") && !err.contains("CANARYinline"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_starts_from_the_environment_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = latch(dir.path(), &["serve"])
        .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let up = wait_until(Duration::from_secs(20), || async {
        client.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(up, "latch serve never became ready: {}", String::from_utf8_lossy(&out.stderr));

    let out = latch(dir.path(), &["serve"])
        .env("LATCH_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCH_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key id"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn keys_rotate_moves_secrets_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latch.toml"), "[providers.slack]\nclient_id = \"1.2\"\n").unwrap();
    let add = |key: &str| {
        let mut child = latch(dir.path(), &["--config", "latch.toml", "secret", "add", "--provider", "slack"])
            .env("LATCH_MASTER_KEY", key)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"slack-secret\n").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(add(crate::harness::MASTER_KEY).status.success());
    let new =
        String::from_utf8(latch(dir.path(), &["keys", "generate"]).output().unwrap().stdout).unwrap().trim().to_owned();
    let out = latch(dir.path(), &["--config", "latch.toml", "keys", "rotate"])
        .env("LATCH_MASTER_KEY", &new)
        .env("LATCH_PREVIOUS_MASTER_KEYS", crate::harness::MASTER_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("re-sealed "), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is no longer used"));
    // The new key alone works; the old key alone is refused.
    assert!(add(&new).status.success());
    let refused = add(crate::harness::MASTER_KEY);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("master key id"));
}

#[test]
fn the_configuration_is_found_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    // No file anywhere: said, and defaults are used.
    let none = latch(dir.path(), &["providers", "list"]).output().unwrap();
    assert!(none.status.success(), "{}", stderr(&none));
    assert!(stderr(&none).contains("configuration: none"), "{}", stderr(&none));
    // An error naming a provider the configuration lacks says where Latch looked.
    let mut add = latch(dir.path(), &["secret", "add", "--provider", "slack"]);
    let missing = add.stdin(Stdio::null()).output().unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("provider_not_found") && stderr(&missing).contains("no ./latch.toml"),
        "{}",
        stderr(&missing)
    );
    // ./latch.toml is read without --config or LATCH_CONFIG, and said.
    std::fs::write(dir.path().join("latch.toml"), "[providers.slack]\nclient_id = \"123.456\"\n").unwrap();
    let found = latch(dir.path(), &["providers", "list"]).output().unwrap();
    assert!(stderr(&found).contains("configuration: latch.toml"), "{}", stderr(&found));
    assert!(String::from_utf8_lossy(&found.stdout).starts_with("slack\tSlack"), "the file was read");
    let missing = latch(dir.path(), &["secret", "add", "--provider", "github"]).stdin(Stdio::null()).output().unwrap();
    assert!(stderr(&missing).contains("(read latch.toml)"), "{}", stderr(&missing));
    // Times for people and scripts: RFC 3339.
    assert!(latch(dir.path(), &["api-keys", "create", "--name", "ci"]).output().unwrap().status.success());
    let listed = String::from_utf8(latch(dir.path(), &["api-keys", "list"]).output().unwrap().stdout).unwrap();
    let created = listed.split('\t').find_map(|f| f.strip_prefix("created ")).unwrap();
    assert!(time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).is_ok(), "{listed}");
    // The version names the commit it was built from.
    let version = String::from_utf8(latch(dir.path(), &["--version"]).output().unwrap().stdout).unwrap();
    assert!(version.starts_with("latch ") && version.contains("(commit "), "{version}");
}

#[test]
fn a_failed_start_leaves_a_fresh_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/latch.db");
    let url = format!("sqlite://{}", db.display());
    // No master key.
    let out = latch_command(dir.path(), &url)
        .arg("serve")
        .env_remove("LATCH_MASTER_KEY")
        .env("LATCH_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("no master key"), "{said}");
    assert!(!db.exists() && !db.parent().unwrap().exists(), "the database was created before the key was checked");
    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = latch_command(dir.path(), &url)
        .arg("serve")
        .env("LATCH_LISTEN", taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("cannot listen on"), "{said}");
    assert!(!db.exists(), "the database was created before the listener was checked");
}

#[test]
fn files_holding_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latch.db");
    let url = format!("sqlite://{}", db.display());
    assert!(latch_command(dir.path(), &url).arg("migrate").status().unwrap().success());
    for file in [db.clone(), dir.path().join("latch.db-wal")] {
        if let Ok(meta) = std::fs::metadata(&file) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{} is created private", file.display());
        }
    }
    // A key file and a database others can read are a warning at start.
    let key = dir.path().join("master.key");
    std::fs::write(&key, crate::harness::MASTER_KEY).unwrap();
    for file in [&key, &db] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = latch_command(dir.path(), &url)
        .arg("serve")
        .env_remove("LATCH_MASTER_KEY")
        .env("LATCH_MASTER_KEY_FILE", &key)
        .env("LATCH_LISTEN", taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    for what in ["the master key file can be read by other users", "the database can be read by other users"] {
        assert!(said.contains(what), "{what}: {said}");
    }
}

//! The deployment files in `deploy/` stay true: the systemd unit passes `systemd-analyze
//! verify` and keeps its hardening, the example configuration is one Latch accepts, and the
//! Dockerfile builds the widget into the binary and runs it unprivileged.

use crate::harness::{MASTER_KEY, latch_binary, skip};
use std::path::Path;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = deploy_file("latch.service");
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=latch",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "UMask=0077",
        "LoadCredential=master.key:",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(setting), "deploy/latch.service lacks {setting:?}");
    }
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        return skip::missing("systemd-analyze", "apt-get install systemd");
    }
    // Verified as installed, with the binary this test suite built in /usr/local/bin's place.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/latch", &latch_binary().display().to_string())).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("latch.service"), "systemd-analyze verify: {said}");
}

#[test]
fn the_example_configuration_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.toml");
    std::fs::write(&path, deploy_file("latch.example.toml")).unwrap();
    let env = |key: &str| (key == "LATCH_MASTER_KEY").then(|| MASTER_KEY.to_owned());
    let config = latch_server::config::Config::load(Some(&path), env, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.log_format, latch_server::telemetry::LogFormat::Json);
    assert_eq!(config.public_url.as_str(), "https://latch.example.com/");
}

/// No Docker engine runs where this suite runs, so the image is not built here: this checks
/// what can be read (`docker build` itself was not run; see the README).
#[test]
fn the_dockerfile_builds_the_widget_in_and_runs_unprivileged() {
    let file = deploy_file("Dockerfile");
    let stages: Vec<&str> = file.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (stages[0], stages[1]);
    let widget = build.find("widget/build").expect("the widget is built in the image");
    let server = build.find("cargo build --release --locked -p latch-server").expect("the release server");
    assert!(widget < server, "the widget is built before the server, which embeds it");
    assert!(!runtime.contains("widget-dist"), "the runtime needs no widget files beside the binary");
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).expect("the runtime names its user");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "USER {user}");
    for line in
        ["LATCH_MASTER_KEY_FILE=/run/secrets/", "STOPSIGNAL SIGTERM", "VOLUME /var/lib/latch", "CMD [\"serve\"]"]
    {
        assert!(runtime.contains(line), "the runtime stage lacks {line:?}");
    }
    assert!(!file.contains("LATCH_MASTER_KEY="), "no master key in the image");
    let ignore = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore")).unwrap();
    for kept_out in ["target/", "*.key", "latch-data/"] {
        assert!(ignore.lines().any(|l| l == kept_out), ".dockerignore lets {kept_out} into the build context");
    }
}

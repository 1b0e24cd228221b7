//! The deployment files in `deploy/` stay true: the systemd unit passes `systemd-analyze
//! verify` and keeps its hardening, and the example configuration is one Latch accepts.

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

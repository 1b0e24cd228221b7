//! Honest skips. A test whose service (PostgreSQL, Chromium) is missing is not a passed test:
//! in CI (`CI=true`) it fails, naming what to install; on a developer machine it says so loudly
//! and is recorded in `target/tmp/latch-skipped.txt`, which `tests/run` counts apart from passes.

use std::io::Write as _;

/// The file skipped tests are recorded in (one line each).
pub fn record_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("latch-skipped.txt")
}

/// Whether this run is CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Call when `service` is missing; returns (so the test can return early) only outside CI.
pub fn missing(service: &str, hint: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(!in_ci(), "{service} is missing, and CI=true does not allow skipping {test}: {hint}");
    eprintln!("\n*** SKIPPED (not passed): {test} needs {service}: {hint} ***\n");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(record_file()) {
        let _ = writeln!(file, "{test} (needs {service})");
    }
}

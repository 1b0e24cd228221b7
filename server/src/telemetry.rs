//! Logging setup. Credentials never reach a log line: `Authorization` and `Cookie` are marked
//! sensitive before the trace layer, secrets are [`Secret`](crate::vault::Secret)s with redacting
//! `Debug`, and provider error bodies are reduced to codes before anything logs them.

use tracing_subscriber::EnvFilter;

/// Logs to stderr (stdout is for command output), filtered by `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

//! Logging setup. Credentials never reach a log line: `Authorization` and `Cookie` are marked
//! sensitive before the trace layer, secrets are [`Secret`](crate::vault::Secret)s with redacting
//! `Debug`, provider error bodies are reduced to codes before anything logs them, and a
//! request's line names its route template, never its path or query (`api::measured`).

use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`log_format`, `LATCH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line an event, coloured only on a terminal.
    #[default]
    Text,
    /// For log pipelines: one JSON object a line, the event's fields at the top level.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(()),
        }
    }
}

/// The filter: `RUST_LOG` (default `info`). The database driver's per-statement lines are kept
/// at `warn` unless `RUST_LOG` names `sqlx` itself: at `debug`, the idle pollers' SQL would
/// drown everything else.
fn filter() -> EnvFilter {
    let given = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let quiet_sql = given.as_deref().is_none_or(|v| !v.contains("sqlx"));
    let filter = EnvFilter::new(given.as_deref().unwrap_or("info"));
    match "sqlx::query=warn".parse() {
        Ok(directive) if quiet_sql => filter.add_directive(directive),
        _ => filter,
    }
}

/// Logs to stderr (stdout is for command output), through a background writer: a stderr that
/// nobody reads (a full pipe, a stalled log shipper) then costs lines, which are dropped once
/// its queue is full, and never blocks a request. Keep the guard until exit: dropping it
/// writes what is queued.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    guard
}

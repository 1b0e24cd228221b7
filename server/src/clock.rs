//! The only reader of wall-clock time (clippy's `disallowed-methods` enforces it).
//!
//! Domain code takes `now` from a [`Clock`] so tests can move time forward without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// System time plus an offset that tests may advance.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    /// The current time.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_seconds.load(Ordering::Relaxed))
    }

    /// The current time as Unix seconds, the representation the store uses.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves this clock (and every clone of it) forward; for tests.
    pub fn advance(&self, seconds: i64) {
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Waits; the one sanctioned sleep for back-off and background loops.
    #[allow(clippy::disallowed_methods)]
    pub async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Converts stored Unix seconds to a timestamp (clamped into the representable range).
pub fn from_unix(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Unix seconds as RFC 3339 (`2026-12-01T09:28:19Z`), as people and scripts read times.
pub fn rfc3339(seconds: i64) -> String {
    from_unix(seconds).format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| seconds.to_string())
}

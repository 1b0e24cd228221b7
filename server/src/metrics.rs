//! Prometheus metrics (`GET /metrics`): counters and histograms recorded where things happen,
//! and gauges read from the database when scraped (connections by status, webhook backlog), so
//! every replica reports the same stored truth and no write path keeps a count.
//!
//! One registry per process: the hot path records into lock-free atomics, with no allocation
//! for labels that already exist.

use crate::store::{Store, StoreError};
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Everything this process records.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    cache_hits: IntCounter,
    cache_misses: IntCounterVec,
    cache_entries: IntGauge,
    refresh_waits: IntCounter,
    refreshes: IntCounterVec,
    provider_calls: IntCounterVec,
    provider_seconds: HistogramVec,
    deliveries: IntCounterVec,
}

/// Latency buckets from 0.5 ms to 10 s: the fresh-token path lives in the first few.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[allow(clippy::expect_used)] // static names and labels: a mistake here is a programming error caught by every test
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
        registry.register(Box::new(c.clone())).expect("registered once");
        c
    };
    let histogram = |name: &str, help: &str, labels: &[&str]| {
        let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels).expect("valid");
        registry.register(Box::new(h.clone())).expect("registered once");
        h
    };
    let plain = |name: &str, help: &str| {
        let c = IntCounter::new(name, help).expect("valid metric");
        registry.register(Box::new(c.clone())).expect("registered once");
        c
    };
    Metrics {
        requests: counter(
            "latch_http_requests_total",
            "HTTP requests by route, method and status.",
            &["route", "method", "status"],
        ),
        request_seconds: histogram(
            "latch_http_request_duration_seconds",
            "HTTP request latency by route (the fresh-token path is route=\"/v1/access-token\").",
            &["route"],
        ),
        cache_hits: plain("latch_token_cache_hits_total", "Access-token lookups answered from the row cache."),
        cache_misses: counter(
            "latch_token_cache_misses_total",
            "Access-token lookups that read the database, by why the cache could not answer: absent, \
             expired (older than its TTL) or changed (its owner's connections changed since it was read).",
            &["reason"],
        ),
        cache_entries: {
            let g = IntGauge::new("latch_token_cache_entries", "Rows in this process's token cache.").expect("valid");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        },
        refresh_waits: plain(
            "latch_access_token_refresh_waits_total",
            "Access-token calls that had to wait for a refresh (the proactive refresher was late).",
        ),
        refreshes: counter(
            "latch_refreshes_total",
            "Token refreshes by provider and outcome.",
            &["provider", "outcome"],
        ),
        provider_calls: counter(
            "latch_provider_requests_total",
            "Calls to providers by endpoint and HTTP status.",
            &["provider", "endpoint", "status"],
        ),
        provider_seconds: histogram(
            "latch_provider_request_duration_seconds",
            "Provider call latency by provider and endpoint.",
            &["provider", "endpoint"],
        ),
        deliveries: counter("latch_webhook_deliveries_total", "Webhook delivery attempts by outcome.", &["outcome"]),
        registry,
    }
});

/// One HTTP request served (`route` is the matched route template, never the raw path).
pub fn request(route: &str, method: &str, status: u16, took: Duration) {
    let m = &*METRICS;
    m.requests.with_label_values(&[route, method, status_text(status)]).inc();
    m.request_seconds.with_label_values(&[route]).observe(took.as_secs_f64());
}

/// An access-token lookup: from the cache, or why not.
pub fn token_lookup(miss: Option<&'static str>) {
    match miss {
        None => METRICS.cache_hits.inc(),
        Some(reason) => METRICS.cache_misses.with_label_values(&[reason]).inc(),
    }
}

/// How many rows the token cache holds now.
pub fn token_cache_entries(n: usize) {
    METRICS.cache_entries.set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// An access-token call that had to refresh before answering (forced ones are not counted).
pub fn refresh_wait() {
    METRICS.refresh_waits.inc();
}

/// A refresh's outcome: `refreshed`, `needs_reauthorization`, `transient`, `stale` or `error`.
pub fn refresh(provider: &str, outcome: &str) {
    METRICS.refreshes.with_label_values(&[provider, outcome]).inc();
}

/// One call to a provider endpoint (`token`, `revocation`, `identity`); status 0 when no answer came.
pub fn provider_call(provider: &str, endpoint: &str, status: u16, took: Duration) {
    let m = &*METRICS;
    m.provider_calls.with_label_values(&[provider, endpoint, status_text(status)]).inc();
    m.provider_seconds.with_label_values(&[provider, endpoint]).observe(took.as_secs_f64());
}

/// One webhook delivery attempt.
pub fn delivery(delivered: bool) {
    METRICS.deliveries.with_label_values(&[if delivered { "delivered" } else { "failed" }]).inc();
}

/// Status codes as label values without an allocation per request.
fn status_text(status: u16) -> &'static str {
    const CODES: &[(u16, &str)] = &[
        (0, "0"),
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (303, "303"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    CODES.iter().find(|(c, _)| *c == status).map_or_else(|| class(status), |(_, t)| t)
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The text exposition: what this process recorded, then the gauges read from the store now.
pub async fn render(store: &Store) -> Result<String, StoreError> {
    let mut gauges = String::new();
    gauges.push_str("# HELP latch_connections Connections by provider and status (tombstones as deleted).\n");
    gauges.push_str("# TYPE latch_connections gauge\n");
    for (provider, status, count) in store.connections_per_status().await? {
        gauges.push_str(&format!(
            "latch_connections{{provider=\"{}\",status=\"{}\"}} {count}\n",
            escape(&provider),
            escape(&status)
        ));
    }
    for (provider, count) in store.tombstones_per_provider().await? {
        gauges
            .push_str(&format!("latch_connections{{provider=\"{}\",status=\"deleted\"}} {count}\n", escape(&provider)));
    }
    gauges.push_str("# HELP latch_webhook_backlog Events not yet delivered, by endpoint.\n");
    gauges.push_str("# TYPE latch_webhook_backlog gauge\n");
    for endpoint in store.endpoints().await? {
        let backlog = store.events_after_count(endpoint.cursor()).await?;
        gauges.push_str(&format!("latch_webhook_backlog{{endpoint=\"{}\"}} {backlog}\n", escape(&endpoint.id)));
    }
    let mut recorded = Vec::new();
    // Encoding in-memory metrics to a Vec cannot fail but for a bug; then they are left out.
    if let Err(e) = TextEncoder::new().encode(&METRICS.registry.gather(), &mut recorded) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    Ok(String::from_utf8_lossy(&recorded).into_owned() + &gauges)
}

/// A label value as the text format wants it (`\`, `"` and newlines escaped).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

//! `GET /metrics` after real traffic, read back by a Prometheus text parser (`prometheus-parse`).
//! Counters are per process (tests share one), so they are checked as at least what this test
//! did; gauges come from this test's database, so they are exact.

use crate::harness::{Seed, TestApp, assert_error, both, send};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            // A histogram's count is its +Inf bucket.
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .reduce(|a, b| a + b)
}

both!(metrics_after_traffic_parse_as_prometheus_text, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| s.current_refresh_token = Some("rt-default".into()));
    app.seed(Seed::default()).await;
    app.seed(Seed { user_id: "bob", expires_in: Some(-10), ..Seed::default() }).await;
    let gone = app.seed(Seed { user_id: "carol", ..Seed::default() }).await;
    let (status, body) = app
        .post("/v1/webhook-endpoints", json!({"url": "http://127.0.0.1:9/hook", "events": ["connection.deleted"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let endpoint = body["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let (status, _) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
        assert_eq!(status, 200);
    }
    let (status, refreshed) = app.post("/v1/access-token", json!({"user_id": "bob", "provider": "acme"})).await;
    assert_eq!((status, &refreshed["active"]), (200, &json!(true)), "{refreshed}");
    assert_eq!(app.get("/v1/connections/conn_nope").await.0, 404);
    // A transaction held open elsewhere on the PostgreSQL server keeps the deletion's event from
    // being delivered (commit order), but it is waiting all the same: the backlog counts it.
    let held = match backend {
        crate::harness::db::Backend::Postgres => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT txid_current()").execute(&mut conn).await.unwrap();
            Some(conn)
        }
        crate::harness::db::Backend::Sqlite => None,
    };
    let (status, _) = send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{}", gone.id))).await;
    assert_eq!(status, 204);

    assert_error(&send(app.http.get(format!("{}/metrics", app.url))).await, 401, "unauthorized");
    let response = app.host(reqwest::Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();

    let token_route = [("route", "/v1/access-token"), ("method", "POST"), ("status", "200")];
    assert!(value(&scrape, "latch_http_requests_total", &token_route).unwrap_or(0.0) >= 4.0, "{text}");
    // prometheus-parse drops samples whose label values hold braces (Prometheus reads them), so
    // the route template is checked in the text.
    let by_template = r#"latch_http_requests_total{method="GET",route="/v1/connections/{id}",status="404"}"#;
    assert!(text.contains(by_template), "routes, not raw paths: {text}");
    assert!(!text.contains("conn_nope"), "no label per id");
    let latency = value(&scrape, "latch_http_request_duration_seconds", &[("route", "/v1/access-token")]).unwrap();
    assert!(latency >= 4.0, "the access-token latency histogram counts requests: {latency}");
    assert!(value(&scrape, "latch_token_cache_hits_total", &[]).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(value(&scrape, "latch_token_cache_misses_total", &[]).unwrap_or(0.0) >= 1.0);
    let refreshes = value(&scrape, "latch_refreshes_total", &[("provider", "acme"), ("outcome", "refreshed")]);
    assert!(refreshes.unwrap_or(0.0) >= 1.0, "{text}");
    let calls = [("provider", "acme"), ("endpoint", "token"), ("status", "200")];
    assert!(value(&scrape, "latch_provider_requests_total", &calls).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(value(&scrape, "latch_provider_request_duration_seconds", &[("provider", "acme")]).unwrap_or(0.0) >= 1.0);
    let connections = |status| value(&scrape, "latch_connections", &[("provider", "acme"), ("status", status)]);
    assert_eq!((connections("active"), connections("deleted")), (Some(2.0), Some(1.0)), "from this database");
    assert_eq!(value(&scrape, "latch_webhook_backlog", &[("endpoint", &endpoint)]), Some(1.0), "{text}");
    drop(held);
});

both!(with_admin_listen_the_host_api_and_metrics_leave_the_public_listener, |backend| async move {
    crate::harness::logs::install();
    let db = crate::harness::db::TestDb::create(backend).await;
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (public_url, admin_url) =
        (format!("http://{}", public.local_addr().unwrap()), format!("http://{}", admin.local_addr().unwrap()));
    let mut config = latch_server::config::Config::for_tests(&db.url, crate::harness::MASTER_KEY);
    config.public_url = public_url.parse().unwrap();
    config.admin_listen = Some(admin.local_addr().unwrap());
    let state = latch_server::AppState::build(config, latch_server::clock::Clock::default()).await.unwrap();
    let key = latch_server::auth::api_keys::generate();
    state.store.insert_api_key("key_admin", "ops", &key.hash, state.clock.unix()).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(latch_server::serve_split(public, Some(admin), state, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();

    // The public listener: what browsers and providers reach, and nothing of the host API.
    assert_eq!(send(http.get(format!("{public_url}/healthz"))).await.0, 200);
    assert_eq!(send(http.get(format!("{public_url}/.well-known/jwks.json"))).await.0, 200);
    assert_error(
        &send(http.get(format!("{public_url}/v1/providers")).bearer_auth(&key.plaintext)).await,
        404,
        "not_found",
    );
    assert_error(&send(http.get(format!("{public_url}/metrics")).bearer_auth(&key.plaintext)).await, 404, "not_found");
    // The admin listener: the host API, still behind its keys, and metrics for the scraper.
    assert_eq!(send(http.get(format!("{admin_url}/v1/providers")).bearer_auth(&key.plaintext)).await.0, 200);
    assert_error(&send(http.get(format!("{admin_url}/v1/providers"))).await, 401, "unauthorized");
    let scraped = http.get(format!("{admin_url}/metrics")).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(value(&scrape, "latch_http_requests_total", &[("route", "/v1/providers"), ("status", "200")]).is_some());
    assert_error(&send(http.get(format!("{admin_url}/widget/v1/integrations"))).await, 404, "not_found");

    let _ = tx.send(());
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(15), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "both listeners stop on shutdown: {stopped:?}");
});

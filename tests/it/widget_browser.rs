//! The widget in headless Chromium on the demo host page, across origins as in production: the
//! host page on `http://127.0.0.1:A`, Latch on `http://localhost:B`. Connect the sandbox through
//! the real popup and consent page, deploy, lose the grant at the provider, reconnect,
//! disconnect with confirmation, renew an expired widget token through `getToken`, and ignore a
//! forged `postMessage`. SQLite only: the storage paths are covered on both backends elsewhere.

use crate::harness::chrome::{self, Chrome};
use crate::harness::db::Backend;
use crate::harness::{TestApp, send};
use fantoccini::Locator;
use latch_server::auth::api_keys;
use latch_server::store::new_id;
use serde_json::json;
use std::time::Duration;

fn widget_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/widget-dist")
}

/// Latch in demo mode on `localhost`, and the demo host app on `127.0.0.1`.
async fn demo() -> (TestApp, String) {
    assert!(widget_dir().join("index.html").exists(), "the widget is not built: run widget/build (tests/run does)");
    let latch_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://127.0.0.1:{}", host_listener.local_addr().unwrap().port());
    let latch = format!("http://localhost:{}", latch_listener.local_addr().unwrap().port());
    let (latch_c, host_c) = (latch.clone(), host.clone());
    let app = TestApp::start_on(latch_listener, Backend::Sqlite, move |c| {
        c.demo = true;
        c.public_url = latch_c.parse().unwrap();
        c.allowed_origins = vec![host_c];
        c.widget_dir = Some(widget_dir());
    })
    .await;
    let key = api_keys::generate();
    app.state.store.insert_api_key(&new_id("key"), "demo-host", &key.hash, app.state.clock.unix()).await.unwrap();
    let demo = latch_server::demo::Demo::new(latch, host.clone(), key.plaintext);
    tokio::spawn(async move { axum::serve(host_listener, latch_server::demo::router(demo)).await.unwrap() });
    (app, host)
}

/// In the popup: approve on the sandbox consent page; back in the host page afterwards.
async fn approve_in_popup(chrome: &Chrome) {
    let main = chrome.client.window().await.unwrap();
    let mut popup = None;
    for _ in 0..50 {
        let windows = chrome.client.windows().await.unwrap();
        if let Some(w) = windows.into_iter().find(|w| *w != main) {
            popup = Some(w);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    chrome.client.switch_to_window(popup.expect("a popup opened")).await.unwrap();
    chrome.approve_consent().await;
    chrome.client.switch_to_window(main).await.unwrap();
}

/// How soon the demo page must show the widget's list, from navigation start.
const FIRST_LIST_BUDGET_MS: f64 = 300.0;

/// Milliseconds from navigation start to the widget's first rendered list: the `startTime` of
/// the `latch-first-list` mark the widget sets, waited for with a `PerformanceObserver`.
async fn first_list_ms(chrome: &Chrome) -> f64 {
    let script = "var done = arguments[arguments.length - 1]; \
        function found() { var e = performance.getEntriesByName('latch-first-list'); if (e.length) { done(e[0].startTime); } return e.length > 0; } \
        if (!found()) { new PerformanceObserver(function (list, observer) { if (found()) { observer.disconnect(); } }).observe({type: 'mark', buffered: true}); }";
    let ms = chrome.client.execute_async(script, vec![]).await.expect("the widget marks its first rendered list");
    ms.as_f64().expect("a number of milliseconds")
}

/// The time to the first rendered list on the demo page, from navigation start, by the
/// Performance API mark the widget sets: at most 300 ms. A timing, so `tests/run` runs it alone,
/// after the parallel suite (on 2 cores the other tests' load alone costs ~100 ms); a slow first
/// load is measured again, cold, in a fresh browser, at most twice, and the best must pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_list_renders_within_300_ms() {
    if !chrome::available() {
        return;
    }
    let (_app, host) = demo().await;
    let mut first_list = Vec::new();
    while first_list.len() < 3 && first_list.iter().all(|ms| *ms > FIRST_LIST_BUDGET_MS) {
        let probe = Chrome::start("widget-first-list").await;
        probe.client.goto(&format!("{host}/")).await.unwrap();
        first_list.push(first_list_ms(&probe).await);
        probe.finish().await;
    }
    let best = first_list.iter().copied().fold(f64::INFINITY, f64::min);
    let loads = first_list.iter().map(|ms| format!("{ms:.0} ms")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "widget: time to first rendered list: {best:.0} ms after navigation start (Performance API mark; loads: {loads})"
    );
    assert!(
        best <= FIRST_LIST_BUDGET_MS,
        "the first list took {loads} after navigation start (budget {FIRST_LIST_BUDGET_MS} ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_story_in_a_real_browser() {
    if !chrome::available() {
        return;
    }
    let (app, host) = demo().await;
    let chrome = Chrome::start("widget-story").await;
    let c = &chrome.client;
    c.goto(&format!("{host}/")).await.unwrap();
    let first = first_list_ms(&chrome).await;
    eprintln!("widget: time to first rendered list: {first:.0} ms after navigation start (in the parallel suite)");
    assert!(chrome.widget_text().await.contains("Connect Sandbox"));
    // The icon's letter (upper-cased with the browser's Unicode tables, see model::initial).
    let icon = chrome
        .js("return document.querySelector('#integrations').shadowRoot.querySelector('.latch-icon').textContent;")
        .await;
    assert_eq!(icon, "S");
    // Host CSS (uppercase buttons) does not reach into the widget.
    let transform = chrome
        .js("return getComputedStyle(document.querySelector('#integrations').shadowRoot.querySelector('button')).textTransform;")
        .await;
    assert_eq!(transform, "none");
    chrome.screenshot("widget-empty.png").await;

    // Connect through the popup; a forged message from the host page's own origin is ignored.
    chrome.click_widget_button("Connect Sandbox").await;
    chrome.wait_widget_text("Connecting…", 10).await;
    chrome
        .js("window.postMessage({source: 'latch', type: 'connected', provider: 'sandbox', flow_id: 'x', connection_id: 'conn_forged'}, '*'); return true;")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(chrome.widget_text().await.contains("Connecting…"), "a forged message changed the widget");
    assert_eq!(chrome.js("return window.latchEvents.length;").await, 0);
    approve_in_popup(&chrome).await;
    chrome.wait_widget_text("Connected as demo-user", 20).await;
    assert!(chrome.widget_text().await.contains(latch_server::demo::DEMO_PURPOSE), "the purpose is shown");
    assert_eq!(chrome.js("return window.latchEvents[0].type;").await, "connected");
    chrome.screenshot("widget-light.png").await;
    let theme = |t: &'static str| {
        format!(
            "document.querySelector('#integrations').shadowRoot.querySelector('.latch-host').setAttribute('data-theme', '{t}'); return true;"
        )
    };
    chrome.js(&theme("dark")).await;
    chrome.screenshot("widget-dark.png").await;
    chrome.js(&theme("light")).await;

    // The host API has a fresh token; the Deploy button uses it.
    let (_, t) = app.post("/v1/access-token", json!({"user_id": "demo-user", "provider": "sandbox"})).await;
    assert_eq!(t["active"], true, "{t}");
    c.find(Locator::Css("#deploy")).await.unwrap().click().await.unwrap();
    chrome
        .wait_js(
            "the deploy result",
            "return document.getElementById('deploy-result').textContent.indexOf('Notification sent') >= 0;",
            15,
        )
        .await;

    // The host listens for webhooks.
    let receiver = crate::webhooks::Receiver::start().await;
    let (_, endpoint) = app
        .post("/v1/webhook-endpoints", json!({"url": receiver.url, "events": ["connection.needs_reauthorization"]}))
        .await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    // The user removes the app at the provider: Deploy says reconnect, a signed webhook says so
    // too, and the widget shows Reconnect.
    let r =
        send(app.http.post(format!("{}/sandbox/admin/revoke", app.url)).json(&json!({"account": "demo-user"}))).await;
    assert_eq!(r.0, 200);
    c.find(Locator::Css("#deploy")).await.unwrap().click().await.unwrap();
    chrome
        .wait_js(
            "reconnect needed",
            "return document.getElementById('deploy-result').textContent.indexOf('Reconnect needed') >= 0;",
            15,
        )
        .await;
    receiver.wait_for(1).await;
    let (headers, body) = receiver.got.lock().unwrap()[0].clone();
    standardwebhooks::Webhook::new(&secret).unwrap().verify(&body, &headers).expect("the webhook verifies");
    assert_eq!(receiver.types(), ["connection.needs_reauthorization"]);
    c.refresh().await.unwrap();
    chrome.wait_widget_text("Needs reconnect", 20).await;
    chrome.click_widget_button("Reconnect").await;
    approve_in_popup(&chrome).await;
    chrome.wait_widget_text("Connected as demo-user", 20).await;
    chrome
        .wait_js(
            "the reconnected event",
            "return window.latchEvents.some(function (e) { return e.type === 'reconnected'; });",
            10,
        )
        .await;
    c.find(Locator::Css("#deploy")).await.unwrap().click().await.unwrap();
    chrome
        .wait_js(
            "a deploy after reconnecting",
            "return document.getElementById('deploy-result').textContent.indexOf('Notification sent') >= 0;",
            15,
        )
        .await;

    // The widget token expires; the next call renews it through getToken.
    let fetches = chrome.js("return window.latchTokenFetches;").await.as_i64().unwrap();
    app.state.clock.advance(700);
    // Disconnect, with its confirmation step.
    chrome.click_widget_button("Disconnect").await;
    chrome.wait_widget_text("Disconnect demo-user?", 5).await;
    chrome.click_widget_button("Yes, disconnect").await;
    chrome.wait_widget_text("Connect Sandbox", 20).await;
    assert!(!chrome.widget_text().await.contains("Connected as"));
    assert_eq!(
        chrome.js("return window.latchTokenFetches;").await.as_i64().unwrap(),
        fetches + 1,
        "getToken was called once"
    );
    chrome
        .wait_js(
            "the disconnected event",
            "return window.latchEvents.some(function (e) { return e.type === 'disconnected'; });",
            10,
        )
        .await;
    let (_, list) = app.get("/v1/connections?user_id=demo-user").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // `LATCH_UPDATE_SCREENSHOTS=1` refreshes the README's pictures from this run.
    if std::env::var_os("LATCH_UPDATE_SCREENSHOTS").is_some() {
        let into = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("widget/screenshots");
        std::fs::create_dir_all(&into).unwrap();
        for f in ["widget-light.png", "widget-dark.png"] {
            std::fs::copy(chrome::screenshot_dir().join(f), into.join(f)).unwrap();
        }
    }
    chrome.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosted_page_takes_the_token_from_the_fragment() {
    if !chrome::available() {
        return;
    }
    let (app, _host) = demo().await;
    let latch = app.state.config.public_url.as_str().trim_end_matches('/').to_owned();
    let (_, minted) = app.post("/v1/widget-tokens", json!({"user_id": "demo-user", "allowed_origin": latch})).await;
    let token = minted["token"].as_str().unwrap();
    let chrome = Chrome::start("hosted-page").await;
    chrome.client.goto(&format!("{latch}/connect#token={token}")).await.unwrap();
    chrome.wait_widget_text("Connect Sandbox", 20).await;
    assert_eq!(chrome.js("return location.hash;").await, "", "the token left the address bar");
    // The hosted page starts flows under the same rule: a POST from its own (Latch's) origin.
    chrome.click_widget_button("Connect Sandbox").await;
    approve_in_popup(&chrome).await;
    chrome.wait_widget_text("Disconnect", 20).await;
    assert_eq!(app.state.store.connections_of_user("demo-user", "").await.unwrap().len(), 1);
    chrome.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_connect_link_attaches_nothing() {
    if !chrome::available() {
        return;
    }
    let (app, host) = demo().await;
    // An ordinary user of the host app starts a flow for their own account…
    let (_, minted) = app
        .post(
            "/v1/widget-tokens",
            json!({"user_id": "mallory", "allowed_origin": host, "user_label": "mallory@acme.test"}),
        )
        .await;
    let token = minted["token"].as_str().unwrap();
    let connect = app.http.post(format!("{}/widget/v1/connect", app.url)).bearer_auth(token).header("origin", &host);
    let (status, started) = send(connect.json(&json!({"provider": "sandbox"}))).await;
    assert_eq!(status, 201, "{started}");
    // …and sends its URL to a victim, who opens it in their own browser: a fresh profile, no
    // opener, not the host app's page.
    let victim = Chrome::start("forwarded-link").await;
    victim.client.goto(started["authorize_url"].as_str().unwrap()).await.unwrap();
    victim.wait_page_text("connect_link_refused", 10).await;
    let page = victim.js("return document.body.textContent;").await;
    assert!(page.as_str().unwrap().contains("only works from the app that created it"), "{page}");
    assert!(app.state.store.connections_of_user("mallory", "").await.unwrap().is_empty(), "nothing attached");
    let trail = app.activity("user_id=mallory").await;
    assert!(
        trail.iter().any(|e| e["action"] == "connect_refused" && e["error_code"] == "connect_link_refused"),
        "the attempt is in the trail: {trail:?}"
    );
    victim.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redirect_fallback_connects_when_popups_are_blocked() {
    if !chrome::available() {
        return;
    }
    let (app, host) = demo().await;
    let chrome = Chrome::start("redirect-fallback").await;
    chrome.client.goto(&format!("{host}/")).await.unwrap();
    chrome.wait_widget_text("Connect Sandbox", 20).await;
    // A popup blocker: window.open gives nothing, so the flow runs in the page itself.
    chrome.js("window.open = function () { return null; }; return true;").await;
    chrome.click_widget_button("Connect Sandbox").await;
    chrome.approve_consent().await;
    chrome.wait_page_text("is connected", 15).await;
    assert_eq!(app.state.store.connections_of_user(latch_server::demo::DEMO_USER, "").await.unwrap().len(), 1);
    chrome.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_limited_to_a_channel_says_where_it_posts() {
    if !chrome::available() {
        return;
    }
    let (app, host) = demo().await;
    // A connection whose install granted one channel (Slack's incoming webhook), as the connect
    // flow stores it (`slack_installs` covers the flow): the widget names the channel, never the URL.
    let seed = crate::harness::Seed {
        provider: latch_server::sandbox::KEY,
        user_id: latch_server::demo::DEMO_USER,
        account_id: "T0FAKE1",
        ..crate::harness::Seed::default()
    };
    let row = app.seed(seed).await;
    let channel = r##"[{"type":"channel","id":"C0DEPLOYS","name":"#deploys"}]"##;
    app.db.execute(&format!("UPDATE connections SET resources = '{channel}' WHERE id = '{}'", row.id)).await;
    let chrome = Chrome::start("granted-channel").await;
    chrome.client.goto(&format!("{host}/")).await.unwrap();
    chrome.wait_widget_text("Posts to #deploys", 20).await;
    chrome.screenshot("widget-channel.png").await;
    chrome.finish().await;
}

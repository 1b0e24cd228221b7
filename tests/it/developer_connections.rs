//! Developer-owned connections: the app's own accounts, connected by an operator with
//! `latch connect --as-developer`, served by `POST /v1/access-token` with
//! `credential_source: developer`, several per provider with a selected default and never a
//! silent pick between them.

use crate::harness::browser::Browser;
use crate::harness::cli::Cli;
use crate::harness::fake_provider::FakeProvider;
use crate::harness::{Seed, TestApp, assert_error, assert_error_says, both};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::time::{Duration, Instant};

/// Runs `latch connect --provider acme --as-developer --label LABEL` as an operator would, walks
/// the printed consent URL through the fake provider as the operator's browser, and returns what
/// the command printed once it saw the flow finish.
async fn connect_as_developer(app: &TestApp, cli: &Cli, label: &str) -> (bool, String, String) {
    let mut child = cli
        .command(&["connect", "--provider", "acme", "--as-developer", "--label", label, "--no-browser"])
        .env("LATCH_PUBLIC_URL", &app.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the consent URL");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with(&format!("{}/oauth/start/", app.url))) {
            break url.to_owned();
        }
    };
    // The operator's browser opens the page, presses the button (a form POST from Latch's own
    // origin) and goes through the provider.
    let browser = Browser { origin: app.url.clone(), ..Browser::new() };
    let (status, _, page) = browser.get(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("as the app's own account") && page.contains("<form"), "{page}");
    let authorize = url.replace("/oauth/start/", "/oauth/authorize/");
    let run = browser.run(&app.url, &authorize).await;
    assert_eq!(run.status, 200, "{}", run.page);
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, child));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let (status, mut child) = status.expect("latch connect ended after the flow");
    let out = reader.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status.success(), out, err)
}

fn cli_for(app: &TestApp, fake: &FakeProvider) -> Cli {
    Cli::new(app, &fake.url, &[("acme", r#"["read", "write"]"#)])
}

async fn developer_token(app: &TestApp, extra: Value) -> (u16, Value) {
    let mut body = json!({"credential_source": "developer", "provider": "acme"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.post("/v1/access-token", body).await
}

both!(an_operator_connects_the_apps_own_account_and_jobs_get_its_token, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| s.account = ("bot-1".into(), "deploy-bot@acme".into()));
    let cli = cli_for(&app, &fake);
    let (ok, out, err) = connect_as_developer(&app, &cli, "Deploy bot").await;
    assert!(ok, "{out}\n{err}");
    let json_start = out.find('{').expect("the new connection, as JSON");
    let made: Value = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(made["credential_source"], "developer");
    assert_eq!(made["label"], "Deploy bot");
    assert_eq!(made["account_id"], "bot-1");
    assert_eq!(made["created_by"], "cli");
    let id = made["id"].as_str().unwrap().to_owned();

    let (status, token) = developer_token(&app, json!({})).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!((token["active"].as_bool(), token["connection_id"].as_str()), (Some(true), Some(id.as_str())));
    // End users never reach it, and a developer request names no user.
    let (_, as_user) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(as_user["active"], false, "{as_user}");
    let r = developer_token(&app, json!({"user_id": "alice"})).await;
    assert_error(&r, 422, "invalid_request");
    assert_eq!(r.1["error"]["field"], "user_id");
    let r = app.post("/v1/access-token", json!({"provider": "acme"})).await;
    assert_error(&r, 422, "invalid_request");
    assert_eq!(r.1["error"]["field"], "user_id", "an end user's request needs its user: {}", r.1);
    let (ok, out, err) = cli.run(&["token", "get", "--developer", "--provider", "acme"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("(hidden: add --show-token)"), "{out}");
    let (ok, _, err) = cli.run(&["token", "get", "--developer", "--user", "alice", "--provider", "acme"]);
    assert!(!ok && err.contains("--user"), "a developer token names no user: {err}");
    let (_, listed) = app.get("/v1/inventory?credential_source=developer").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["label"], "Deploy bot");
});

both!(several_developer_accounts_are_never_picked_silently, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let cli = cli_for(&app, &fake);
    fake.with(|s| s.account = ("bot-1".into(), "one@acme".into()));
    let (ok, out, err) = connect_as_developer(&app, &cli, "One").await;
    assert!(ok, "{out}\n{err}");
    fake.with(|s| s.account = ("bot-2".into(), "two@acme".into()));
    let (ok, out, err) = connect_as_developer(&app, &cli, "Two").await;
    assert!(ok, "{out}\n{err}");
    // An end user's connection to the same provider is not a candidate.
    app.seed(Seed::default()).await;
    let (_, listed) = app.get("/v1/inventory?credential_source=developer").await;
    let ids: Vec<String> =
        listed["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{listed}");

    let r = developer_token(&app, json!({})).await;
    assert_error_says(&r, 409, "ambiguous_connection", "latch connections select");
    let mut candidates: Vec<String> =
        r.1["error"]["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    candidates.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(candidates, expected);
    let (status, by_account) = developer_token(&app, json!({"account_id": "bot-2"})).await;
    assert_eq!(status, 200, "{by_account}");
    assert_eq!(by_account["account_id"], "bot-2");

    let (ok, _, err) = cli.run(&["connections", "select", "--provider", "acme", "conn_nope"]);
    assert!(!ok && err.contains("connection_not_found"), "{err}");
    let end_user = app.state.store.connections_of_user("alice", "").await.unwrap().remove(0);
    let (ok, _, err) = cli.run(&["connections", "select", "--provider", "acme", &end_user.id]);
    assert!(!ok && err.contains("developer"), "an end user's connection cannot be the default: {err}");
    let (ok, out, err) = cli.run(&["connections", "select", "--provider", "acme", &ids[0]]);
    assert!(ok, "{err}");
    assert!(out.contains(&ids[0]), "{out}");
    let (status, chosen) = developer_token(&app, json!({})).await;
    assert_eq!((status, chosen["connection_id"].as_str()), (200, Some(ids[0].as_str())), "{chosen}");
    let trail = app.activity(&format!("connection_id={}", ids[0])).await;
    assert!(trail.iter().any(|e| e["action"] == "selected" && e["actor"]["name"] == "cli"), "{trail:?}");

    // Deleting the default brings the ambiguity back only if several remain: one is left here.
    let (ok, _, err) = cli.run(&["connections", "remove", &ids[0], "--yes"]);
    assert!(ok, "{err}");
    let (status, left) = developer_token(&app, json!({})).await;
    assert_eq!((status, left["connection_id"].as_str()), (200, Some(ids[1].as_str())), "{left}");
});

both!(a_developer_connect_link_is_refused_when_it_is_not_one, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    // An end user's flow cannot be started from the developer page.
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (flow_id, _) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = Browser::new();
    let (status, _, page) = browser.get(&format!("{}/oauth/start/{flow_id}", app.url)).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("flow_not_found"), "{page}");
    let (status, _, _) = browser.get(&format!("{}/oauth/start/flow_nope", app.url)).await;
    assert_eq!(status, 404);
});

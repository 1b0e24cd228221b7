//! Slack's Events API at `POST /providers/slack/events`: signed requests only (Slack's
//! `v0` HMAC scheme within five minutes), the `url_verification` challenge, `app_uninstalled`
//! deleting the workspace's connections at once (tombstones), `tokens_revoked` flipping its bot
//! connections. The requests are signed here exactly as Slack signs them.

use crate::harness::cli::Cli;
use crate::harness::{Seed, TestApp, assert_error, both, canary, logs, wait_until};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

pub(crate) const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

async fn slack_app(backend: crate::harness::db::Backend) -> TestApp {
    TestApp::start_with(backend, |c| {
        c.providers = vec![TestApp::provider("slack", "http://127.0.0.1:9", "dialect = \"slack\"")];
    })
    .await
}

/// Slack's signature of `body` at `timestamp` with `secret`.
fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

async fn push(app: &TestApp, body: &Value, timestamp: i64, signature: &str) -> (u16, Value) {
    let request = app
        .http
        .post(format!("{}/providers/slack/events", app.url))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_string());
    crate::harness::send(request).await
}

/// Pushes `body` to Latch's Slack events endpoint, signed now with [`SIGNING_SECRET`].
pub(crate) async fn signed(app: &TestApp, body: Value) -> (u16, Value) {
    let now = app.state.clock.unix();
    push(app, &body, now, &sign(SIGNING_SECRET, now, &body.to_string())).await
}

both!(slack_events_are_taken_only_when_signed_by_slack, |backend| async move {
    let app = slack_app(backend).await;
    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let (status, body) = signed(&app, challenge.clone()).await;
    assert_error(&(status, body), 503, "provider_misconfigured");

    // The operator stores the signing secret the way the README says.
    let cli = Cli::new(&app, "http://127.0.0.1:9", &[]);
    let mut cmd = cli.command(&["secret", "add", "--provider", "slack", "--signing-secret"]);
    let toml = "[providers.slack]\ntemplate = \"slack\"\nclient_id = \"client-slack\"\n";
    std::fs::write(cmd.get_current_dir().unwrap().join("latch.toml"), toml).unwrap();
    let mut child = cmd.stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), SIGNING_SECRET.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(signed(&app, challenge.clone()).await, (200, json!({"challenge": challenge["challenge"]})));
    let now = app.state.clock.unix();
    let body = challenge.to_string();
    let refused = [
        ("forged", push(&app, &challenge, now, &sign("not-the-secret", now, &body)).await),
        ("stale", push(&app, &challenge, now - 310, &sign(SIGNING_SECRET, now - 310, &body)).await),
        ("from the future", push(&app, &challenge, now + 310, &sign(SIGNING_SECRET, now + 310, &body)).await),
        (
            "another body",
            push(
                &app,
                &json!({"type": "url_verification", "challenge": "mine"}),
                now,
                &sign(SIGNING_SECRET, now, &body),
            )
            .await,
        ),
        ("unsigned", push(&app, &challenge, now, "").await),
    ];
    for (what, answer) in refused {
        assert_error(&answer, 401, "invalid_signature");
        assert!(!answer.1.to_string().contains("3eZbrw1"), "{what}: the challenge is not echoed");
    }
    assert!(logs::captured().contains("refused a pushed event"), "refusals are logged");
    assert!(!logs::captured().contains(SIGNING_SECRET), "the secret never is");
    let stored = app.state.store.signing_secret("slack").await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(SIGNING_SECRET), "sealed at rest");
    // A well-signed event of a kind Latch does not act on is acknowledged, so Slack does not retry.
    let other = json!({"type": "event_callback", "team_id": "T1", "event": {"type": "message", "text": "hi"}});
    assert_eq!(signed(&app, other).await.0, 200);
    assert_error(&push(&app, &challenge, now, "v0=00").await, 401, "invalid_signature");
    let (status, _) =
        crate::harness::send(app.http.post(format!("{}/providers/nope/events", app.url)).body("{}")).await;
    assert_eq!(status, 404);
});

both!(an_uninstall_deletes_the_workspaces_connections_at_once, |backend| async move {
    let app = slack_app(backend).await;
    let sealed = app.state.vault.seal_str(latch_server::vault::Sealed::SigningSecret.slot("slack"), SIGNING_SECRET);
    app.state.store.put_signing_secret("slack", &sealed, 0).await.unwrap();
    let token = canary("XOXB");
    let gone = app.seed(Seed { provider: "slack", account_id: "T1", access_token: &token, ..Seed::default() }).await;
    let also = app.seed(Seed { provider: "slack", user_id: "bob", account_id: "T1", ..Seed::default() }).await;
    let other_team = app.seed(Seed { provider: "slack", user_id: "carol", account_id: "T2", ..Seed::default() }).await;

    let uninstalled =
        json!({"type": "event_callback", "team_id": "T1", "event": {"type": "app_uninstalled"}, "event_id": "Ev1"});
    assert_eq!(signed(&app, uninstalled).await.0, 200);
    for id in [&gone.id, &also.id] {
        assert!(app.state.store.connection(id).await.unwrap().is_none(), "deleted at once");
        let tomb = app.state.store.connection_or_tombstone(id).await.unwrap().unwrap();
        assert_eq!(tomb.deleted_by.as_deref(), Some("provider_events"));
        let trail = app.activity(&format!("connection_id={id}")).await;
        assert!(trail.iter().any(|e| e["action"] == "provider_revoked"), "{trail:?}");
        assert!(trail.iter().any(|e| e["action"] == "deleted" && e["actor"]["kind"] == "system"), "{trail:?}");
    }
    assert!(app.state.store.connection(&other_team.id).await.unwrap().is_some(), "another workspace is untouched");
    // On PostgreSQL events are listed in commit order, behind any transaction still running on
    // the server (other tests'): wait for them, bounded.
    let deleted = || async {
        let (_, events) = app.get("/v1/events?limit=50").await;
        events["data"].as_array().unwrap().iter().filter(|e| e["type"] == "connection.deleted").count() == 2
    };
    assert!(wait_until(std::time::Duration::from_secs(10), deleted).await, "two connection.deleted events");

    // Bot tokens revoked in T2: its bot connection needs a new install.
    app.db.execute(&format!("UPDATE connections SET token_type = 'bot' WHERE id = '{}'", other_team.id)).await;
    let revoked = json!({"type": "event_callback", "team_id": "T2", "event": {"type": "tokens_revoked", "tokens": {"bot": ["B1"]}}});
    assert_eq!(signed(&app, revoked).await.0, 200);
    let row = app.state.store.connection(&other_team.id).await.unwrap().unwrap();
    assert_eq!(row.status, latch_shared::ConnectionStatus::NeedsReauthorization);
    let (_, answer) = app.post("/v1/access-token", json!({"user_id": "carol", "provider": "slack"})).await;
    assert_eq!(answer["error"], "needs_reauthorization", "{answer}");
});

both!(revalidation_asks_auth_test_and_reads_ok_not_the_status, |backend| async move {
    let fake =
        crate::harness::fake_provider::FakeProvider::start_with(crate::harness::fake_provider::Quirks::Slack).await;
    let extra = format!("dialect = \"slack\"\nvalidation_url = \"{}/auth.test\"", fake.url);
    let app = TestApp::start_with(backend, |c| c.providers = vec![TestApp::provider("slack", &fake.url, &extra)]).await;
    // Slack's default bot tokens do not expire and come without a refresh token.
    let seed = |user, token| Seed {
        provider: "slack",
        user_id: user,
        account_id: "T1",
        access_token: token,
        refresh_token: None,
        expires_in: None,
        ..Seed::default()
    };
    let live = app.seed(seed("alice", "xoxb-live")).await;
    let gone = app.seed(seed("bob", "xoxb-uninstalled")).await;
    fake.know_token("xoxb-live", Some(("T1", "Acme")));
    app.state.clock.advance(app.state.config.validation_interval_seconds + 1);

    let started = app.state.clock.unix();
    let checked = latch_server::oauth::refresher::validation_round(&app.state.refresher).await;
    assert_eq!(checked, 2);
    let live = app.state.store.connection(&live.id).await.unwrap().unwrap();
    assert_eq!(live.status, latch_shared::ConnectionStatus::Active);
    assert!(live.last_validated_at >= Some(started), "auth.test said ok: {:?}", live.last_validated_at);
    let gone = app.state.store.connection(&gone.id).await.unwrap().unwrap();
    assert_eq!(
        gone.status,
        latch_shared::ConnectionStatus::NeedsReauthorization,
        "HTTP 200 with ok:false is a dead token"
    );
    let trail = app.activity(&format!("connection_id={}", gone.id)).await;
    assert!(trail.iter().any(|e| e["action"] == "validation_failed"), "{trail:?}");
});

both!(disconnecting_a_rotating_install_revokes_both_tokens, |backend| async move {
    let fake =
        crate::harness::fake_provider::FakeProvider::start_with(crate::harness::fake_provider::Quirks::Slack).await;
    let extra = format!("dialect = \"slack\"\nrevocation_url = \"{}/revoke\"", fake.url);
    let app = TestApp::start_with(backend, |c| c.providers = vec![TestApp::provider("slack", &fake.url, &extra)]).await;
    let rotating = Seed {
        provider: "slack",
        account_id: "T1",
        access_token: "xoxe.xoxb-1-live",
        refresh_token: Some("xoxe-1-refresh"),
        expires_in: Some(43_200),
        ..Seed::default()
    };
    let row = app.seed(rotating).await;
    let delete = |id: String| {
        let app = &app;
        async move {
            crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{id}?revoke=true")))
                .await
                .0
        }
    };
    assert_eq!(delete(row.id.clone()).await, 204);
    let sent: Vec<String> = fake.with(|s| s.revoke_calls.iter().map(|c| c["token"].clone()).collect());
    assert_eq!(sent, ["xoxe.xoxb-1-live", "xoxe-1-refresh"], "auth.revoke revokes only the token it is given");
    let tomb = app.state.store.connection_or_tombstone(&row.id).await.unwrap().unwrap();
    assert_eq!(tomb.revocation.as_deref(), Some("revoked"));

    // A token Slack already considers dead is not a failure: nothing is left to revoke.
    fake.with(|s| s.slack_revoke_error = Some("token_revoked".into()));
    let row = app.seed(Seed { user_id: "bob", ..rotating }).await;
    assert_eq!(delete(row.id.clone()).await, 204);
    let trail = app.activity(&format!("connection_id={}", row.id)).await;
    let revoked = trail.iter().find(|e| e["action"] == "revoked").expect("a revoked entry");
    assert!(revoked["detail"].as_str().unwrap().contains("already revoked"), "{revoked}");
    // Any other error is a failure, said as one.
    fake.with(|s| s.slack_revoke_error = Some("ratelimited".into()));
    let row = app.seed(Seed { user_id: "carol", ..rotating }).await;
    assert_eq!(delete(row.id.clone()).await, 204);
    let trail = app.activity(&format!("connection_id={}", row.id)).await;
    assert!(
        trail.iter().any(|e| e["action"] == "revoke_failed" && e["detail"].as_str().unwrap().contains("ratelimited")),
        "{trail:?}"
    );
    let tomb = app.state.store.connection_or_tombstone(&row.id).await.unwrap().unwrap();
    assert_eq!(tomb.revocation.as_deref(), Some("failed"));
});

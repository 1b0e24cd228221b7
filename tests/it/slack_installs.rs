//! Slack exactly as Slack behaves, against a fake that follows Slack's documentation
//! (`harness::fake_slack`): every install shape kept (bot, user, both, org-wide), both tokens
//! served, the incoming webhook's channel shown and its URL sealed, each chain refreshed on its
//! own, forced-refresh storms that never revoke the live token, `Retry-After` honoured,
//! `tokens_revoked` by user and bot, revocation of every token, Slack's error strings.

use crate::harness::fake_slack::{self, FakeSlack};
use crate::harness::{TestApp, assert_error, both, logs, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

/// A Latch with three Slack providers on one fake: `slack` (bot + user token + webhook),
/// `slack-user` (a user-only install) and `slack-bot` (a bot-only install).
async fn slack_app(backend: crate::harness::db::Backend) -> (TestApp, FakeSlack) {
    let fake = FakeSlack::start().await;
    let providers = vec![
        fake.provider("slack", "scopes = [\"chat:write\", \"incoming-webhook\"]\nuser_scopes = [\"search:read\"]"),
        fake.provider("slack-user", "scopes = []\nuser_scopes = [\"search:read\"]"),
        fake.provider("slack-bot", "scopes = [\"chat:write\", \"incoming-webhook\"]"),
    ];
    let app = TestApp::start_with(backend, |c| {
        c.providers = providers;
        c.allowed_origins = vec!["http://127.0.0.1:4000".into()];
    })
    .await;
    for key in ["slack", "slack-user", "slack-bot"] {
        app.set_client_secret(key, "slack-client-secret").await;
    }
    (app, fake)
}

/// Installs through the real flow; the new connection's id.
async fn install(app: &TestApp, user: &str, provider: &str) -> String {
    let run = app.connect_flow(user, provider).await;
    let message = run.message.unwrap_or_else(|| panic!("no result message: {}", run.page));
    assert!(message["error"].is_null(), "{message}");
    message["connection_id"].as_str().unwrap().to_owned()
}

async fn token(app: &TestApp, user: &str, provider: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"user_id": user, "provider": provider});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.post("/v1/access-token", body).await
}

both!(every_install_shape_is_kept_as_slack_grants_it, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    let webhook_url = fake.with(|s| s.webhook_url.clone());

    // Bot and user token, rotating, with an incoming webhook to #deploys.
    let id = install(&app, "alice", "slack").await;
    let asked = fake.with(|s| s.authorize_calls[0].clone());
    assert_eq!((asked["scope"].as_str(), asked["user_scope"].as_str()), ("chat:write,incoming-webhook", "search:read"));
    let (_, c) = app.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(c["account_id"], fake_slack::TEAM.0);
    assert_eq!(c["resources"], json!([{"type": "channel", "id": "C0DEPLOYS", "name": "#deploys"}]));
    let installation = &c["installation"];
    assert_eq!(installation["team"], json!({"id": fake_slack::TEAM.0, "name": fake_slack::TEAM.1}));
    assert_eq!(
        (&installation["bot_user_id"], &installation["app_id"], &installation["authed_user_id"]),
        (&json!(fake_slack::BOT_USER), &json!(fake_slack::APP), &json!(fake_slack::INSTALLER))
    );
    assert_eq!(installation["is_enterprise_install"], false);
    assert_eq!(c["user_token"]["scopes"], json!(["search:read"]));
    assert!(c["user_token"]["expires_at"].is_string(), "a rotating user token expires: {c}");
    assert!(!c.to_string().contains(&webhook_url), "the webhook URL is a secret");

    let (_, bot) = token(&app, "alice", "slack", json!({})).await;
    assert_eq!(bot["token_type"], "bot", "{bot}");
    assert!(bot["access_token"].as_str().unwrap().starts_with("xoxe.xoxb-"), "{bot}");
    assert!(fake.is_live(bot["access_token"].as_str().unwrap()));
    assert_eq!(bot["incoming_webhook_url"], webhook_url.as_str());
    assert_eq!(bot["scopes"], json!(["chat:write", "incoming-webhook"]));
    let (_, user) = token(&app, "alice", "slack", json!({"token": "user"})).await;
    assert_eq!(user["token_type"], "user", "{user}");
    assert!(user["access_token"].as_str().unwrap().starts_with("xoxe.xoxp-"), "{user}");
    assert_eq!(user["scopes"], json!(["search:read"]));
    assert!(user["expires_at"].is_string());
    let (_, bot_again) = token(&app, "alice", "slack", json!({"token": "bot"})).await;
    assert_eq!(bot_again["access_token"], bot["access_token"]);

    // The webhook URL and both tokens are sealed: not in the database bytes, not in the logs.
    for secret in [webhook_url.as_str(), bot["access_token"].as_str().unwrap(), user["access_token"].as_str().unwrap()]
    {
        assert!(!app.db.contains_bytes(secret.as_bytes()).await, "{secret} in the {:?} database", app.db.backend);
        assert!(!logs::captured().contains(secret), "{secret} in the logs");
    }
    let (_, inventory) = app.get("/v1/inventory?provider=slack").await;
    assert_eq!(inventory["data"][0]["resources"][0]["name"], "#deploys");
    assert_eq!(inventory["data"][0]["user_scopes"], json!(["search:read"]));
    assert!(!inventory.to_string().contains(&webhook_url));

    // A user-only install with rotation: its token and refresh token came inside authed_user,
    // and it is stored as expiring (not as a token that never expires and dies in 12 hours).
    fake.with(|s| (s.bot_scope, s.webhook_channel) = (None, None));
    install(&app, "bob", "slack-user").await;
    let (_, only_user) = token(&app, "bob", "slack-user", json!({})).await;
    assert_eq!(only_user["token_type"], "user", "{only_user}");
    assert!(only_user["expires_at"].is_string(), "{only_user}");
    assert_eq!(
        token(&app, "bob", "slack-user", json!({"token": "user"})).await.1["access_token"],
        only_user["access_token"]
    );
    assert_error(&token(&app, "bob", "slack-user", json!({"token": "bot"})).await, 404, "token_not_found");

    // The non-rotating default, bot only: a token that never expires, and no user token.
    fake.with(|s| {
        (s.rotation, s.bot_scope, s.user_scope) = (false, Some("chat:write,incoming-webhook".into()), None);
    });
    install(&app, "carol", "slack-bot").await;
    let (_, plain) = token(&app, "carol", "slack-bot", json!({})).await;
    assert!(plain["access_token"].as_str().unwrap().starts_with("xoxb-"), "{plain}");
    assert!(plain["expires_at"].is_null());
    assert_error(&token(&app, "carol", "slack-bot", json!({"token": "user"})).await, 404, "token_not_found");

    // An org-wide Enterprise Grid install (team: null) is one connection to the enterprise.
    fake.with(|s| (s.org_wide, s.rotation, s.user_scope) = (true, true, Some("search:read".into())));
    let org = install(&app, "dave", "slack").await;
    let (_, c) = app.get(&format!("/v1/connections/{org}")).await;
    assert_eq!(
        (c["account_id"].as_str(), c["account_label"].as_str()),
        (Some(fake_slack::ENTERPRISE.0), Some(fake_slack::ENTERPRISE.1))
    );
    assert_eq!(c["installation"]["team"], Value::Null);
    assert_eq!(c["installation"]["is_enterprise_install"], true);
    assert_eq!(c["installation"]["enterprise"]["id"], fake_slack::ENTERPRISE.0);
});

both!(each_token_chain_refreshes_on_its_own_and_storms_keep_the_live_token, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    install(&app, "alice", "slack").await;
    let (_, bot0) = token(&app, "alice", "slack", json!({})).await;
    let (_, user0) = token(&app, "alice", "slack", json!({"token": "user"})).await;

    // A storm of forced refreshes right after the install: Slack keeps two live tokens per chain,
    // so each refresh would revoke an older one. They are held back: no refresh at all.
    let calls = (0..8).map(|_| token(&app, "alice", "slack", json!({"force_refresh": true})));
    for (status, answer) in futures::future::join_all(calls).await {
        assert_eq!((status, &answer["access_token"]), (200, &bot0["access_token"]), "{answer}");
    }
    for _ in 0..3 {
        let (_, again) = token(&app, "alice", "slack", json!({"force_refresh": true})).await;
        assert_eq!(again["access_token"], bot0["access_token"]);
    }
    assert_eq!(fake.refresh_calls(), 0);
    assert!(fake.is_live(bot0["access_token"].as_str().unwrap()), "the token other callers use still works");

    // Unless Slack says the token is dead (auth.test): then the refresh happens.
    fake.kill(bot0["access_token"].as_str().unwrap());
    let (_, bot1) = token(&app, "alice", "slack", json!({"force_refresh": true})).await;
    assert_ne!(bot1["access_token"], bot0["access_token"]);
    assert_eq!(fake.refresh_calls(), 1);

    // Near the end of the 12 hours each chain is refreshed with its own refresh token.
    app.state.clock.advance(43_200 - 20);
    let (_, bot2) = token(&app, "alice", "slack", json!({})).await;
    assert_ne!(bot2["access_token"], bot1["access_token"], "{bot2}");
    assert_eq!(fake.refresh_calls(), 2);
    let (_, user1) = token(&app, "alice", "slack", json!({"token": "user"})).await;
    assert_ne!(user1["access_token"], user0["access_token"], "{user1}");
    assert!(user1["access_token"].as_str().unwrap().starts_with("xoxe.xoxp-"));
    let last = fake.with(|s| s.token_calls.last().unwrap().clone());
    assert!(last["refresh_token"].starts_with("xoxe-1-p"), "the user chain's own refresh token: {last:?}");
    assert_eq!(fake.refresh_calls(), 3);
    // The bot token did not move for the user's refresh.
    assert_eq!(token(&app, "alice", "slack", json!({})).await.1["access_token"], bot2["access_token"]);
});

both!(the_refresher_renews_each_chain_before_it_expires, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    install(&app, "alice", "slack").await;
    let (_, bot) = token(&app, "alice", "slack", json!({})).await;
    let (_, user) = token(&app, "alice", "slack", json!({"token": "user"})).await;
    // Within the refresh window of both 12-hour tokens: the background round renews the bot's
    // and the user's chain, each with its own refresh token, before any caller waits for it.
    app.state.clock.advance(43_200 - 60);
    let renewed = latch_server::oauth::refresher::refresh_round(&app.state.refresher).await;
    assert_eq!(renewed, 2);
    let used: Vec<String> =
        fake.with(|s| s.token_calls.iter().filter_map(|c| c.get("refresh_token").map(|t| t[..8].to_owned())).collect());
    assert_eq!(used.len(), 2, "{used:?}");
    assert!(used.contains(&"xoxe-1-b".to_owned()) && used.contains(&"xoxe-1-p".to_owned()), "{used:?}");
    assert_ne!(token(&app, "alice", "slack", json!({})).await.1["access_token"], bot["access_token"]);
    assert_ne!(token(&app, "alice", "slack", json!({"token": "user"})).await.1["access_token"], user["access_token"]);
    assert_eq!(fake.refresh_calls(), 2, "callers found both fresh");
});

both!(each_refresh_answer_lands_in_its_class, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    fake.with(|s| s.user_scope = None);
    let id = install(&app, "alice", "slack-bot").await;
    let (_, first) = token(&app, "alice", "slack-bot", json!({})).await;
    let query = format!("connection_id={id}");
    let trail = || app.activity(&query);
    let status = || async { app.state.store.connection(&id).await.unwrap().unwrap().status };
    use latch_shared::ConnectionStatus::{Active, NeedsReauthorization};

    // Slack's outage strings are transient: three tries, then the still-valid token is served.
    app.state.clock.advance(43_200 - 30);
    fake.with(|s| s.fail.extend(["internal_error", "service_unavailable", "request_timeout"]));
    let (code, stale) = token(&app, "alice", "slack-bot", json!({})).await;
    assert_eq!((code, &stale["access_token"]), (200, &first["access_token"]), "{stale}");
    assert_eq!(fake.refresh_calls(), 3);
    assert_eq!(status().await, Active);
    assert!(trail().await.iter().any(|e| e["action"] == "refresh_failed"));

    // `fatal_error`: Slack may have refreshed anyway. Said in the trail as an unknown outcome;
    // the retry presents the same refresh token, which Slack's grace period still takes.
    tokio::time::sleep(Duration::from_millis(2100)).await; // the shared back-off of the failure
    fake.with(|s| s.fail.push_back("fatal_error"));
    let (_, after) = token(&app, "alice", "slack-bot", json!({})).await;
    assert_ne!(after["access_token"], first["access_token"], "{after}");
    assert_eq!(fake.refresh_calls(), 5);
    let unknown = trail().await.into_iter().find(|e| e["action"] == "refresh_outcome_unknown").expect("an entry");
    assert!(unknown["detail"].as_str().unwrap().contains("fatal_error"), "{unknown}");

    // The app's own credentials rejected on a refresh: the operator's problem, no flip.
    app.state.clock.advance(43_200 - 30);
    fake.with(|s| s.fail.push_back("bad_client_secret"));
    assert_error(&token(&app, "alice", "slack-bot", json!({})).await, 503, "provider_misconfigured");
    assert_eq!(status().await, Active);

    // A dead grant: the user must reconnect.
    fake.with(|s| s.fail.push_back("invalid_refresh_token"));
    let (_, dead) = token(&app, "alice", "slack-bot", json!({})).await;
    assert_eq!(dead["error"], "needs_reauthorization", "{dead}");
    assert_eq!(status().await, NeedsReauthorization);
});

/// `POST /v1/access-token` with its `Retry-After`.
async fn token_with_retry_after(app: &TestApp, user: &str, provider: &str) -> (u16, Value, Option<u32>) {
    let response = app
        .host(reqwest::Method::POST, "/v1/access-token")
        .json(&json!({"user_id": user, "provider": provider}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, response.json().await.unwrap_or(Value::Null), after)
}

both!(a_rate_limited_refresh_honours_retry_after, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    fake.with(|s| s.user_scope = None);
    let id = install(&app, "alice", "slack-bot").await;
    let (_, before) = token(&app, "alice", "slack-bot", json!({})).await;

    // A short Retry-After is waited out inside the refresh: one 429, then the new token.
    app.state.clock.advance(43_200 + 1);
    fake.with(|s| s.rate_limit = Some(1));
    let (status, answer, _) = token_with_retry_after(&app, "alice", "slack-bot").await;
    let refreshed = || async {
        let row = app.state.store.connection(&id).await.unwrap().unwrap();
        row.access_token_expires_at > Some(app.state.clock.unix())
    };
    assert!(wait_until(Duration::from_secs(10), refreshed).await, "refreshed after the wait ({status} {answer})");
    assert_eq!(fake.refresh_calls(), 2, "the 429 and the retry after one second");
    let (_, after) = token(&app, "alice", "slack-bot", json!({})).await;
    assert_ne!(after["access_token"], before["access_token"]);

    // A long one is handed to the caller (the stored token has expired): 503 with Slack's
    // Retry-After, and no second call to Slack meanwhile.
    app.state.clock.advance(43_200 + 1);
    fake.with(|s| s.rate_limit = Some(30));
    let (status, answer, retry_after) = token_with_retry_after(&app, "alice", "slack-bot").await;
    assert_error(&(status, answer), 503, "provider_unavailable");
    assert!(retry_after.is_some_and(|s| s >= 30), "Retry-After {retry_after:?}");
    assert_eq!(fake.refresh_calls(), 3);
});

both!(tokens_revoked_flips_the_connections_of_the_named_users_and_bots, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    let secret = crate::slack_events::SIGNING_SECRET;
    let sealed = app.state.vault.seal_str(latch_server::vault::Sealed::SigningSecret.slot("slack"), secret);
    app.state.store.put_signing_secret("slack", &sealed, 0).await.unwrap();
    fake.with(|s| s.installer = "U0ALICE".into());
    let alice = install(&app, "alice", "slack").await;
    fake.with(|s| s.installer = "U0BOB".into());
    let bob = install(&app, "bob", "slack").await;
    let push = |tokens: Value| {
        let body = json!({"type": "event_callback", "team_id": fake_slack::TEAM.0,
            "event": {"type": "tokens_revoked", "tokens": tokens}});
        let app = &app;
        async move { crate::slack_events::signed(app, body).await.0 }
    };
    let status = |id: String| {
        let app = &app;
        async move { app.state.store.connection(&id).await.unwrap().unwrap().status }
    };
    use latch_shared::ConnectionStatus::{Active, NeedsReauthorization};
    // Alice removed the app's access to her account: her user token is gone.
    assert_eq!(push(json!({"oauth": ["U0ALICE"]})).await, 200);
    assert_eq!(status(alice.clone()).await, NeedsReauthorization);
    assert_eq!(status(bob.clone()).await, Active, "another installer's connection is untouched");
    let trail = app.activity(&format!("connection_id={alice}")).await;
    let entry = trail.iter().find(|e| e["action"] == "provider_revoked").expect("a trail entry");
    assert!(entry["detail"].as_str().unwrap().contains("user token"), "{entry}");
    // An admin revoked the bot: every connection holding that bot's token.
    assert_eq!(push(json!({"bot": [fake_slack::BOT_USER]})).await, 200);
    assert_eq!(status(bob).await, NeedsReauthorization);
});

both!(disconnecting_revokes_every_token_of_both_chains, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    let id = install(&app, "alice", "slack").await;
    let (_, bot) = token(&app, "alice", "slack", json!({})).await;
    let (_, user) = token(&app, "alice", "slack", json!({"token": "user"})).await;
    let (status, _) =
        crate::harness::send(app.host(reqwest::Method::DELETE, &format!("/v1/connections/{id}?revoke=true"))).await;
    assert_eq!(status, 204);
    let revoked = fake.with(|s| s.revoked.clone());
    assert_eq!(revoked.len(), 4, "bot access and refresh, user access and refresh: {revoked:?}");
    assert_eq!(revoked[0], bot["access_token"].as_str().unwrap());
    assert_eq!(revoked[2], user["access_token"].as_str().unwrap());
    assert!(revoked[1].starts_with("xoxe-1-b") && revoked[3].starts_with("xoxe-1-p"), "{revoked:?}");
    for t in [&bot["access_token"], &user["access_token"]] {
        assert!(!fake.is_live(t.as_str().unwrap()));
    }
    let tomb = app.state.store.connection_or_tombstone(&id).await.unwrap().unwrap();
    assert_eq!(tomb.revocation.as_deref(), Some("revoked"));
    assert_eq!(tomb.resources.0[0].id, "C0DEPLOYS", "the tombstone keeps what was granted, not the URL");
});

both!(slack_error_strings_reach_the_right_place, |backend| async move {
    let (app, fake) = slack_app(backend).await;
    // The app's own misconfiguration: the operator hears of it, the user reads that it is not
    // their fault, and no connection is touched.
    app.set_client_secret("slack", "not-the-secret").await;
    let run = app.connect_flow("alice", "slack").await;
    assert!(run.page.contains("misconfigured"), "{}", run.page);
    // The operator's entry is written off the user's path: wait for it, bounded.
    let told = || async {
        app.activity("provider=slack").await.iter().any(|e| e["action"] == "provider_credentials_rejected")
    };
    assert!(wait_until(Duration::from_secs(5), told).await, "the operator is told in the trail");
    app.set_client_secret("slack", "slack-client-secret").await;
    // An expired or reused code is Slack's `invalid_code`: the user starts again.
    fake.with(|s| s.expire_codes = true);
    let run = app.connect_flow("alice", "slack").await;
    assert!(run.page.contains("invalid_code"), "{}", run.page);
    fake.with(|s| s.expire_codes = false);
    install(&app, "alice", "slack").await;
});

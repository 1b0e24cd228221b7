//! The connect flow over HTTP: widget API → authorize (cookie, state, PKCE) → provider →
//! callback (binding, single use, iss, exchange, identity, scopes) → result page and postMessage.

use crate::harness::browser::Browser;
use crate::harness::fake_provider::{FakeProvider, Quirks, Scripted};
use crate::harness::{HOST_ORIGIN, Seed, TestApp, assert_error, both};
use reqwest::Method;
use serde_json::{Value, json};

fn connection_count(body: &Value) -> usize {
    body["data"].as_array().unwrap().len()
}

both!(connects_and_tells_the_widget, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (flow_id, authorize) =
        app.connect(&token, json!({"provider": "acme", "return_to": format!("{HOST_ORIGIN}/settings")})).await;
    assert_eq!(authorize, format!("{}/oauth/authorize/{flow_id}", app.url));
    let (status, pending) = app.widget(Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
    assert_eq!((status, pending["status"].as_str()), (200, Some("pending")));

    let run = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(run.status, 200, "{}", run.page);
    let message = run.message.clone().unwrap();
    let connection_id = message["connection_id"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        json!({"source": "latch", "type": "connected", "provider": "acme", "flow_id": flow_id, "connection_id": connection_id})
    );
    assert!(run.page.contains(&format!("postMessage(message, \"{HOST_ORIGIN}\")")), "exact target origin");
    assert!(!run.page.contains("'*'") && !run.page.contains("\"*\""));
    assert!(run.page.contains("Connected as alice@example.com"));
    assert!(run.page.contains(&format!("href=\"{HOST_ORIGIN}/settings\"")));

    // What the provider saw: exact redirect URI in both requests, PKCE S256, our client id.
    let authorize_call = fake.with(|s| s.authorize_calls[0].clone());
    let redirect_uri = format!("{}/oauth/callback", app.url);
    assert_eq!(authorize_call["redirect_uri"], redirect_uri);
    assert_eq!(authorize_call["code_challenge_method"], "S256");
    assert_eq!(authorize_call["code_challenge"].len(), 43);
    assert_eq!(authorize_call["state"].len(), 43);
    assert_eq!(authorize_call["scope"], "read write");
    assert_eq!(authorize_call["client_id"], "client-acme");
    let token_call = fake.with(|s| s.token_calls[0].clone());
    assert_eq!(token_call["redirect_uri"], redirect_uri);
    assert_eq!(token_call["grant_type"], "authorization_code");
    assert_eq!(token_call["code_verifier"].len(), 43);

    let (_, done) = app.widget(Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
    assert_eq!(done, json!({"status": "connected", "connection_id": connection_id}));
    let (_, connection) = app.get(&format!("/v1/connections/{connection_id}")).await;
    assert_eq!(connection["account_id"], "acct-1");
    assert_eq!(connection["account_label"], "alice@example.com");
    assert_eq!(connection["scopes"], json!(["read", "write"]));
    assert_eq!(connection["status"], "active");
    let (_, fresh) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(fresh["access_token"], "at-1");
    let (_, list) = app.widget(Method::GET, "/widget/v1/integrations", &token, None).await;
    assert_eq!(list["data"][0]["connections"][0]["id"], connection_id.as_str());
    let entries = app.activity(&format!("connection_id={connection_id}")).await;
    assert_eq!(entries[0]["action"], "connected");
    assert_eq!(entries[0]["actor"], json!({"kind": "user", "name": "alice"}));
});

both!(same_account_replaces_other_account_adds, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let first = app.connect_flow("alice", "acme").await.message.unwrap();
    let again = app.connect_flow("alice", "acme").await.message.unwrap();
    assert_eq!(first["connection_id"], again["connection_id"], "same account, same connection");
    let (_, t) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(t["access_token"], "at-2", "tokens replaced");
    fake.with(|s| s.account = ("acct-2".into(), "alice@work.example".into()));
    let other = app.connect_flow("alice", "acme").await.message.unwrap();
    assert_ne!(other["connection_id"], first["connection_id"]);
    assert_eq!(connection_count(&app.get("/v1/connections?user_id=alice").await.1), 2);
    let entries = app.activity(&format!("connection_id={}", first["connection_id"].as_str().unwrap())).await;
    assert!(entries.iter().any(|e| e["action"] == "reconnected"));
});

both!(reconnect_must_land_on_the_same_account, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let id = app.connect_flow("alice", "acme").await.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let token = app.widget_token("alice", None, &["acme"]).await;
    // A dead grant is revived by reconnecting the same account.
    app.db.execute(&format!("UPDATE connections SET status = 'needs_reauthorization' WHERE id = '{id}'")).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "acme", "connection_id": id})).await;
    let run = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(run.message.unwrap()["connection_id"], id.as_str());
    assert_eq!(app.get(&format!("/v1/connections/{id}")).await.1["status"], "active");
    // Another account is refused and changes nothing.
    let before = app.get(&format!("/v1/connections/{id}")).await.1;
    fake.with(|s| s.account = ("acct-evil".into(), "mallory@example.com".into()));
    let (_, authorize) = app.connect(&token, json!({"provider": "acme", "connection_id": id})).await;
    let run = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(run.message.unwrap()["error"]["code"], "account_mismatch");
    assert_eq!(app.get(&format!("/v1/connections/{id}")).await.1, before);
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), 1);
});

/// Runs one failing flow and checks the code reaches the page, the postMessage, the flow status
/// and the activity trail, and that nothing was stored.
async fn expect_failure(app: &TestApp, code: &str) -> crate::harness::browser::FlowRun {
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (flow_id, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let before = connection_count(&app.get("/v1/connections").await.1);
    let run = Browser::new().run(&app.url, &authorize).await;
    let message = run.message.clone().unwrap_or_else(|| panic!("no message for {code}: {}", run.page));
    assert_eq!(message["type"], "error", "{code}");
    assert_eq!(message["error"]["code"], code, "{}", run.page);
    assert!(!message["error"]["message"].as_str().unwrap().is_empty());
    assert!(run.page.contains(code));
    let (_, status) = app.widget(Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error"]["code"], code);
    let entries = app.activity("user_id=alice").await;
    assert!(
        entries.iter().any(|e| e["action"] == "connect_failed" && e["error_code"] == code),
        "{code} not in the trail"
    );
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), before, "{code} stored something");
    run
}

both!(every_flow_error_is_reported, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    fake.with(|s| s.deny = Some(("access_denied".into(), "<b>no</b> <img src=x onerror=alert(1)>".into())));
    let run = expect_failure(&app, "oauth2_callback_error").await;
    assert!(
        run.page.contains("&lt;b&gt;no&lt;/b&gt; &lt;img src=x") && !run.page.contains("<img"),
        "provider text is escaped"
    );
    fake.with(|s| s.deny = None);

    fake.with(|s| s.script.push_back(Scripted::json(400, json!({"error": "invalid_grant"}))));
    expect_failure(&app, "access_token_exchange_failed").await;
    fake.with(|s| s.script.push_back(Scripted::json(200, json!({"access_token": 42}))));
    expect_failure(&app, "invalid_token_response").await;
    fake.with(|s| s.script.push_back(Scripted::json(200, json!({"token_type": "bearer"}))));
    expect_failure(&app, "token_not_found").await;
    fake.with(|s| s.userinfo = Some((200, "{\"name\":\"no id here\"}".into())));
    expect_failure(&app, "external_user_identity_not_found").await;
    fake.with(|s| s.userinfo = Some((500, "<html>down</html>".into())));
    expect_failure(&app, "invalid_identity_config_response").await;
    fake.with(|s| s.userinfo = None);
    fake.with(|s| s.granted_scope = Some("read".into()));
    let run = expect_failure(&app, "scope_mismatch_error").await;
    assert!(run.message.unwrap()["error"]["message"].as_str().unwrap().contains("write"));
    fake.with(|s| s.granted_scope = Some("read write".into()));
    fake.with(|s| s.no_refresh_token = true);
    expect_failure(&app, "no_refresh_token").await;
    fake.with(|s| s.no_refresh_token = false);

    // The app's own credentials rejected: reported to the operator at provider level.
    fake.with(|s| s.script.push_back(Scripted::json(401, json!({"error": "invalid_client"}))));
    expect_failure(&app, "access_token_exchange_failed").await;
    let alerted = crate::harness::wait_until(std::time::Duration::from_secs(5), || async {
        app.activity("provider=acme")
            .await
            .iter()
            .any(|e| e["action"] == "provider_credentials_rejected" && e["connection_id"].is_null())
    })
    .await;
    assert!(alerted, "no provider-level entry for invalid_client");

    // A verifier that no longer decrypts is Latch's own failure.
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (flow_id, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = Browser::new();
    let (_, to_provider, _) = browser.start(&authorize).await;
    app.db.execute(&format!("UPDATE flows SET pkce_verifier = state_hash WHERE id = '{flow_id}'")).await;
    let (_, to_callback, _) = browser.get(&to_provider.unwrap()).await;
    let run = browser.finish(&app.url, &to_callback.unwrap(), vec![]).await;
    assert_eq!(run.message.unwrap()["error"]["code"], "internal_error");
    assert!(
        app.activity("user_id=alice")
            .await
            .iter()
            .any(|e| e["action"] == "connect_failed" && e["error_code"] == "internal_error")
    );
});

both!(missing_client_secret_and_mix_up, |backend| async move {
    let fake = FakeProvider::start().await;
    let nosecret = TestApp::provider("acme", &fake.url, "issuer = \"https://issuer.acme.test\"");
    let app = TestApp::start_with(backend, |c| {
        c.providers = vec![nosecret];
        c.allowed_origins = vec![HOST_ORIGIN.into()];
    })
    .await;
    fake.with(|s| s.issuer = Some("https://issuer.acme.test".into()));
    let token = app.widget_token("alice", None, &["acme"]).await;
    let integrations = || app.widget(Method::GET, "/widget/v1/integrations", &token, None);
    let connect = || app.widget(Method::POST, "/widget/v1/connect", &token, Some(json!({"provider": "acme"})));
    let configured = || async { app.get("/v1/providers").await.1["data"][0]["client_secret_configured"].clone() };

    // Without a client secret the provider is not offered, and no flow starts: the user would
    // consent at the provider for an exchange that can only fail.
    assert_eq!(integrations().await.1["data"], json!([]));
    let (status, body) = connect().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "missing_client_secret");
    assert!(body["error"]["message"].as_str().unwrap().contains("administrator"), "{body}");
    assert_eq!(configured().await, json!(false));
    assert_eq!(fake.token_calls(), 0);

    // A secret removed between the start and the callback: the callback says so.
    app.set_client_secret("acme", "s").await;
    assert_eq!(configured().await, json!(true));
    assert_eq!(integrations().await.1["data"][0]["connectable"], json!(true));
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    assert!(app.state.store.delete_client_secret("acme").await.unwrap());
    let run = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(run.message.unwrap()["error"]["code"], "missing_client_secret", "{}", run.page);

    // A user who has connections to it still sees them (to remove them), but cannot connect.
    app.set_client_secret("acme", "s").await;
    assert_eq!(app.connect_flow("alice", "acme").await.message.unwrap()["type"], "connected");
    assert!(app.state.store.delete_client_secret("acme").await.unwrap());
    let (_, listed) = integrations().await;
    assert_eq!(listed["data"][0]["connectable"], json!(false), "{listed}");
    assert_eq!(listed["data"][0]["connections"].as_array().unwrap().len(), 1);
    assert_eq!(connect().await.0, 503);
    let (_, bob) =
        app.widget(Method::GET, "/widget/v1/integrations", &app.widget_token("bob", None, &["acme"]).await, None).await;
    assert_eq!(bob["data"], json!([]), "not offered to a user without connections");
    app.set_client_secret("acme", "s").await;
    // RFC 9207: another issuer, or none, is refused before any token call.
    let calls = fake.token_calls();
    fake.with(|s| s.iss_override = Some("https://evil.test".into()));
    expect_failure(&app, "oauth2_exchange_error").await;
    fake.with(|s| s.issuer = None);
    fake.with(|s| s.iss_override = None);
    expect_failure(&app, "oauth2_exchange_error").await;
    assert_eq!(fake.token_calls(), calls, "no code exchange after an issuer mismatch");
    fake.with(|s| s.issuer = Some("https://issuer.acme.test".into()));
    assert_eq!(app.connect_flow("alice", "acme").await.message.unwrap()["type"], "connected");
});

both!(flows_are_single_use_and_bound_to_their_browser, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;

    // Callback replayed in another browser (login CSRF): refused, nothing stored, and the real
    // browser can still finish.
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let victim = Browser::new();
    let (_, to_provider, _) = victim.start(&authorize).await;
    let (_, to_callback, _) = victim.get(&to_provider.unwrap()).await;
    let callback = to_callback.unwrap();
    let attacker = Browser::new();
    let refused = attacker.finish(&app.url, &callback, vec![]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.message.is_none(), "no message without the flow cookie");
    assert_eq!(fake.token_calls(), 0);
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), 0);
    let done = victim.finish(&app.url, &callback, vec![]).await;
    assert_eq!(done.message.unwrap()["type"], "connected");
    // Replaying the same callback: refused, no second exchange, one connection, one "connected".
    let replay = victim.finish(&app.url, &callback, vec![]).await;
    assert_eq!(replay.status, 400);
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), 1);
    assert_eq!(app.activity("").await.iter().filter(|e| e["action"] == "connected").count(), 1);

    // The authorize link opens once.
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    assert_eq!(Browser::new().start(&authorize).await.0, 303);
    let (status, _, page) = Browser::new().start(&authorize).await;
    assert_eq!(status, 409);
    assert!(page.contains("flow_already_started"));

    // Unknown or truncated state.
    let (status, _, _) = Browser::new().get(&format!("{}/oauth/callback?state=nope&code=x", app.url)).await;
    assert_eq!(status, 400);
    let (status, _, _) = Browser::new().get(&format!("{}/oauth/callback", app.url)).await;
    assert_eq!(status, 400);

    // Expired flows: the link and the callback.
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = Browser::new();
    let (_, to_provider, _) = browser.start(&authorize).await;
    let (_, to_callback, _) = browser.get(&to_provider.unwrap()).await;
    app.state.clock.advance(601);
    let late = browser.finish(&app.url, &to_callback.unwrap(), vec![]).await;
    assert_eq!(late.status, 400);
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    app.state.clock.advance(601);
    assert_eq!(Browser::new().start(&authorize).await.0, 400);
    assert_eq!(fake.token_calls(), 1);
});

both!(a_flow_for_one_provider_cannot_finish_with_anothers_callback, |backend| async move {
    let a = FakeProvider::start().await;
    let b = FakeProvider::start().await;
    a.with(|s| s.issuer = Some("https://a.test".into()));
    b.with(|s| s.issuer = Some("https://b.test".into()));
    let pa = TestApp::provider("pa", &a.url, "issuer = \"https://a.test\"");
    let pb = TestApp::provider("pb", &b.url, "issuer = \"https://b.test\"");
    let app = TestApp::start_with(backend, |c| {
        c.providers = vec![pa, pb];
        c.allowed_origins = vec![HOST_ORIGIN.into()];
    })
    .await;
    app.set_client_secret("pa", "sa").await;
    app.set_client_secret("pb", "sb").await;
    let token = app.widget_token("alice", None, &["pa", "pb"]).await;
    let (_, authorize_a) = app.connect(&token, json!({"provider": "pa"})).await;
    let browser = Browser::new();
    let (_, to_a, _) = browser.start(&authorize_a).await;
    let state_a =
        url::Url::parse(&to_a.unwrap()).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    // B's answer (its code and iss) delivered with A's state.
    let forged = format!("{}/oauth/callback?state={state_a}&code=code-from-b&iss=https%3A%2F%2Fb.test", app.url);
    let run = browser.finish(&app.url, &forged, vec![]).await;
    assert_eq!(run.message.unwrap()["error"]["code"], "oauth2_exchange_error");
    assert_eq!(a.token_calls() + b.token_calls(), 0);
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), 0);
});

both!(widget_users_reach_only_their_own_flows_and_connections, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let bob_connection = app.seed(Seed { user_id: "bob", ..Seed::default() }).await;
    let bob = app.widget_token("bob", None, &["acme"]).await;
    let (bob_flow, _) = app.connect(&bob, json!({"provider": "acme"})).await;
    for (user, org) in [("alice", None), ("bob", Some("org2"))] {
        let token = app.widget_token(user, org, &["acme"]).await;
        assert_error(
            &app.widget(Method::GET, &format!("/widget/v1/flows/{bob_flow}"), &token, None).await,
            404,
            "flow_not_found",
        );
        assert_error(
            &app.widget(
                Method::POST,
                "/widget/v1/connect",
                &token,
                Some(json!({"provider": "acme", "connection_id": bob_connection.id})),
            )
            .await,
            404,
            "connection_not_found",
        );
        assert_error(
            &app.widget(Method::DELETE, &format!("/widget/v1/connections/{}", bob_connection.id), &token, None).await,
            404,
            "connection_not_found",
        );
    }
    assert_eq!(
        app.get(&format!("/v1/connections/{}", bob_connection.id)).await.0,
        200,
        "bob's connection is untouched"
    );
    let alice = app.widget_token("alice", None, &["plain"]).await;
    assert_error(
        &app.widget(Method::POST, "/widget/v1/connect", &alice, Some(json!({"provider": "acme"}))).await,
        403,
        "provider_not_allowed",
    );
    for hostile in [
        "https://evil.test/",
        "//evil.test",
        "javascript:alert(1)",
        "http://127.0.0.1:4000@evil.test/",
        "http://127.0.0.1:4001/",
    ] {
        let r = app
            .widget(Method::POST, "/widget/v1/connect", &bob, Some(json!({"provider": "acme", "return_to": hostile})))
            .await;
        assert_error(&r, 422, "return_to_not_allowed");
    }
    // Bob disconnects his own connection: revoked at the provider, then deleted.
    let (status, _) =
        app.widget(Method::DELETE, &format!("/widget/v1/connections/{}", bob_connection.id), &bob, None).await;
    assert_eq!(status, 204);
    assert_eq!(app.get(&format!("/v1/connections/{}", bob_connection.id)).await.0, 404);
    let trail = app.activity("user_id=bob").await;
    assert!(trail.iter().any(|e| e["action"] == "revoked" && e["actor"]["kind"] == "user"));
});

both!(result_pages_are_locked_down, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = Browser::new();
    let r = browser.start_request(&authorize).send().await.unwrap();
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=600"),
        "{cookie}"
    );
    let to_provider = r.headers().get("location").unwrap().to_str().unwrap().to_owned();
    let (_, to_callback, _) = browser.get(&to_provider).await;
    let r = browser.http.get(to_callback.unwrap()).send().await.unwrap();
    let result = format!("{}{}", app.url, r.headers().get("location").unwrap().to_str().unwrap());
    let page = browser.http.get(&result).send().await.unwrap();
    let h = page.headers();
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    assert!(h.get("cross-origin-opener-policy").is_none(), "COOP would cut window.opener");
    // The result page is for the flow's browser only.
    let (status, _, _) = Browser::new().get(&result).await;
    assert_eq!(status, 404);
});

both!(provider_quirks, |backend| async move {
    let slack = FakeProvider::start_with(Quirks::Slack).await;
    let google = FakeProvider::start_with(Quirks::Google).await;
    let github = FakeProvider::start_with(Quirks::GitHub).await;
    slack.with(|s| {
        s.account = ("T0001".into(), "Acme Workspace".into());
        s.granted_scope = Some("chat:write,channels:read".into());
    });
    google.with(|s| {
        s.account = ("1097".into(), "alice@gmail.example".into());
        s.granted_scope = Some("openid email".into());
        s.issuer = Some("https://accounts.google.com".into());
        s.no_rotation = true;
    });
    github.with(|s| {
        s.account = ("583231".into(), "octocat".into());
        s.granted_scope = Some("repo".into());
        s.expires_in = None;
        s.no_refresh_token = true;
    });
    let cfg = |key: &str, url: &str, identity: &str| {
        let text = format!(
            "client_id = \"id-{key}\"\nauthorization_url = \"{url}/authorize\"\ntoken_url = \"{url}/token\"\nrevocation_url = \"{url}/revoke\"\n{identity}"
        );
        latch_server::providers::Provider::from_config(key, toml::from_str(&text).unwrap()).unwrap()
    };
    let providers = vec![
        cfg("slack", &slack.url, ""),
        cfg(
            "google",
            &google.url,
            &format!(
                "identity = {{ url = \"{}/userinfo\", account_identifier = \"$.sub\", account_label = \"$.email\" }}",
                google.url
            ),
        ),
        cfg(
            "github",
            &github.url,
            &format!(
                "identity = {{ url = \"{}/userinfo\", account_identifier = \"$.id\", account_label = \"$.login\" }}",
                github.url
            ),
        ),
    ];
    let app = TestApp::start_with(backend, |c| {
        c.providers = providers;
        c.allowed_origins = vec![HOST_ORIGIN.into()];
    })
    .await;
    for key in ["slack", "google", "github"] {
        app.set_client_secret(key, &format!("secret-{key}")).await;
    }

    // Slack: team as account, comma-separated scopes kept apart, bot token, auth.revoke.
    let slack_run = app.connect_flow("alice", "slack").await;
    let id = slack_run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, c) = app.get(&format!("/v1/connections/{id}")).await;
    assert_eq!((c["account_id"].as_str(), c["account_label"].as_str()), (Some("T0001"), Some("Acme Workspace")));
    assert_eq!(c["scopes"], json!(["chat:write", "channels:read"]));
    let (_, t) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "slack"})).await;
    assert_eq!((t["access_token"].as_str(), t["token_type"].as_str()), (Some("at-1"), Some("bot")));
    assert_eq!(slack.with(|s| s.authorize_calls[0]["scope"].clone()), "chat:write,channels:read");
    assert!(!slack.with(|s| s.authorize_calls[0].contains_key("code_challenge")), "Slack template: no PKCE");
    slack.with(|s| s.script.push_back(Scripted::json(200, json!({"ok": false, "error": "invalid_code"}))));
    let token = app.widget_token("alice", None, &["slack"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "slack"})).await;
    let failed = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(
        failed.message.unwrap()["error"]["code"],
        "access_token_exchange_failed",
        "ok:false with HTTP 200 is a failure"
    );
    let (status, _) =
        crate::harness::send(app.host(Method::DELETE, &format!("/v1/connections/{id}?revoke=true"))).await;
    assert_eq!(status, 204);
    assert_eq!(slack.with(|s| s.revoke_calls[0]["token"].clone()), "at-1");
    assert!(app.activity(&format!("connection_id={id}")).await.iter().any(|e| e["action"] == "revoked"));

    // Google: offline access with forced consent, iss checked, refresh keeps the refresh token.
    let google_run = app.connect_flow("alice", "google").await;
    assert_eq!(google_run.message.unwrap()["type"], "connected");
    let call = google.with(|s| s.authorize_calls[0].clone());
    assert_eq!((call["access_type"].as_str(), call["prompt"].as_str()), ("offline", "consent"));
    assert_eq!(call["code_challenge_method"], "S256");
    let forced =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "google", "force_refresh": true})).await;
    assert_eq!(forced.1["access_token"], "at-2");
    let again =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "google", "force_refresh": true})).await;
    assert_eq!(again.1["access_token"], "at-3", "the original refresh token still works");

    // GitHub: numeric id, login label, non-expiring token without refresh token; JSON asked for.
    let github_run = app.connect_flow("alice", "github").await;
    let id = github_run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, c) = app.get(&format!("/v1/connections/{id}")).await;
    assert_eq!((c["account_id"].as_str(), c["account_label"].as_str()), (Some("583231"), Some("octocat")));
    assert!(c["access_token_expires_at"].is_null());
    assert!(github.with(|s| s.accept_headers[0].clone()).unwrap().contains("application/json"));
    // And when GitHub answers form-encoded anyway, that works too.
    github.with(|s| {
        s.script.push_back(Scripted {
            status: 200,
            content_type: "application/x-www-form-urlencoded",
            body: "access_token=gho_form&scope=repo&token_type=bearer".into(),
        })
    });
    let form_run = app.connect_flow("alice", "github").await;
    assert_eq!(form_run.message.unwrap()["connection_id"], id.as_str());
});

both!(twenty_concurrent_callbacks_make_one_exchange, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let browser = Browser::new();
    let (_, to_provider, _) = browser.start(&authorize).await;
    let (_, to_callback, _) = browser.get(&to_provider.unwrap()).await;
    let callback = to_callback.unwrap();
    // The same browser (same cookie) delivers the callback 20 times at once: `state` is consumed
    // by exactly one of them.
    let runs = futures::future::join_all((0..20).map(|_| browser.get(&callback))).await;
    assert_eq!(runs.iter().filter(|(status, _, _)| *status == 303).count(), 1, "one callback proceeds");
    assert_eq!(fake.token_calls(), 1, "one code exchange");
    assert_eq!(connection_count(&app.get("/v1/connections").await.1), 1);
});

both!(a_connect_link_starts_only_from_the_tokens_origin, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("mallory", None, &["acme"]).await;
    let (flow_id, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    // Forwarded and opened as a link, posted from another site, or posted with no origin: refused.
    let opened = Browser::new().get(&authorize).await;
    let mut elsewhere = Browser::new();
    elsewhere.origin = "http://127.0.0.3:9999".into();
    let posted_elsewhere = elsewhere.start(&authorize).await;
    let no_origin = Browser::new().http.post(&authorize).send().await.unwrap();
    let mut null_origin = Browser::new();
    null_origin.origin = "null".into();
    let sandboxed = null_origin.start(&authorize).await;
    for (status, location, page) in [opened, posted_elsewhere, sandboxed] {
        assert_eq!((status, location), (403, None), "{page}");
        assert!(page.contains("connect_link_refused") && page.contains("only works from the app"), "{page}");
    }
    assert_eq!(no_origin.status(), 403);
    assert_eq!(fake.with(|s| s.authorize_calls.len()), 0, "nobody reached the provider");
    let trail = app.activity("user_id=mallory").await;
    assert_eq!(trail.iter().filter(|e| e["action"] == "connect_refused").count(), 4, "{trail:?}");
    assert!(trail.iter().all(|e| e["error_code"] == "connect_link_refused"));
    // The flow is untouched: the widget, on the token's origin, can still start it.
    let (status, pending) = app.widget(Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
    assert_eq!((status, pending["status"].as_str()), (200, Some("pending")));
    let run = Browser::new().run(&app.url, &authorize).await;
    assert_eq!(run.message.unwrap()["type"], "connected");
});

both!(the_result_page_names_the_user_the_account_was_attached_to, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let (_, minted) = app
        .post(
            "/v1/widget-tokens",
            json!({"user_id": "u_42", "allowed_origin": HOST_ORIGIN, "user_label": "Dana <dana@host.test>"}),
        )
        .await;
    let token = minted["token"].as_str().unwrap().to_owned();
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    let run = Browser::new().run(&app.url, &authorize).await;
    assert!(run.page.contains("Connected as alice@example.com for Dana &lt;dana@host.test&gt;."), "{}", run.page);
    let bad = app.post("/v1/widget-tokens", json!({"user_id": "u_42", "user_label": "a\nb"})).await;
    assert_error(&bad, 422, "invalid_request");
    assert_eq!(bad.1["error"]["field"], "user_label");
});

both!(pending_flows_per_user_are_capped, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let token = app.widget_token("alice", None, &["acme"]).await;
    for _ in 0..10 {
        app.connect(&token, json!({"provider": "acme"})).await;
    }
    let r = app
        .http
        .post(format!("{}/widget/v1/connect", app.url))
        .bearer_auth(&token)
        .header("origin", HOST_ORIGIN)
        .json(&json!({"provider": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_pending_flows");
    // Another user is not affected; once the attempts expire, this one may start again.
    let other = app.widget_token("bob", None, &["acme"]).await;
    app.connect(&other, json!({"provider": "acme"})).await;
    app.state.clock.advance(601);
    app.connect(&token, json!({"provider": "acme"})).await;
});

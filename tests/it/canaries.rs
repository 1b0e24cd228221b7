//! Secrets planted as canaries (client secret, authorization codes, access and refresh tokens,
//! a provider echoing them in its errors) never show up anywhere a person or a browser can see:
//! logs at TRACE level, response bodies, pages, the activity trail, or the database bytes.

use crate::harness::browser::Browser;
use crate::harness::fake_provider::Scripted;
use crate::harness::{TestApp, both, canary, logs};
use reqwest::Method;
use serde_json::json;

both!(no_canary_escapes_any_flow, |backend| async move {
    let (mut app, fake) = TestApp::with_fake(backend).await;
    let secret = canary("SECRET");
    let code = canary("CODE");
    let tokens = canary("TOKEN");
    app.set_client_secret("acme", &secret).await;
    fake.with(|s| {
        s.code_prefix = code.clone();
        s.token_prefix = tokens.clone();
    });
    let token = app.widget_token("alice", None, &["acme"]).await;
    let mut seen: Vec<String> = Vec::new();
    // Each setup runs one flow: success, then every failure mode, some echoing the canaries.
    let setups: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {}),
        Box::new(|| fake.with(|s| s.deny = Some(("access_denied".into(), format!("denied {code}"))))),
        Box::new(|| {
            fake.with(|s| {
                s.deny = None;
                s.script.push_back(Scripted::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": format!("code {code} secret {secret}")}),
                ))
            })
        }),
        Box::new(|| {
            fake.with(|s| {
                s.script.push_back(Scripted::json(
                    401,
                    json!({"error": "invalid_client", "error_description": secret.clone()}),
                ))
            })
        }),
        Box::new(|| {
            fake.with(|s| {
                s.script.push_back(Scripted::json(200, json!({"access_token": 1, "refresh_token": tokens.clone()})))
            })
        }),
        Box::new(|| fake.with(|s| s.script.push_back(Scripted::json(200, json!({"refresh_token": tokens.clone()}))))),
        Box::new(|| {
            fake.with(|s| {
                s.script.push_back(Scripted {
                    status: 500,
                    content_type: "text/html",
                    body: format!("<pre>{secret} {code}</pre>"),
                })
            })
        }),
        Box::new(|| fake.with(|s| s.userinfo = Some((200, json!({"name": tokens.clone()}).to_string())))),
        Box::new(|| fake.with(|s| s.userinfo = Some((500, format!("{tokens} {secret}"))))),
        Box::new(|| {
            fake.with(|s| {
                s.userinfo = None;
                s.granted_scope = Some(format!("read {tokens}"))
            })
        }),
        Box::new(|| {
            fake.with(|s| {
                s.granted_scope = Some("read write".into());
                s.no_refresh_token = true
            })
        }),
    ];
    for setup in &setups {
        setup();
        let (flow_id, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
        let run = Browser::new().run(&app.url, &authorize).await;
        seen.extend(run.bodies);
        let (_, status) = app.widget(Method::GET, &format!("/widget/v1/flows/{flow_id}"), &token, None).await;
        seen.push(status.to_string());
    }
    fake.with(|s| s.no_refresh_token = false);
    // Connect once more so the stored grant is the provider's current one.
    let (_, authorize) = app.connect(&token, json!({"provider": "acme"})).await;
    seen.extend(Browser::new().run(&app.url, &authorize).await.bodies);
    // A connection exists; use, refresh and list it.
    seen.push(app.widget(Method::GET, "/widget/v1/integrations", &token, None).await.1.to_string());
    seen.push(app.get("/v1/connections").await.1.to_string());
    seen.push(app.activity("").await.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
    let served =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme", "force_refresh": true})).await;
    assert!(served.1["access_token"].as_str().unwrap().starts_with(&tokens), "the host API is the one place tokens go");
    app.stop().await;

    let logged = logs::captured();
    let stored = app.db.raw_contents().await;
    for needle in [&secret, &code, &tokens] {
        for (i, body) in seen.iter().enumerate() {
            assert!(
                !body.contains(needle.as_str()),
                "a canary reached the browser or the widget API (response {i}): {body}"
            );
        }
        assert!(!logged.contains(needle.as_str()), "a canary reached the logs");
        assert!(!stored.contains(needle.as_str()), "a canary is stored in plaintext");
    }
});

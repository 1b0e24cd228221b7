//! The built-in sandbox provider (demo mode): a real authorization server that follows the
//! OAuth security BCP, end to end through Latch and probed directly.

use crate::harness::browser::Browser;
use crate::harness::{HOST_ORIGIN, TestApp, assert_error, both, send};
use base64::Engine as _;
use serde_json::json;

async fn demo(backend: crate::harness::db::Backend) -> TestApp {
    TestApp::start_with(backend, |c| {
        c.demo = true;
        c.allowed_origins = vec![HOST_ORIGIN.into()];
    })
    .await
}

/// Latch's client secret at its sandbox (created sealed at start).
async fn sandbox_client_secret(app: &TestApp) -> latch_server::vault::Secret {
    let sealed = app.state.store.client_secret("sandbox").await.unwrap().unwrap();
    let slot = latch_server::vault::Sealed::ClientSecret.slot("sandbox");
    app.state.vault.open_secret(slot, &sealed).unwrap()
}

/// The consent form's fields, read from the page.
fn form_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input")
        .skip(1)
        .filter_map(|tag| {
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
                Some(
                    tag[start..start + tag[start..].find('"')?]
                        .replace("&amp;", "&")
                        .replace("&quot;", "\"")
                        .replace("&#x27;", "'"),
                )
            };
            Some((attr("name")?, attr("value")?))
        })
        .collect()
}

/// Walks a sandbox flow: Latch authorize → consent page → decision → Latch callback → result.
async fn run(
    app: &TestApp,
    browser: &Browser,
    authorize: &str,
    decision: &str,
    account: &str,
) -> crate::harness::browser::FlowRun {
    let (_, consent_url, _) = browser.start(authorize).await;
    let (status, _, consent) = browser.get(&consent_url.unwrap()).await;
    assert_eq!(status, 200, "{consent}");
    let mut fields = form_fields(&consent);
    fields.retain(|(k, _)| k != "account");
    fields.push(("account".into(), account.into()));
    fields.push(("decision".into(), decision.into()));
    let r = browser.http.post(format!("{}/sandbox/authorize", app.url)).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let callback = r.headers()["location"].to_str().unwrap().to_owned();
    browser.finish(&app.url, &callback, vec![]).await
}

both!(demo_connect_use_refresh_revoke, |backend| async move {
    let app = demo(backend).await;
    let (_, providers) = app.get("/v1/providers").await;
    assert_eq!(providers["data"][0]["key"], "sandbox");
    let token = app.widget_token("alice", None, &["sandbox"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "sandbox"})).await;
    let browser = Browser::new();
    let done = run(&app, &browser, &authorize, "approve", "alice-sandbox").await;
    let message = done.message.unwrap_or_else(|| panic!("{}", done.page));
    assert_eq!(message["type"], "connected", "{message}");
    let id = message["connection_id"].as_str().unwrap().to_owned();
    let (_, c) = app.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(c["account_id"], "alice-sandbox");
    assert_eq!(c["scopes"], json!(["messages:write", "profile"]));

    // The host gets a token and posts a message with it.
    let (_, t) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "sandbox"})).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let expires =
        time::OffsetDateTime::parse(t["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let lifetime = expires.unix_timestamp() - app.state.clock.unix();
    assert!((295..=300).contains(&lifetime), "5-minute access tokens, got {lifetime}");
    let posted = send(
        app.http
            .post(format!("{}/sandbox/api/messages", app.url))
            .bearer_auth(&access)
            .json(&json!({"text": "Deployed v1.2.3"})),
    )
    .await;
    assert_eq!(posted.0, 201, "{posted:?}");
    assert_eq!(posted.1["account"], "alice-sandbox");

    // Rotation: forced refreshes keep working, each with the newest refresh token.
    for _ in 0..2 {
        let (_, r) = app
            .post("/v1/access-token", json!({"user_id": "alice", "provider": "sandbox", "force_refresh": true}))
            .await;
        assert_eq!(r["active"], true, "{r}");
    }
    // The user removes the app's access at the provider: the next refresh says reconnect.
    let revoked =
        send(app.http.post(format!("{}/sandbox/admin/revoke", app.url)).json(&json!({"account": "alice-sandbox"})))
            .await;
    assert_eq!(revoked.0, 200);
    let (_, r) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "sandbox", "force_refresh": true})).await;
    assert_eq!(r["error"], "needs_reauthorization", "{r}");
    let stale = send(
        app.http.post(format!("{}/sandbox/api/messages", app.url)).bearer_auth(&access).json(&json!({"text": "x"})),
    )
    .await;
    assert_eq!(stale.0, 401);

    // Deny is reported as the provider's callback error.
    let (_, authorize) = app.connect(&token, json!({"provider": "sandbox"})).await;
    let denied = run(&app, &Browser::new(), &authorize, "deny", "alice-sandbox").await;
    assert_eq!(denied.message.unwrap()["error"]["code"], "oauth2_callback_error");
});

both!(sandbox_follows_the_authorization_server_bcp, |backend| async move {
    let app = demo(backend).await;
    let callback = format!("{}/oauth/callback", app.url);
    let browser = Browser::new();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(b"verifier-verifier-verifier-verifier-verifier"));
    let authorize = |redirect: &str, pkce: Option<(&str, &str)>| {
        let mut u = url::Url::parse(&format!("{}/sandbox/authorize", app.url)).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", "latch-sandbox")
                .append_pair("redirect_uri", redirect);
            q.append_pair("scope", "profile").append_pair("state", "s1");
            if let Some((c, m)) = pkce {
                q.append_pair("code_challenge", c).append_pair("code_challenge_method", m);
            }
        }
        u.to_string()
    };
    // Unregistered redirect: an error page, never a redirect.
    let (status, location, page) = browser.get(&authorize("http://127.0.0.1:1/evil", Some((&challenge, "S256")))).await;
    assert_eq!((status, location), (400, None));
    assert!(page.contains("not registered"));
    // PKCE is required, S256 only.
    for pkce in [None, Some((challenge.as_str(), "plain"))] {
        let (status, location, _) = browser.get(&authorize(&callback, pkce)).await;
        assert_eq!(status, 303);
        assert!(location.unwrap().contains("error=invalid_request"));
    }
    // The consent page cannot be framed, and its form needs the CSRF cookie.
    let r = browser.http.get(authorize(&callback, Some((&challenge, "S256")))).send().await.unwrap();
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let page = r.text().await.unwrap();
    let mut fields = form_fields(&page);
    fields.push(("decision".into(), "approve".into()));
    let forged: Vec<_> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let r = Browser::new().http.post(format!("{}/sandbox/authorize", app.url)).form(&forged).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = browser.http.post(format!("{}/sandbox/authorize", app.url)).form(&fields).send().await.unwrap();
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["iss"], format!("{}/sandbox", app.url));
    assert_eq!(q["state"], "s1");

    // Code exchange: client authentication, PKCE, single use (a replay revokes the grant).
    let secret = sandbox_client_secret(&app).await;
    let token = |form: Vec<(&'static str, String)>, auth: bool| {
        let mut r = app.http.post(format!("{}/sandbox/token", app.url)).form(&form);
        if auth {
            r = r.basic_auth("latch-sandbox", Some(secret.expose()));
        }
        send(r)
    };
    let exchange = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", q["code"].clone()),
            ("redirect_uri", callback.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    assert_error_oauth(
        token(exchange("verifier-verifier-verifier-verifier-verifier"), false).await,
        401,
        "invalid_client",
    );
    assert_error_oauth(
        token(exchange("wrong-verifier-wrong-verifier-wrong-verifier"), true).await,
        400,
        "invalid_grant",
    );
    // (The failed verifier attempt consumed the code: a code is good for one attempt only.)
    let location2 = {
        let r = browser.http.get(authorize(&callback, Some((&challenge, "S256")))).send().await.unwrap();
        let page = r.text().await.unwrap();
        let mut fields = form_fields(&page);
        fields.push(("decision".into(), "approve".into()));
        let r = browser.http.post(format!("{}/sandbox/authorize", app.url)).form(&fields).send().await.unwrap();
        r.headers()["location"].to_str().unwrap().to_owned()
    };
    let code2: String =
        url::Url::parse(&location2).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let exchange2 = [
        ("grant_type", "authorization_code"),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", "verifier-verifier-verifier-verifier-verifier"),
    ];
    let mut form: Vec<(&'static str, String)> = exchange2.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    form.push(("code", code2.clone()));
    let (status, tokens) = token(form.clone(), true).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let me = send(app.http.get(format!("{}/sandbox/userinfo", app.url)).bearer_auth(&access)).await;
    assert_eq!(me.1["sub"], "demo-user");
    // Code replay: refused, and the tokens it produced are revoked.
    assert_error_oauth(token(form, true).await, 400, "invalid_grant");
    assert_eq!(send(app.http.get(format!("{}/sandbox/userinfo", app.url)).bearer_auth(&access)).await.0, 401);
    let refresh_form = |rt: &str| vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", rt.to_owned())];
    assert_error_oauth(token(refresh_form(&refresh), true).await, 400, "invalid_grant");

    // Production mode: no sandbox at all.
    let prod = TestApp::start(app.db.backend).await;
    assert_error(&send(prod.http.get(format!("{}/sandbox/authorize", prod.url))).await, 404, "not_found");
    assert_error(&send(prod.http.post(format!("{}/sandbox/token", prod.url))).await, 404, "not_found");
});

#[track_caller]
fn assert_error_oauth(got: (u16, serde_json::Value), status: u16, error: &str) {
    assert_eq!((got.0, got.1["error"].as_str()), (status, Some(error)), "{}", got.1);
}

both!(rotated_refresh_token_reuse_revokes_the_family, |backend| async move {
    let app = demo(backend).await;
    let token = app.widget_token("alice", None, &["sandbox"]).await;
    let (_, authorize) = app.connect(&token, json!({"provider": "sandbox"})).await;
    let done = run(&app, &Browser::new(), &authorize, "approve", "alice-sandbox").await;
    let id = done.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    // Keep the current refresh token, let Latch rotate it, then present the old one.
    let row = app.state.store.connection(&id).await.unwrap().unwrap();
    let old_rt = app
        .state
        .vault
        .open_secret(latch_server::vault::Sealed::RefreshToken.slot(&id), row.refresh_token.as_ref().unwrap())
        .unwrap();
    let (_, r) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "sandbox", "force_refresh": true})).await;
    assert_eq!(r["active"], true);
    let secret = sandbox_client_secret(&app).await;
    let replay = send(
        app.http
            .post(format!("{}/sandbox/token", app.url))
            .basic_auth("latch-sandbox", Some(secret.expose()))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", old_rt.expose())]),
    )
    .await;
    assert_eq!(replay.1["error"], "invalid_grant");
    // The whole family is gone: Latch's newer token dies too.
    let (_, r) =
        app.post("/v1/access-token", json!({"user_id": "alice", "provider": "sandbox", "force_refresh": true})).await;
    assert_eq!(r["error"], "needs_reauthorization", "{r}");
});

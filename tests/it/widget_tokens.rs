//! Widget JWTs: minted for a user, signed with a database-held Ed25519 key shared by replicas,
//! verified strictly (pinned algorithm, `typ`, `kid` from the store, tight time rules).

use crate::harness::{Seed, TestApp, assert_error, both, send};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latch_server::AppState;
use latch_server::clock::Clock;
use serde_json::{Value, json};

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The active signing key's PKCS#8 and kid, for forging tokens with the real key.
async fn signing_key(app: &TestApp) -> (EncodingKey, String) {
    let row = app.state.store.signing_keys(app.state.clock.unix()).await.unwrap().remove(0);
    let pkcs8 = app.state.vault.open(latch_server::vault::Sealed::SigningKey.slot(&row.id), &row.private_key).unwrap();
    (EncodingKey::from_ed_der(&pkcs8), row.id)
}

both!(mint_and_inspect, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let (status, body) = app
        .post("/v1/widget-tokens", json!({"user_id": "alice", "organization_id": "org1", "providers": ["acme"], "allowed_origin": "http://127.0.0.1:4000"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let header = decode_part(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "latch-widget+jwt");
    let claims = decode_part(token, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["org"], "org1");
    assert_eq!(claims["providers"], json!(["acme"]));
    assert_eq!(claims["origin"], "http://127.0.0.1:4000");
    assert_eq!(claims["aud"], "latch-widget");
    assert_eq!(claims["iss"], app.url);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    for claim in ["jti", "nbf"] {
        assert!(!claims[claim].is_null(), "{claim}");
    }
    let expires_at = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at.unix_timestamp(), claims["exp"].as_i64().unwrap());

    // The public key is published, and a host can verify the token with it alone.
    let (_, jwks) = send(app.http.get(format!("{}/.well-known/jwks.json", app.url))).await;
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).unwrap();
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    let decoding = jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["latch-widget"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation).unwrap();
});

both!(mint_validation, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    for (body, field) in [
        (json!({"user_id": "a", "ttl_seconds": 29}), "ttl_seconds"),
        (json!({"user_id": "a", "ttl_seconds": 3601}), "ttl_seconds"),
        (json!({"user_id": "a", "providers": ["nope"]}), "providers"),
        (json!({"user_id": "a", "allowed_origin": "javascript:alert(1)"}), "allowed_origin"),
        (json!({"user_id": "a", "allowed_origin": "http://127.0.0.1:4000/path"}), "allowed_origin"),
        (json!({"user_id": ""}), "user_id"),
    ] {
        let r = app.post("/v1/widget-tokens", body.clone()).await;
        assert_error(&r, 422, "invalid_request");
        assert_eq!(r.1["error"]["field"], field, "{body}");
    }
    let r = app.post("/v1/widget-tokens", json!({"user_id": "a", "allowed_origin": "https://evil.example"})).await;
    assert_error(&r, 422, "origin_not_allowed");
    let (_, dup) =
        app.post("/v1/widget-tokens", json!({"user_id": "a", "providers": ["plain", "acme", "plain"]})).await;
    assert_eq!(decode_part(dup["token"].as_str().unwrap(), 1)["providers"], json!(["plain", "acme"]));
    for ttl in [30, 3600] {
        assert_eq!(app.post("/v1/widget-tokens", json!({"user_id": "a", "ttl_seconds": ttl})).await.0, 201);
    }
});

both!(forged_and_expired_tokens_are_refused, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let (_, body) = app.post("/v1/widget-tokens", json!({"user_id": "alice"})).await;
    let good = body["token"].as_str().unwrap().to_owned();
    let claims = decode_part(&good, 1);
    let (key, kid) = signing_key(&app).await;
    let now = app.state.clock.unix();
    let sign = |header: Header, claims: &Value| jsonwebtoken::encode(&header, claims, &key).unwrap();
    let eddsa = |typ: Option<&str>, kid: Option<&str>| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = typ.map(str::to_owned);
        h.kid = kid.map(str::to_owned);
        h
    };
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = "bob".into();
    let mut flipped = parts[2].as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let public = app.state.store.signing_keys(app.state.clock.unix()).await.unwrap().remove(0).public_key;
    let hs256 = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some("latch-widget+jwt".into());
            h.kid = Some(kid.clone());
            h
        },
        &claims,
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    let forged = vec![
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "latch-widget+jwt", "kid": kid})), parts[1])),
        ("hs256 with public key", hs256),
        ("typ JWT", sign(eddsa(Some("JWT"), Some(&kid)), &claims)),
        ("no typ", sign(eddsa(None, Some(&kid)), &claims)),
        ("no kid", sign(eddsa(Some("latch-widget+jwt"), None), &claims)),
        ("unknown kid", sign(eddsa(Some("latch-widget+jwt"), Some("sk_nope")), &claims)),
        ("sql kid", sign(eddsa(Some("latch-widget+jwt"), Some("' OR 1=1 --")), &claims)),
        ("wrong aud", sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"aud": "latch-host"})))),
        (
            "wrong iss",
            sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"iss": "https://other.example"}))),
        ),
        ("missing sub", sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"sub": null})))),
        ("missing org", sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"org": null})))),
        ("missing nbf", sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"nbf": null})))),
        ("nbf in future", sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"nbf": now + 60})))),
        (
            "too long lived",
            sign(eddsa(Some("latch-widget+jwt"), Some(&kid)), &with(json!({"iat": now, "exp": now + 7200}))),
        ),
        ("tampered payload", format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2])),
        ("flipped signature", format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(flipped).unwrap())),
        ("truncated", good[..good.len() - 10].to_owned()),
        ("four segments", format!("{good}.x")),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    let url = format!("{}/widget/v1/integrations", app.url);
    for (what, token) in &forged {
        let r = send(app.http.get(&url).bearer_auth(token)).await;
        assert_eq!(r.0, 401, "{what}: {}", r.1);
        assert_eq!(r.1["error"]["code"], "invalid_widget_token", "{what}");
    }
    // Still fine within the 5 s leeway, expired after it (a second of margin each side, since
    // the real clock keeps ticking under the test's offset).
    assert_eq!(send(app.http.get(&url).bearer_auth(&good)).await.0, 200);
    let exp = claims["exp"].as_i64().unwrap();
    app.state.clock.advance(exp + 3 - app.state.clock.unix());
    assert_eq!(send(app.http.get(&url).bearer_auth(&good)).await.0, 200);
    app.state.clock.advance(3);
    assert_error(&send(app.http.get(&url).bearer_auth(&good)).await, 401, "widget_token_expired");
});

both!(replicas_accept_each_others_tokens, |backend| async move {
    let app = TestApp::start(backend).await;
    let (_, body) = app.post("/v1/widget-tokens", json!({"user_id": "alice"})).await;
    let token = body["token"].as_str().unwrap();
    let replica = AppState::build(app.state.config.clone(), Clock::default()).await.unwrap();
    let claims = replica.signer.verify(token, replica.clock.unix()).await.unwrap();
    assert_eq!(claims.sub, "alice");
});

both!(integrations_show_only_the_users_own_connections, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let alice = app.seed(Seed { user_id: "alice", account_id: "a1", ..Seed::default() }).await;
    app.seed(Seed { user_id: "bob", account_id: "b1", ..Seed::default() }).await;
    app.seed(Seed { user_id: "alice", organization_id: Some("org2"), account_id: "a2", ..Seed::default() }).await;
    let (_, body) = app
        .post(
            "/v1/widget-tokens",
            json!({"user_id": "alice", "providers": ["acme"], "allowed_origin": "http://127.0.0.1:4000"}),
        )
        .await;
    let token = body["token"].as_str().unwrap();
    let url = format!("{}/widget/v1/integrations", app.url);
    let (status, list) = send(app.http.get(&url).bearer_auth(token).header("origin", "http://127.0.0.1:4000")).await;
    assert_eq!(status, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["key"], "acme");
    let connections = data[0]["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0]["id"], alice.id);
    assert!(!list.to_string().contains("at-default"), "a token reached the widget API");
    // The token is bound to its origin.
    let r = send(app.http.get(&url).bearer_auth(token).header("origin", "http://127.0.0.3:4000")).await;
    assert_error(&r, 403, "origin_not_allowed");
    // CORS answers only configured origins.
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://127.0.0.1:4000")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned()),
        Some("http://127.0.0.1:4000".to_owned()),
        "{pre:?}"
    );
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://evil.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
});

both!(replicas_starting_together_on_an_empty_database_accept_each_others_tokens, |backend| async move {
    // Replicas that start at the same moment each find no signing key; whichever key each one
    // ends up signing with, every replica must accept the others' tokens at once.
    let db = crate::harness::db::TestDb::create(backend).await;
    let config = latch_server::config::Config::for_tests(&db.url, crate::harness::MASTER_KEY);
    // Migrated once first: concurrent first migrations of one SQLite file are another matter.
    latch_server::store::Store::connect(&db.url).await.unwrap().migrate().await.unwrap();
    let replicas: Vec<AppState> =
        futures::future::join_all((0..4).map(|_| AppState::build(config.clone(), Clock::default())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    for minter in &replicas {
        let subject = latch_server::auth::widget_jwt::Subject {
            user_id: "alice",
            organization_id: None,
            providers: vec![],
            origin: None,
            label: None,
            purpose: None,
        };
        let (token, _) = minter.signer.mint(minter.clock.unix(), 600, subject).unwrap();
        for verifier in &replicas {
            verifier
                .signer
                .verify(&token, verifier.clock.unix())
                .await
                .expect("a replica's token is accepted by every other");
        }
    }
});

both!(rotating_the_signing_key_breaks_no_live_widget_token, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let mint = || async {
        let (status, body) = app.post("/v1/widget-tokens", json!({"user_id": "alice", "ttl_seconds": 3600})).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    };
    let app = &app;
    let works = |token: String| async move {
        let (status, body) = app.widget(reqwest::Method::GET, "/widget/v1/integrations", &token, None).await;
        (status, body)
    };
    let live = mint().await;
    let old_kid = decode_part(&live, 0)["kid"].as_str().unwrap().to_owned();
    let cli = crate::harness::cli::Cli::new(app, &fake.url, &[("acme", r#"["read"]"#)]);
    let (ok, out, err) = cli.run(&["keys", "rotate-signing"]);
    assert!(ok, "{err}");
    let new_kid = out.split('\t').nth(1).unwrap().to_owned();
    assert!(new_kid.starts_with("sk_") && new_kid != old_kid, "{out}");
    let (_, listed, _) = cli.run(&["keys", "list"]);
    assert!(listed.contains(&format!("widget-signing\t{new_kid}\tsigning")), "{listed}");
    assert!(listed.contains(&format!("widget-signing\t{old_kid}\tverifying until")), "{listed}");

    // Until its minute tick the server signs with the old key; after it, with the new one.
    assert_eq!(works(live.clone()).await.0, 200);
    app.state.signer.reload().await;
    let fresh = mint().await;
    assert_eq!(decode_part(&fresh, 0)["kid"], new_kid.as_str());
    assert_eq!(works(fresh.clone()).await.0, 200);
    assert_eq!(works(live.clone()).await.0, 200, "a token of the old key still works after the reload");
    let (_, jwks) = send(app.http.get(format!("{}/.well-known/jwks.json", app.url))).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{jwks}");

    // The old key verifies for as long as any token it signed lives, then it is gone.
    app.state.clock.advance(3590);
    app.state.signer.reload().await;
    assert_eq!(works(live.clone()).await.0, 200, "a live token of the old key, near its end");
    app.state.clock.advance(latch_server::auth::widget_jwt::ROTATION_OVERLAP_SECONDS - 3590 + 1);
    app.state.signer.reload().await;
    let (_, jwks) = send(app.http.get(format!("{}/.well-known/jwks.json", app.url))).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str()], "the old key retired after its overlap");
    assert_error(&works(live).await, 401, "invalid_widget_token");
    // A second rotation: the key that signed now verifies until its own overlap ends.
    let (ok, out, err) = cli.run(&["keys", "rotate-signing"]);
    assert!(ok, "{err}");
    let newest = out.split('\t').nth(1).unwrap().to_owned();
    let (_, listed, _) = cli.run(&["keys", "list"]);
    assert!(listed.contains(&format!("widget-signing\t{newest}\tsigning")), "{listed}");
    assert!(listed.contains(&format!("widget-signing\t{new_kid}\tverifying until")), "{listed}");
});

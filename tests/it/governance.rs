//! Governance of each connection: what it is for, who made it, which key last used it and whose
//! credential it is, all in its view; the host sets the purpose, and the trail records that.

use crate::harness::{TestApp, assert_error, assert_error_says, both};
use latch_shared::api::host::{GetConnection, ListProviders, UpdateConnection, UpdateConnectionEndpoint};
use serde_json::json;

both!(purpose_provenance_and_last_use_are_recorded, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let run = app.connect_flow("alice", "acme").await;
    let id = run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, providers) = app.call::<ListProviders>(&[], None).await;
    let description =
        providers["data"].as_array().unwrap().iter().find(|p| p["key"] == "acme").unwrap()["description"].clone();

    let (status, made) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["purpose"], description, "the provider's description by default");
    assert_eq!(made["created_by"], "alice");
    assert_eq!(made["credential_source"], "end_user");
    assert!(made["last_used_by"].is_null() && made["last_used_at"].is_null());

    let (status, _) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(status, 200);
    app.state.usage.flush(&app.state.store).await;
    let (_, used) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(used["last_used_by"], "test-host", "the API key's name");
    assert!(used["last_used_at"].is_string());

    let purpose = UpdateConnection { purpose: "Posts a message on every deploy".into() };
    let (status, patched) = app.call::<UpdateConnectionEndpoint>(&[&id], Some(&purpose)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["purpose"], "Posts a message on every deploy");
    assert_eq!(patched["updated_at"], used["updated_at"], "not a change of tokens or status");
    let trail = app.activity(&format!("connection_id={id}")).await;
    let changed = trail.iter().find(|e| e["action"] == "purpose_changed").expect("in the trail");
    assert_eq!(
        (changed["actor"]["kind"].as_str(), changed["detail"].as_str()),
        (Some("api_key"), Some("Posts a message on every deploy"))
    );
});

both!(a_purpose_must_be_a_line_of_text_about_a_connection_that_exists, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Default::default()).await;
    let set = |purpose: &str| UpdateConnection { purpose: purpose.into() };
    let missing = app.call::<UpdateConnectionEndpoint>(&["conn_nope"], Some(&set("x"))).await;
    assert_error(&missing, 404, "connection_not_found");
    for bad in ["", "   ", &"x".repeat(501), "line\nbreak"] {
        let got = app.call::<UpdateConnectionEndpoint>(&[&row.id], Some(&set(bad))).await;
        assert_error_says(&got, 422, "invalid_request", "purpose");
        assert_eq!(got.1["error"]["field"], "purpose");
    }
    let unknown = app
        .host(reqwest::Method::PATCH, &format!("/v1/connections/{}", row.id))
        .json(&json!({"purpose": "x", "owner": "eve"}));
    assert_error(&crate::harness::send(unknown).await, 422, "invalid_request");
    let (_, kept) = app.call::<GetConnection>(&[&row.id], None).await;
    assert!(kept["purpose"].is_null(), "nothing was changed: {kept}");
});

both!(a_purpose_given_to_the_widget_token_is_the_connections_and_the_widget_shows_it, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let minted = |purpose: &str| json!({"user_id": "alice", "providers": ["acme"], "allowed_origin": crate::harness::HOST_ORIGIN, "purpose": purpose});
    let bad = app.post("/v1/widget-tokens", minted("two\nlines")).await;
    assert_error_says(&bad, 422, "invalid_request", "purpose");
    let (status, body) = app.post("/v1/widget-tokens", minted("Posts a message on every deploy")).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, authorize) = app.connect(token, json!({"provider": "acme"})).await;
    let run = crate::harness::browser::Browser::new().run(&app.url, &authorize).await;
    let id = run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, connection) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(connection["purpose"], "Posts a message on every deploy");
    let (_, listed) = app.widget(reqwest::Method::GET, "/widget/v1/integrations", token, None).await;
    assert_eq!(listed["data"][0]["connections"][0]["purpose"], "Posts a message on every deploy");
});

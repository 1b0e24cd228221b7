//! Governance over the host API: listing, filtering, paging, reading, deleting and revoking
//! connections, and the activity trail that records it all.

use crate::harness::{Seed, TestApp, assert_error, both, send};
use reqwest::Method;
use serde_json::Value;

fn ids(page: &Value) -> Vec<&str> {
    page["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect()
}

both!(list_filter_page_get, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let a1 = app.seed(Seed { user_id: "alice", account_id: "a1", ..Seed::default() }).await;
    let a2 = app.seed(Seed { user_id: "alice", account_id: "a2", provider: "plain", ..Seed::default() }).await;
    let b1 = app.seed(Seed { user_id: "bob", account_id: "b1", ..Seed::default() }).await;
    let o1 = app
        .seed(Seed {
            user_id: "alice",
            organization_id: Some("org1"),
            account_id: "o1",
            status: "needs_reauthorization",
            ..Seed::default()
        })
        .await;

    let (_, all) = app.get("/v1/connections").await;
    assert_eq!(ids(&all), [a1.id.as_str(), a2.id.as_str(), b1.id.as_str(), o1.id.as_str()]);
    assert!(all["next_cursor"].is_null());
    assert_eq!(
        ids(&app.get("/v1/connections?user_id=alice").await.1),
        [a1.id.as_str(), a2.id.as_str(), o1.id.as_str()]
    );
    assert_eq!(ids(&app.get("/v1/connections?user_id=bob").await.1), [b1.id.as_str()]);
    assert_eq!(ids(&app.get("/v1/connections?organization_id=org1").await.1), [o1.id.as_str()]);
    assert_eq!(ids(&app.get("/v1/connections?provider=plain").await.1), [a2.id.as_str()]);
    assert_eq!(ids(&app.get("/v1/connections?status=needs_reauthorization").await.1), [o1.id.as_str()]);
    assert_eq!(ids(&app.get("/v1/connections?user_id=alice&provider=acme&status=active").await.1), [a1.id.as_str()]);

    let (_, first) = app.get("/v1/connections?limit=3").await;
    assert_eq!(ids(&first), [a1.id.as_str(), a2.id.as_str(), b1.id.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("/v1/connections?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&second), [o1.id.as_str()]);
    assert!(second["next_cursor"].is_null());

    let (status, one) = app.get(&format!("/v1/connections/{}", a1.id)).await;
    assert_eq!(status, 200);
    for field in [
        "id",
        "provider",
        "user_id",
        "organization_id",
        "account_id",
        "account_label",
        "status",
        "scopes",
        "missing_scopes",
        "created_at",
        "updated_at",
        "last_refreshed_at",
        "last_used_at",
        "access_token_expires_at",
    ] {
        assert!(one.get(field).is_some(), "missing {field} in {one}");
    }
    assert_eq!(one["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(one["status"], "active");
    assert!(one["organization_id"].is_null());
    assert!(!one.to_string().contains("at-default") && !one.to_string().contains("rt-default"));
    assert_error(&app.get("/v1/connections/conn_doesnotexist").await, 404, "connection_not_found");
});

both!(delete_and_revoke, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let plain = app.seed(Seed { provider: "plain", account_id: "p", ..Seed::default() }).await;
    let acme = app.seed(Seed { access_token: "at-acme", refresh_token: Some("rt-acme"), ..Seed::default() }).await;
    let failing = app.seed(Seed { account_id: "f", ..Seed::default() }).await;

    // No revocation endpoint: deleted, and the trail says the token was not revoked.
    let (status, _) = send(app.host(Method::DELETE, &format!("/v1/connections/{}?revoke=true", plain.id))).await;
    assert_eq!(status, 204);
    // RFC 7009: the refresh token is revoked, with its hint and client authentication.
    let (status, _) = send(app.host(Method::DELETE, &format!("/v1/connections/{}?revoke=true", acme.id))).await;
    assert_eq!(status, 204);
    let call = fake.with(|s| s.revoke_calls.last().cloned()).unwrap();
    assert_eq!(call.get("token").map(String::as_str), Some("rt-acme"));
    assert_eq!(call.get("token_type_hint").map(String::as_str), Some("refresh_token"));
    // A failing revocation is reported, and the connection is still deleted.
    fake.with(|s| s.revoke_status = 503);
    assert_eq!(send(app.host(Method::DELETE, &format!("/v1/connections/{}?revoke=true", failing.id))).await.0, 204);

    assert_error(
        &send(app.host(Method::DELETE, &format!("/v1/connections/{}", acme.id))).await,
        404,
        "connection_not_found",
    );
    assert_error(&app.get(&format!("/v1/connections/{}", acme.id)).await, 404, "connection_not_found");

    let (_, trail) = app.get("/v1/activity").await;
    let actions: Vec<(String, String, String)> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["connection_id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |id: &str, action: &str, outcome: &str| {
        actions.contains(&(id.to_owned(), action.to_owned(), outcome.to_owned()))
    };
    assert!(has(&plain.id, "revocation_unsupported", "success"), "{actions:?}");
    assert!(has(&plain.id, "deleted", "success"));
    assert!(has(&acme.id, "revoked", "success"));
    assert!(has(&failing.id, "revoke_failed", "failure"));
    assert!(has(&failing.id, "deleted", "success"));
    let entry = &trail["data"][0];
    assert_eq!(entry["actor"]["kind"], "api_key");
    assert_eq!(entry["actor"]["name"], "test-host");
    // Newest first, filterable, paged.
    let (_, only) = app.get(&format!("/v1/activity?connection_id={}", acme.id)).await;
    assert_eq!(only["data"].as_array().unwrap().len(), 2);
    let (_, page) = app.get("/v1/activity?limit=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/v1/activity?limit=10&cursor={cursor}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), actions.len() - 2);
});

both!(providers_list_has_no_secrets, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let (status, body) = app.get("/v1/providers").await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = body["data"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["acme", "plain"]);
    assert_eq!(body["data"][0]["client_secret_configured"], true);
    assert_eq!(body["data"][0]["supports_revocation"], true);
    assert!(!body.to_string().contains("acme-client-secret"));
});

both!(an_unknown_stored_status_is_an_error_not_a_guess, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    app.db.execute(&format!("UPDATE connections SET status = 'suspended' WHERE id = '{}'", row.id)).await;
    // Never read as `needs_reauthorization` (or anything else): the row is refused as unreadable.
    let (status, body) = app.get(&format!("/v1/connections/{}", row.id)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(!body.to_string().contains("suspended"), "internal detail stays in the log: {body}");
});

//! `GET /openapi.json` describes every route, and the routes it says are protected are: each one
//! answers 401 with our envelope to a request without credentials.

use crate::harness::{TestApp, both, send};
use reqwest::Method;

both!(every_documented_route_checks_its_caller, |backend| async move {
    let app = TestApp::start(backend).await;
    let (status, doc) = send(app.http.get(format!("{}/openapi.json", app.url))).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/v1/widget-tokens",
        "/v1/providers",
        "/v1/connections",
        "/v1/connections/{id}",
        "/v1/access-token",
        "/v1/activity",
        "/widget/v1/integrations",
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let mut protected = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let Some(security) = op.get("security") else {
                continue;
            };
            let scheme = security[0].as_object().unwrap().keys().next().unwrap().clone();
            let url = format!("{}{}", app.url, path.replace("{id}", "conn_x"));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) =
                send(app.http.request(method.clone(), &url).header("content-type", "application/json").body("{}"))
                    .await;
            assert_eq!(status, 401, "{method} {path} without credentials: {body}");
            assert_eq!(body["error"]["code"], "unauthorized");
            // The other kind of credential is refused too.
            let wrong = if scheme == "api_key" { "eyJhbGciOiJFZERTQSJ9.e30.x".to_owned() } else { app.api_key.clone() };
            let (status, _) = send(
                app.http.request(method, &url).bearer_auth(wrong).header("content-type", "application/json").body("{}"),
            )
            .await;
            assert_eq!(status, 401, "{path} with the wrong kind of credential");
            protected += 1;
        }
    }
    assert!(protected >= 8, "only {protected} protected operations documented");
    // The widget's schemas have no token-like property.
    let widget_schemas = ["IntegrationList", "Integration", "WidgetConnection"];
    for name in widget_schemas {
        let schema = &doc["components"]["schemas"][name];
        let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("schema {name}"));
        assert!(properties.keys().all(|k| !k.contains("token")), "{name} has a token property");
    }
});

/// The document passes a standard validator (`openapi-spec-validator`, installed by tests/run),
/// and every operation has its own stable id and documents the envelope's error answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_document_is_valid_and_true() {
    let app = TestApp::start(crate::harness::db::Backend::Sqlite).await;
    let (_, doc) = send(app.http.get(format!("{}/openapi.json", app.url))).await;
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            let responses = op["responses"].as_object().unwrap();
            for status in ["408", "429", "503"] {
                assert!(responses.contains_key(status), "{method} {path} does not document {status}");
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} does not document 401");
            }
        }
    }
    assert_eq!(doc["paths"]["/v1/connections/{id}"]["get"]["operationId"], "get_v1_connections_id");
    let validator = std::env::var("LATCH_OPENAPI_VALIDATOR").unwrap_or_else(|_| "openapi-spec-validator".into());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    match std::process::Command::new(&validator).arg(&file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator refuses /openapi.json:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => crate::harness::skip::missing(
            "openapi-spec-validator",
            "pip install openapi-spec-validator and set LATCH_OPENAPI_VALIDATOR (tests/run does)",
        ),
    }
}

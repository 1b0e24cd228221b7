//! `GET /openapi.json`: the API description, generated from the handlers and the shared types so
//! it cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Latch", description = "Connect your users' third-party accounts: host API (secret API keys) and widget API (widget JWTs)."),
    paths(
        super::host::widget_tokens::create,
        super::host::providers::list,
        super::host::connections::list,
        super::host::connections::get,
        super::host::connections::update,
        super::host::connections::delete,
        super::host::access_token::create,
        super::host::inventory::list,
        super::host::metrics::get,
        super::host::activity::list,
        super::host::events::list,
        super::host::webhooks::create,
        super::host::webhooks::list,
        super::host::webhooks::delete,
        super::host::webhooks::rotate,
        super::host::webhooks::failures,
        super::host::webhooks::resend,
        super::widget::integrations::list,
        super::widget::connect::create,
        super::widget::flows::get,
        super::widget::connections::delete,
        super::health::healthz,
        super::health::readyz,
        super::health::jwks,
    ),
    // Types only query parameters name are not collected from the paths.
    components(schemas(latch_shared::api::host::InventoryFormat)),
    modifiers(&Security, &Conventions)
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme("api_key", bearer("latch_sk_…", "Secret API key of the host app"));
        components.add_security_scheme("widget_token", bearer("JWT", "Widget token from POST /v1/widget-tokens"));
    }
}

/// What holds for every operation, written once instead of on each handler: a unique, stable
/// `operationId` derived from the method and path (`get_v1_connections_id`), and the error
/// answers any route can give through the shared layers and extractors, each with the envelope.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let slug: String = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_matches(['{', '}']).replace(['-', '.'], "_"))
                .collect::<Vec<_>>()
                .join("_");
            let operations = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(op) = operation else { continue };
                op.operation_id = Some(format!("{method}_{slug}"));
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let params = op.parameters.as_deref().unwrap_or_default();
                let has_path =
                    params.iter().any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path));
                let has_query =
                    params.iter().any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
                let mut add = |status: &str, description: &str, when: bool| {
                    if when {
                        op.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
                    }
                };
                add("400", "invalid_json: the body is not valid JSON", has_body);
                add("401", "unauthorized, invalid_api_key, invalid_widget_token or widget_token_expired", secured);
                add("404", "not_found: no such resource (also for hostile identifiers)", has_path);
                add("408", "request_timeout: the request took longer than the server allows", true);
                add("413", "payload_too_large: the body is over 64 KiB", has_body);
                add("415", "unsupported_media_type: the body is not application/json", has_body);
                add(
                    "422",
                    "invalid_request: a field or parameter breaks a rule (named in `field`)",
                    has_body || has_query,
                );
                add("429", "rate_limited: retry after Retry-After", true);
                add("503", "server_busy, database_unavailable or a provider outage: retry after Retry-After", true);
            }
        }
    }
}

/// The document, built once per call (it is small and rarely fetched).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

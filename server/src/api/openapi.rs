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
        super::host::connections::delete,
        super::host::access_token::create,
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
    modifiers(&Security)
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

/// The document, built once per call (it is small and rarely fetched).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

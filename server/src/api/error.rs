//! The one mapping from domain errors to HTTP: a status, a stable code from `latch_shared`, and a
//! message for a person. Internal detail goes to the log, never into the body.

use crate::auth::AuthError;
use crate::connections::ConnectionError;
use crate::oauth::refresh::RefreshError;
use crate::store::StoreError;
use crate::vault::VaultError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_shared::{ErrorBody, ErrorCode, ErrorDetail};

/// The HTTP status of every error code: the one table, used by the JSON errors and the HTML
/// pages alike. An error that names a field of the request is about what the request says:
/// `422`, whatever its code (`origin_not_allowed` is 403 for a request's `Origin`, 422 for an
/// `allowed_origin` in a body).
pub fn status_of(code: ErrorCode, field: Option<&str>) -> StatusCode {
    use ErrorCode as C;
    if field.is_some() {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    match code {
        C::InvalidRequest | C::ReturnToNotAllowed => StatusCode::UNPROCESSABLE_ENTITY,
        C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::RateLimited | C::TooManyPendingFlows => StatusCode::TOO_MANY_REQUESTS,
        C::Unauthorized | C::InvalidApiKey | C::InvalidSignature | C::InvalidWidgetToken | C::WidgetTokenExpired => {
            StatusCode::UNAUTHORIZED
        }
        C::OriginNotAllowed | C::ProviderNotAllowed | C::ConnectLinkRefused => StatusCode::FORBIDDEN,
        C::NotFound
        | C::ConnectionNotFound
        | C::ProviderNotFound
        | C::ApiKeyNotFound
        | C::FlowNotFound
        | C::WebhookEndpointNotFound
        | C::EventNotFound
        | C::TokenNotFound => StatusCode::NOT_FOUND,
        C::FlowAlreadyStarted | C::AmbiguousConnection => StatusCode::CONFLICT,
        C::ServerBusy
        | C::DatabaseUnavailable
        | C::ProviderUnavailable
        | C::ProviderMisconfigured
        | C::MissingClientSecret => StatusCode::SERVICE_UNAVAILABLE,
        C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        // The failures of a connect flow (`oauth2_*`, `scope_mismatch_error`, …) and `invalid_json`.
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An error on its way to becoming a response; its status follows from its code ([`status_of`]).
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u32>,
    /// The matching connections' ids, for `ambiguous_connection`.
    pub candidates: Option<Vec<String>>,
    /// Logged for 5xx; never sent.
    internal: Option<String>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, retry_after: None, candidates: None, internal: None }
    }

    /// `422` with `code` about one field of the request; the message names the field.
    pub fn about(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self { field: Some(field), ..Self::new(code, message) }
    }

    /// `422 invalid_request` about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::about(field, ErrorCode::InvalidRequest, message)
    }

    /// `500 internal_error`; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            internal: Some(detail.to_string()),
            ..Self::new(
                ErrorCode::InternalError,
                "Something went wrong inside Latch; the details are in the server log.",
            )
        }
    }

    /// `429 rate_limited` with `Retry-After`.
    pub fn rate_limited(limited: crate::limits::Limited) -> Self {
        ApiError::new(ErrorCode::RateLimited, "Too many requests; retry after the number of seconds in Retry-After.")
            .retry(limited.retry_after)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        status_of(self.code, self.field.as_deref())
    }

    /// Adds `Retry-After`.
    pub fn retry(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.internal {
            tracing::error!(code = %self.code, detail = %detail, "request failed");
        }
        let status = self.status();
        let detail =
            ErrorDetail { code: self.code, message: self.message, field: self.field, candidates: self.candidates };
        let body = ErrorBody { error: detail };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The one conversion of a store failure: an outage is `503 database_unavailable` (retry
/// shortly), anything else an internal error.
impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::new(ErrorCode::DatabaseUnavailable, "The database is unavailable right now; retry shortly.")
                    .retry(2)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        (&e).into()
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        ApiError::internal(format!("vault: {e}"))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let unauthorized = ApiError::new;
        match e {
            AuthError::Missing => {
                unauthorized(ErrorCode::Unauthorized, "Send credentials as `Authorization: Bearer <token>`.")
            }
            AuthError::InvalidApiKey => {
                unauthorized(ErrorCode::InvalidApiKey, "The API key is not valid (unknown, malformed or revoked).")
            }
            AuthError::InvalidWidgetToken(_) => {
                unauthorized(ErrorCode::InvalidWidgetToken, "The widget token is not valid for this API.")
            }
            AuthError::WidgetTokenExpired => unauthorized(
                ErrorCode::WidgetTokenExpired,
                "The widget token has expired; ask the host app for a new one.",
            ),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        let unavailable = |code, message: String| ApiError::new(code, message).retry(5);
        match e {
            RefreshError::Gone => ApiError::new(ErrorCode::ConnectionNotFound, "The connection was deleted."),
            RefreshError::Unavailable { retry_after, .. } => ApiError::new(
                ErrorCode::ProviderUnavailable,
                "The provider could not refresh the token right now and the stored one has expired; retry shortly.",
            )
            .retry(retry_after),
            RefreshError::Misconfigured(_) => unavailable(
                ErrorCode::ProviderMisconfigured,
                "The provider rejected this app's client credentials; an operator must check the client id and secret."
                    .into(),
            ),
            RefreshError::MissingClientSecret(key) => unavailable(
                ErrorCode::MissingClientSecret,
                format!("No client secret is configured for provider {key}; run `latch secret add --provider {key}`."),
            ),
            // Shared by several callers of one refresh: the same mapping.
            RefreshError::Store(e) => e.as_ref().into(),
            RefreshError::Vault(e) => e.into(),
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::NotFound(_) => ApiError::new(ErrorCode::ConnectionNotFound, "No such connection."),
            ConnectionError::ProviderNotFound(key) => {
                ApiError::new(ErrorCode::ProviderNotFound, format!("No provider {key:?} is configured."))
            }
            ConnectionError::TokenNotFound => {
                ApiError::new(ErrorCode::TokenNotFound, "No stored token matches this request.")
            }
            ConnectionError::Ambiguous(ids) => ApiError {
                candidates: Some(ids),
                ..ApiError::new(
                    ErrorCode::AmbiguousConnection,
                    "Several of the app's own connections to this provider match: name one with account_id or \
                     connection_id, or choose the default with `latch connections select --provider KEY ID`.",
                )
            },
            ConnectionError::Invalid { field, message } => ApiError::invalid(field, message),
            ConnectionError::Refresh(e) => e.into(),
            ConnectionError::Interrupted => ApiError::internal("detached work ended abnormally"),
            ConnectionError::Store(e) => e.into(),
            ConnectionError::Vault(e) => e.into(),
            ConnectionError::Render(_) => ApiError::internal("an answer could not be rendered"),
        }
    }
}

impl From<crate::widget::MintError> for ApiError {
    fn from(e: crate::widget::MintError) -> Self {
        use crate::widget::MintError;
        match e {
            MintError::Invalid(e) => e.into(),
            MintError::OriginNotAllowed(origin) => ApiError::about(
                "allowed_origin",
                ErrorCode::OriginNotAllowed,
                format!("{origin} is not in the server's allowed_origins"),
            ),
            MintError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

impl From<crate::oauth::FlowError> for ApiError {
    fn from(e: crate::oauth::FlowError) -> Self {
        use crate::oauth::FlowError;
        match e {
            FlowError::Store(e) => e.as_ref().into(),
            FlowError::Failed { code: ErrorCode::InternalError, message } => ApiError::internal(message),
            FlowError::Failed { code: code @ ErrorCode::TooManyPendingFlows, message } => {
                ApiError::new(code, message).retry(60)
            }
            FlowError::Failed { code: code @ ErrorCode::ReturnToNotAllowed, message } => {
                ApiError { field: Some("return_to".into()), ..ApiError::new(code, message) }
            }
            FlowError::Failed { code, message } => ApiError::new(code, message),
        }
    }
}

impl From<crate::events::webhooks::WebhookError> for ApiError {
    fn from(e: crate::events::webhooks::WebhookError) -> Self {
        use crate::events::webhooks::WebhookError;
        match e {
            WebhookError::EndpointNotFound => {
                ApiError::new(ErrorCode::WebhookEndpointNotFound, "No such webhook endpoint.")
            }
            WebhookError::EventNotFound(message) => ApiError::new(ErrorCode::EventNotFound, message),
            WebhookError::Invalid { field, message } => ApiError::invalid(field, message),
            WebhookError::NotAccepted(reason) => {
                ApiError::new(ErrorCode::ProviderUnavailable, format!("the endpoint did not accept it: {reason}"))
            }
            WebhookError::Internal(detail) => ApiError::internal(detail),
            WebhookError::Store(e) => e.into(),
        }
    }
}

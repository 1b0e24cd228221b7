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

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u32>,
    /// Logged for 5xx; never sent.
    internal: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None, internal: None }
    }

    /// `422 invalid_request` about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self { field: Some(field), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidRequest, message) }
    }

    /// `500 internal_error`; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            internal: Some(detail.to_string()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "Something went wrong inside Latch; the details are in the server log.",
            )
        }
    }

    /// `429 rate_limited` with `Retry-After`.
    pub fn rate_limited(limited: crate::limits::Limited) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "Too many requests; retry after the number of seconds in Retry-After.",
        )
        .retry(limited.retry_after)
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
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::DatabaseUnavailable,
                    "The database is unavailable right now; retry shortly.",
                )
                .retry(2)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        ApiError::internal(format!("vault: {e}"))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let unauthorized = |code, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
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
        let unavailable =
            |code, message: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry(5);
        match e {
            RefreshError::Gone => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ConnectionNotFound, "The connection was deleted.")
            }
            RefreshError::Unavailable { retry_after, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
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
            RefreshError::Store(e) => match std::sync::Arc::try_unwrap(e) {
                Ok(e) => e.into(),
                // Shared by several callers of one refresh: the same mapping, by kind.
                Err(shared) if matches!(*shared, StoreError::Unavailable(_)) => unavailable(
                    ErrorCode::DatabaseUnavailable,
                    "The database is unavailable right now; retry shortly.".into(),
                ),
                Err(shared) => ApiError::internal(shared),
            },
            RefreshError::Vault(e) => e.into(),
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ConnectionNotFound, "No such connection.")
            }
            ConnectionError::ProviderNotFound(key) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ProviderNotFound,
                format!("No provider {key:?} is configured."),
            ),
            ConnectionError::TokenNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::TokenNotFound, "No stored token matches this request.")
            }
            ConnectionError::Invalid { field, message } => ApiError::invalid(field, message),
            ConnectionError::Refresh(e) => e.into(),
            ConnectionError::Interrupted => ApiError::internal("detached work ended abnormally"),
            ConnectionError::Store(e) => e.into(),
            ConnectionError::Vault(e) => e.into(),
        }
    }
}

impl From<crate::widget::MintError> for ApiError {
    fn from(e: crate::widget::MintError) -> Self {
        use crate::widget::MintError;
        match e {
            MintError::Invalid(e) => e.into(),
            MintError::OriginNotAllowed(origin) => ApiError {
                field: Some("allowed_origin".into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::OriginNotAllowed,
                    format!("allowed_origin: {origin} is not in the server's allowed_origins"),
                )
            },
            MintError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

impl From<crate::oauth::FlowError> for ApiError {
    fn from(e: crate::oauth::FlowError) -> Self {
        let status = match e.code {
            ErrorCode::ProviderNotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::ProviderNotFound | ErrorCode::ConnectionNotFound | ErrorCode::FlowNotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::ReturnToNotAllowed | ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyPendingFlows => {
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.code, e.message).retry(60);
            }
            ErrorCode::InternalError => return ApiError::internal(e.message),
            _ => StatusCode::BAD_REQUEST,
        };
        let field = (e.code == ErrorCode::ReturnToNotAllowed).then(|| "return_to".to_owned());
        ApiError { field, ..ApiError::new(status, e.code, e.message) }
    }
}

impl From<crate::events::webhooks::WebhookError> for ApiError {
    fn from(e: crate::events::webhooks::WebhookError) -> Self {
        let crate::events::webhooks::WebhookError(code, message) = e;
        let status = match code {
            ErrorCode::WebhookEndpointNotFound | ErrorCode::EventNotFound => StatusCode::NOT_FOUND,
            ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => return ApiError::internal(message),
        };
        let field = message.split_once(':').filter(|_| code == ErrorCode::InvalidRequest).map(|(f, _)| f.to_owned());
        ApiError { field, ..ApiError::new(status, code, message) }
    }
}

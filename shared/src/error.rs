//! Stable error codes and the one error envelope: `{"error":{"code":"…","message":"…"}}`.
//!
//! A code, once released, never changes meaning: host apps and scripts branch on it. Messages are
//! for people and may change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error Latch reports, as the snake_case string that goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    // --- Request shape -------------------------------------------------------------------
    /// The body is not well-formed JSON.
    InvalidJson,
    /// Well-formed input that breaks a rule: unknown or missing field, wrong type, out of range.
    InvalidRequest,
    /// The body is larger than the limit (64 KiB).
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// No route matches the path.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Too many requests; retry after the `Retry-After` header.
    RateLimited,
    /// The request took longer than the server allows (`request_timeout_seconds`).
    RequestTimeout,
    /// The server is at its limit of concurrent requests; retry after `Retry-After`.
    ServerBusy,

    // --- Who is calling ------------------------------------------------------------------
    /// No credentials were sent.
    Unauthorized,
    /// The API key is unknown, malformed or revoked.
    InvalidApiKey,
    /// A request a provider pushed (an event) is not signed with the provider's signing secret,
    /// or its timestamp is more than five minutes away: refused, and logged.
    InvalidSignature,
    /// The widget token is malformed, forged or not meant for this API.
    InvalidWidgetToken,
    /// The widget token has expired: the widget asks the host page for a new one.
    WidgetTokenExpired,
    /// The request's origin is not the one the widget token was minted for, or not allowed.
    OriginNotAllowed,
    /// The widget token does not allow this provider.
    ProviderNotAllowed,

    // --- Things asked for ----------------------------------------------------------------
    /// No such connection (or not yours).
    ConnectionNotFound,
    /// No such provider is configured.
    ProviderNotFound,
    /// No such API key.
    ApiKeyNotFound,
    /// No such connect flow (or not yours).
    FlowNotFound,
    /// A `return_to` URL that is not on the widget token's allowed origin.
    ReturnToNotAllowed,
    /// The connect link was already opened (in this or another browser); start again.
    FlowAlreadyStarted,
    /// A connect link was opened other than from the app that created it (forwarded, or not
    /// started by the widget's form POST from the token's origin); nothing was attached.
    ConnectLinkRefused,
    /// The user already has too many connect attempts under way; finish or wait for them.
    TooManyPendingFlows,
    /// A reconnect landed on a different account than the connection's.
    AccountMismatch,
    /// Several connections match and none is chosen: `candidates` lists them; name one
    /// (`account_id`, `connection_id`) or select a default (`latch connections select`).
    AmbiguousConnection,
    /// No such webhook endpoint.
    WebhookEndpointNotFound,
    /// No such event (e.g. the `after` cursor of `GET /v1/events`).
    EventNotFound,

    // --- Provider and token lifecycle ------------------------------------------------------
    /// The provider could not be reached or failed; retry later.
    ProviderUnavailable,
    /// The provider rejected the app's own credentials (client id or secret): an operator must act.
    ProviderMisconfigured,
    /// The connection must be re-authorized by its user.
    NeedsReauthorization,
    /// The provider's token endpoint refused to exchange the authorization code.
    AccessTokenExchangeFailed,
    /// The identity endpoint did not yield the account identifier.
    ExternalUserIdentityNotFound,
    /// The identity endpoint answered something that is not usable JSON.
    InvalidIdentityConfigResponse,
    /// The provider's token response is malformed.
    InvalidTokenResponse,
    /// No client secret is configured for the provider.
    MissingClientSecret,
    /// The provider did not issue a refresh token and the access token expired.
    NoRefreshToken,
    /// The provider redirected back with an `error` parameter.
    Oauth2CallbackError,
    /// The authorization callback could not be processed (state, cookie, issuer, …).
    Oauth2ExchangeError,
    /// The user granted fewer scopes than the provider requires.
    ScopeMismatchError,
    /// No stored token matches the request.
    TokenNotFound,

    // --- Server side ---------------------------------------------------------------------
    /// The database cannot be reached right now; retry later.
    DatabaseUnavailable,
    /// Something failed inside Latch; the detail is in the server log, never in the response.
    InternalError,
}

impl ErrorCode {
    /// Every code, for coverage checks and documentation.
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidJson,
        Self::InvalidRequest,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RateLimited,
        Self::RequestTimeout,
        Self::ServerBusy,
        Self::Unauthorized,
        Self::InvalidApiKey,
        Self::InvalidSignature,
        Self::InvalidWidgetToken,
        Self::WidgetTokenExpired,
        Self::OriginNotAllowed,
        Self::ProviderNotAllowed,
        Self::ConnectionNotFound,
        Self::ProviderNotFound,
        Self::ApiKeyNotFound,
        Self::FlowNotFound,
        Self::ReturnToNotAllowed,
        Self::FlowAlreadyStarted,
        Self::ConnectLinkRefused,
        Self::TooManyPendingFlows,
        Self::AccountMismatch,
        Self::AmbiguousConnection,
        Self::WebhookEndpointNotFound,
        Self::EventNotFound,
        Self::ProviderUnavailable,
        Self::ProviderMisconfigured,
        Self::NeedsReauthorization,
        Self::AccessTokenExchangeFailed,
        Self::ExternalUserIdentityNotFound,
        Self::InvalidIdentityConfigResponse,
        Self::InvalidTokenResponse,
        Self::MissingClientSecret,
        Self::NoRefreshToken,
        Self::Oauth2CallbackError,
        Self::Oauth2ExchangeError,
        Self::ScopeMismatchError,
        Self::TokenNotFound,
        Self::DatabaseUnavailable,
        Self::InternalError,
    ];

    /// The wire string, e.g. `invalid_api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::RequestTimeout => "request_timeout",
            Self::ServerBusy => "server_busy",
            Self::Unauthorized => "unauthorized",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidWidgetToken => "invalid_widget_token",
            Self::WidgetTokenExpired => "widget_token_expired",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::ProviderNotAllowed => "provider_not_allowed",
            Self::ConnectionNotFound => "connection_not_found",
            Self::ProviderNotFound => "provider_not_found",
            Self::ApiKeyNotFound => "api_key_not_found",
            Self::FlowNotFound => "flow_not_found",
            Self::ReturnToNotAllowed => "return_to_not_allowed",
            Self::FlowAlreadyStarted => "flow_already_started",
            Self::ConnectLinkRefused => "connect_link_refused",
            Self::TooManyPendingFlows => "too_many_pending_flows",
            Self::AccountMismatch => "account_mismatch",
            Self::AmbiguousConnection => "ambiguous_connection",
            Self::WebhookEndpointNotFound => "webhook_endpoint_not_found",
            Self::EventNotFound => "event_not_found",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderMisconfigured => "provider_misconfigured",
            Self::NeedsReauthorization => "needs_reauthorization",
            Self::AccessTokenExchangeFailed => "access_token_exchange_failed",
            Self::ExternalUserIdentityNotFound => "external_user_identity_not_found",
            Self::InvalidIdentityConfigResponse => "invalid_identity_config_response",
            Self::InvalidTokenResponse => "invalid_token_response",
            Self::MissingClientSecret => "missing_client_secret",
            Self::NoRefreshToken => "no_refresh_token",
            Self::Oauth2CallbackError => "oauth2_callback_error",
            Self::Oauth2ExchangeError => "oauth2_exchange_error",
            Self::ScopeMismatchError => "scope_mismatch_error",
            Self::TokenNotFound => "token_not_found",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::InternalError => "internal_error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope of every error response: `{"error": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// The stable code to branch on.
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
    /// The request field at fault, for `invalid_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The ids of the connections that match, for `ambiguous_connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<String>>,
}

impl ErrorBody {
    /// An envelope without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code, message: message.into(), field: None, candidates: None } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_match_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }
}

//! Who is calling: host apps with secret API keys, widgets with short-lived JWTs.
//! No HTTP types here; `api::extract` adapts these to requests.

pub mod api_keys;
pub mod widget_jwt;

use crate::store::StoreError;

/// Why a caller was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing credentials")]
    Missing,
    /// Unknown, malformed or revoked API key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// Malformed, forged or misdirected widget token.
    #[error("invalid widget token: {0}")]
    InvalidWidgetToken(&'static str),
    /// Expired widget token.
    #[error("widget token expired")]
    WidgetTokenExpired,
    /// The store failed while checking.
    #[error(transparent)]
    Store(#[from] StoreError),
}

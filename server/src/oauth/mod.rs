//! Talking OAuth2 to providers: the connect flow (`start`, `callback`), the token endpoint,
//! identity lookup, revocation (RFC 7009), and the refresh protocol that keeps rotating refresh
//! tokens safe.

pub mod callback;
pub mod http;
pub mod identity;
pub mod protocol;
pub mod provider_health;
pub mod quirks;
pub mod refresh;
pub mod refresher;
pub mod revoke;
pub mod start;
pub mod token;

use crate::clock::Clock;
use crate::providers::{ClientSecrets, Registry};
use crate::store::{Store, StoreError};
use crate::vault::Vault;
use latch_shared::ErrorCode;
use url::Url;

/// What calling a provider needs: its definition, the app's client secret for it, and the one
/// outbound client (no redirects, timeouts, capped bodies). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub providers: Registry,
    pub secrets: ClientSecrets,
    pub http: reqwest::Client,
}

/// What the connect flow works with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct Flows {
    pub store: Store,
    pub vault: Vault,
    pub clock: Clock,
    pub upstream: Upstream,
    /// Latch's own URL: the redirect URI and the cookies' `Secure` follow from it.
    pub public_url: Url,
    /// `allowed_origins`: where a widget token without an origin may start a flow from.
    pub allowed_origins: Vec<String>,
    /// `max_pending_flows_per_user`.
    pub max_pending_flows_per_user: i64,
}

/// A connect-flow failure: a stable code and a message fit for the end user. The same value
/// reaches the widget API, the callback page's `postMessage`, the flow status and the trail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FlowError {
    pub code: ErrorCode,
    pub message: String,
}

impl FlowError {
    /// A failure with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure during a connect flow");
        match e {
            StoreError::Unavailable(_) => {
                FlowError::new(ErrorCode::DatabaseUnavailable, "Latch's database is unavailable; try again shortly.")
            }
            _ => FlowError::new(ErrorCode::InternalError, "Something went wrong inside Latch; try again."),
        }
    }
}

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
pub mod validate;

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

/// A connect-flow failure. The same value reaches the widget API, the callback page's
/// `postMessage`, the flow status and the trail, always as a stable code and a message fit for
/// the end user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// What the user is told, with the code that names it.
    #[error("{code}: {message}")]
    Failed { code: ErrorCode, message: String },
    /// Latch's database failed (shared: a flow's outcome may be reported more than once).
    #[error(transparent)]
    Store(std::sync::Arc<StoreError>),
}

impl FlowError {
    /// A failure with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Failed { code, message: message.into() }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Failed { code, .. } => *code,
            Self::Store(e) if matches!(**e, StoreError::Unavailable(_)) => ErrorCode::DatabaseUnavailable,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }

    /// The message for the end user.
    pub fn message(&self) -> &str {
        match self {
            Self::Failed { message, .. } => message,
            Self::Store(e) if matches!(**e, StoreError::Unavailable(_)) => {
                "Latch's database is unavailable; try again shortly."
            }
            Self::Store(_) => "Something went wrong inside Latch; try again.",
        }
    }
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure during a connect flow");
        Self::Store(std::sync::Arc::new(e))
    }
}

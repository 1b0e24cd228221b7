//! The lifecycle status of a connection.

use serde::{Deserialize, Serialize};

/// Whether a connection can yield tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Tokens are stored and refreshable.
    Active,
    /// The provider refused the grant; the user must connect again.
    NeedsReauthorization,
}

impl ConnectionStatus {
    /// The wire (and database) string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauthorization => "needs_reauthorization",
        }
    }

    /// Parses the wire string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "needs_reauthorization" => Some(Self::NeedsReauthorization),
            _ => None,
        }
    }
}

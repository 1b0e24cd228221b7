//! The lifecycle status of a connection.

use serde::{Deserialize, Serialize};

crate::text_enum! {
    /// Whether a connection can yield tokens.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum ConnectionStatus {
        /// Tokens are stored and refreshable.
        Active = "active",
        /// The provider refused the grant; the user must connect again.
        NeedsReauthorization = "needs_reauthorization",
    }
}

crate::text_enum! {
    /// Whose credential a connection is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum CredentialSource {
        /// An end user of the host app connected it.
        EndUser = "end_user",
        /// The app's own account, connected by a developer for background jobs.
        Developer = "developer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_wire_names_and_nothing_else_parses() {
        for status in ConnectionStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(status.as_str().parse::<ConnectionStatus>(), Ok(*status));
        }
        for source in CredentialSource::ALL {
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
        let unknown = "revoked".parse::<ConnectionStatus>().unwrap_err();
        assert_eq!(unknown.to_string(), "unknown ConnectionStatus \"revoked\"");
    }
}

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
        /// Deleted: a tombstone with no secret left, kept for the inventory until it is purged.
        Deleted = "deleted",
    }
}

crate::text_enum! {
    /// What became of a deleted connection's grant at the provider.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Revocation {
        /// The provider revoked it.
        Revoked = "revoked",
        /// The provider has no revocation endpoint: its token stays valid there until it expires.
        Unsupported = "unsupported",
        /// Revocation was asked for and failed.
        Failed = "failed",
        /// Deleted without asking the provider to revoke.
        NotRequested = "not_requested",
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

crate::text_enum! {
    /// Whether a scope lets the app read or also change what the user has.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum ScopeAccess {
        /// It only reads.
        Read = "read",
        /// It writes (posts, changes, deletes).
        Write = "write",
    }
}

/// One scope and what it means, from the provider's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeDetail {
    /// The scope as the provider names it.
    pub name: String,
    /// What it lets the app do, in plain words.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether it reads or writes; `null` when the definition does not say.
    #[serde(default)]
    pub access: Option<ScopeAccess>,
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

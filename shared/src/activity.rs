//! What the activity trail records: the actions a connection's history is made of.

use serde::{Deserialize, Serialize};

crate::text_enum! {
    /// One kind of activity entry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Action {
        /// A user connected an account for the first time.
        Connected = "connected",
        /// A user connected the same account again (a new grant).
        Reconnected = "reconnected",
        /// A connect flow failed; `error_code` says why.
        ConnectFailed = "connect_failed",
        /// A connect link was opened outside the app that created it, and refused.
        ConnectRefused = "connect_refused",
        /// The host fetched tokens (one entry per key and minute, with the count).
        TokenRetrieved = "token_retrieved",
        /// The tokens were refreshed.
        Refreshed = "refreshed",
        /// A refresh failed.
        RefreshFailed = "refresh_failed",
        /// A refresh was cut short (a crash) and retried.
        RefreshOutcomeUnknown = "refresh_outcome_unknown",
        /// Re-validation found the token no longer accepted.
        ValidationFailed = "validation_failed",
        /// The host changed what the connection is for (`purpose`).
        PurposeChanged = "purpose_changed",
        /// An operator chose this developer connection as its provider's default.
        Selected = "selected",
        /// The connection was deleted.
        Deleted = "deleted",
        /// Its grant was revoked at the provider.
        Revoked = "revoked",
        /// The provider has no revocation endpoint.
        RevocationUnsupported = "revocation_unsupported",
        /// Revoking at the provider failed.
        RevokeFailed = "revoke_failed",
        /// The provider rejected the app's client credentials.
        ProviderCredentialsRejected = "provider_credentials_rejected",
        /// The provider said the grant is gone (the app was uninstalled, its tokens revoked).
        ProviderRevoked = "provider_revoked",
        /// A provider revoked many grants at once; flipping stopped.
        ProviderIncident = "provider_incident",
        /// A provider's circuit breaker opened after repeated failures.
        CircuitOpened = "circuit_opened",
        /// A provider's circuit breaker closed again.
        CircuitClosed = "circuit_closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_wire_names() {
        for action in Action::ALL {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }
}

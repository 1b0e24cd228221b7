//! Bodies of the widget API (`/widget/v1/…`), called by the widget with a short-lived widget JWT.
//!
//! Nothing here can carry a provider token: the widget never holds one.

use crate::status::ConnectionStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One of the user's connections, as the widget shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WidgetConnection {
    /// `conn_…`.
    pub id: String,
    /// A readable label for the account.
    pub account_label: Option<String>,
    /// Connected or needs reconnect.
    pub status: ConnectionStatus,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When it was first connected.
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
}

/// A provider the widget token allows, with the user's connections to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Integration {
    /// Provider key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Why the app needs it.
    pub description: String,
    /// Scopes requested at connect time.
    pub scopes: Vec<String>,
    /// The user's connections to it.
    pub connections: Vec<WidgetConnection>,
}

/// `GET /widget/v1/integrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrationList {
    /// The allowed providers, in the token's order.
    pub data: Vec<Integration>,
}

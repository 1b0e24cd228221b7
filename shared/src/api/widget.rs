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
    /// What the app uses it for.
    #[serde(default)]
    pub purpose: Option<String>,
    /// When it was first connected.
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
    /// What the grant is limited to, e.g. the channel it posts to (never the webhook URL).
    #[serde(default)]
    pub resources: Vec<crate::Resource>,
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
    /// Whether the user can connect (or reconnect) it now: false while the app has no client
    /// secret for it (such a provider is listed only to users who already have connections).
    #[serde(default = "connectable_by_default")]
    pub connectable: bool,
}

fn connectable_by_default() -> bool {
    true
}

/// `GET /widget/v1/integrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrationList {
    /// The allowed providers, in the token's order.
    pub data: Vec<Integration>,
}

/// `POST /widget/v1/connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Provider key.
    pub provider: String,
    /// Reconnect this connection (it must be the token user's).
    #[serde(default)]
    pub connection_id: Option<String>,
    /// Where a full-page flow ends; must be on the token's allowed origin.
    #[serde(default)]
    pub return_to: Option<String>,
}

/// Answer to [`ConnectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectStarted {
    /// `flow_…`, for polling `GET /widget/v1/flows/{flow_id}`.
    pub flow_id: String,
    /// Open this (a Latch URL) in the popup; single use, valid 10 minutes.
    pub authorize_url: String,
}

/// Where a connect flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// Not finished (or not started).
    Pending,
    /// The connection is stored.
    Connected,
    /// It failed; see `error`.
    Error,
}

/// A flow's error, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowError {
    /// Stable code (see `ErrorCode`).
    pub code: String,
    /// A sentence for the user.
    pub message: String,
}

/// `GET /widget/v1/flows/{flow_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowStatus {
    /// Where it stands.
    pub status: FlowState,
    /// The connection, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// What went wrong, on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowError>,
}

/// What the callback page posts to the widget's window (`window.opener`), with the widget
/// token's exact origin as target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackMessage {
    /// Always `latch`.
    pub source: String,
    /// `connected` or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Provider key.
    pub provider: String,
    /// The flow this answers.
    pub flow_id: String,
    /// The connection, when connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FlowError>,
}

crate::endpoint::endpoints! {
    /// `GET /widget/v1/integrations`: the providers the token allows, with the user's connections.
    ListIntegrations: Get "/widget/v1/integrations" => (), IntegrationList;
    /// `POST /widget/v1/connect`: a connect flow for the token's user.
    StartConnect: Post "/widget/v1/connect" => ConnectRequest, ConnectStarted;
    /// `GET /widget/v1/flows/{flow_id}`: where one of the user's flows stands.
    GetFlow: Get "/widget/v1/flows/{flow_id}" => (), FlowStatus;
    /// `DELETE /widget/v1/connections/{id}`: the user disconnects one of their connections.
    Disconnect: Delete "/widget/v1/connections/{id}" => (), ();
}

//! Bodies of the host API (`/v1/…`), called by a host app's backend with a secret API key.
//!
//! Requests reject unknown fields, so a typo in a host app fails loudly instead of being ignored.

use crate::status::ConnectionStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `POST /v1/widget-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWidgetToken {
    /// The host app's id for the end user.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub user_id: String,
    /// The host app's id for the user's organization, if it has them.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub organization_id: Option<String>,
    /// Provider keys the widget may show; all configured providers when absent.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// The exact origin of the host page that embeds the widget.
    #[serde(default)]
    pub allowed_origin: Option<String>,
    /// Lifetime, 30–3600 seconds; 600 when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 30, maximum = 3600))]
    pub ttl_seconds: Option<i64>,
    /// How the host names this user to them (e.g. their email), shown on the consent result
    /// page ("connected for …") so a user sees whose account a connection is attached to.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub user_label: Option<String>,
    /// What a connection made through this widget is for (1–500 characters, one line); the
    /// provider's description when absent. Shown in the widget and kept on the connection.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub purpose: Option<String>,
}

/// Answer to [`CreateWidgetToken`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WidgetToken {
    /// The signed widget JWT.
    pub token: String,
    /// When it stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A provider as the host API shows it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderInfo {
    /// Stable key, e.g. `slack`.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Why the app needs it, shown in the widget.
    pub description: String,
    /// Scopes requested at connect time.
    pub scopes: Vec<String>,
    /// Each of `scopes` with what it means and whether it reads or writes.
    pub scope_details: Vec<crate::ScopeDetail>,
    /// Scopes requested for the installing user's token (Slack `user_scope`), besides `scopes`.
    #[serde(default)]
    pub user_scopes: Vec<String>,
    /// Whether a client secret is available (stored or from the environment).
    pub client_secret_configured: bool,
    /// Whether disconnecting can revoke tokens at the provider.
    pub supports_revocation: bool,
    /// The refresh circuit breaker of the replica that answered: `closed` (calls go through),
    /// `open` (the provider failed repeatedly; refreshes are held back) or `half_open` (one
    /// probe is let through).
    pub circuit: String,
}

/// `GET /v1/providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderList {
    /// The configured providers, sorted by key.
    pub data: Vec<ProviderInfo>,
}

/// A connection between an end user and an account at a provider. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// `conn_…`.
    pub id: String,
    /// Provider key.
    pub provider: String,
    /// Owner: the host app's user id.
    pub user_id: String,
    /// Owner's organization, if any.
    pub organization_id: Option<String>,
    /// The external identity at the provider (e.g. Slack team id).
    pub account_id: String,
    /// A readable label for the account (e.g. team name, email).
    pub account_label: Option<String>,
    /// The operator's name for a developer connection (`latch connect --label`).
    #[serde(default)]
    pub label: Option<String>,
    /// Whether tokens can be served.
    pub status: ConnectionStatus,
    /// Scopes granted by the user.
    pub scopes: Vec<String>,
    /// Scopes the provider requires that were not granted.
    pub missing_scopes: Vec<String>,
    /// When first connected.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change of tokens or status.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Last successful refresh.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// Last time a host asked for its token.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Last time the grant was proven valid at the provider.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_validated_at: Option<OffsetDateTime>,
    /// When the stored access token expires; `null` for tokens that do not expire.
    #[serde(with = "time::serde::rfc3339::option")]
    pub access_token_expires_at: Option<OffsetDateTime>,
    /// What the connection is for: the provider's description when it was made, or what the
    /// host set (`PATCH /v1/connections/{id}`); `null` for connections older than the field.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Who made it: the widget user who connected it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// The API key that last fetched its token.
    #[serde(default)]
    pub last_used_by: Option<String>,
    /// An end user's connection, or the app's own.
    pub credential_source: crate::CredentialSource,
    /// What the grant is limited to, e.g. the channel a Slack incoming webhook posts to
    /// (`[{"type": "channel", "id": "C…", "name": "#deploys"}]`); the webhook URL itself is a
    /// secret, served only by `POST /v1/access-token`.
    #[serde(default)]
    pub resources: Vec<crate::Resource>,
    /// Who installed the app where (Slack: team, enterprise, bot user, app, installing user);
    /// `null` when the provider does not say.
    #[serde(default)]
    pub installation: Option<crate::Installation>,
    /// The installing user's token held besides the bot token (Slack `user_scope`), if any.
    #[serde(default)]
    pub user_token: Option<crate::UserTokenInfo>,
}

/// Body of `PATCH /v1/connections/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    /// What the connection is for, in the host's words (shown to operators and in the trail).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub purpose: String,
}

/// Query of `GET /v1/inventory`: every filter optional, all of them must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {
    /// Only this user's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub user_id: Option<String>,
    /// Only this organization's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub organization_id: Option<String>,
    /// Only this provider's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub provider: Option<String>,
    /// Only connections in this status (`deleted`: only tombstones).
    pub status: Option<ConnectionStatus>,
    /// Also list tombstones of deleted connections.
    pub include_deleted: Option<bool>,
    /// Only connections granted this scope.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub scope: Option<String>,
    /// `write`: only connections granted a scope that writes.
    pub access: Option<crate::ScopeAccess>,
    /// Only end users' connections, or only the app's own.
    pub credential_source: Option<crate::CredentialSource>,
    /// Only connections never used, or not used for this many days.
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 36500))]
    pub unused_days: Option<u32>,
    /// `json` (the default) or `csv` (also chosen by `Accept: text/csv`).
    pub format: Option<InventoryFormat>,
    /// Page size, 1–200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (in CSV, the `Latch-Next-Cursor` header).
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub cursor: Option<String>,
}

/// How `GET /v1/inventory` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InventoryFormat {
    /// `{data, next_cursor}`.
    Json,
    /// A header row, then one connection a line (RFC 4180).
    Csv,
}

/// One connection as a security team sees it: who owns it, what it can do, what it is for, and
/// when it was last used and validated. Never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryEntry {
    /// `conn_…`.
    pub id: String,
    /// Provider key.
    pub provider: String,
    /// Owner: the host app's user id.
    pub user_id: String,
    /// Owner's organization, if any.
    pub organization_id: Option<String>,
    /// The external identity at the provider.
    pub account_id: String,
    /// A readable label for the account.
    pub account_label: Option<String>,
    /// The operator's name for a developer connection.
    pub label: Option<String>,
    /// The kind of token it holds (`bearer`; Slack's `bot` or `user`).
    pub token_type: String,
    /// An end user's connection, or the app's own.
    pub credential_source: crate::CredentialSource,
    /// Whether tokens can be served.
    pub status: ConnectionStatus,
    /// What it is for.
    pub purpose: Option<String>,
    /// Granted scopes, each with what it means and whether it writes (from the provider's definition).
    pub scopes: Vec<crate::ScopeDetail>,
    /// Whether any granted scope writes.
    pub writes: bool,
    /// Scopes the provider requires that were not granted.
    pub missing_scopes: Vec<String>,
    /// When first connected.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The widget user who connected it.
    pub created_by: Option<String>,
    /// Last time a host asked for its token.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The API key that did.
    pub last_used_by: Option<String>,
    /// Last successful refresh.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// Last time the grant was proven valid at the provider.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_validated_at: Option<OffsetDateTime>,
    /// When it was deleted (tombstones only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// Who deleted it: an API key name, a widget user, or a part of Latch (tombstones only).
    pub deleted_by: Option<String>,
    /// What became of its grant at the provider (tombstones only).
    pub revocation: Option<crate::Revocation>,
    /// What the grant is limited to (Slack: the incoming webhook's channel).
    #[serde(default)]
    pub resources: Vec<crate::Resource>,
    /// Scopes of the installing user's token held besides the bot token (Slack `user_scope`).
    #[serde(default)]
    pub user_scopes: Vec<String>,
}

/// Query of `GET /v1/connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConnectionQuery {
    /// Only this user's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub user_id: Option<String>,
    /// Only this organization's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub organization_id: Option<String>,
    /// Only this provider's connections.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub provider: Option<String>,
    /// Only connections in this status.
    pub status: Option<ConnectionStatus>,
    /// Page size, 1–200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub cursor: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items, oldest first.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `DELETE /v1/connections/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeleteConnectionQuery {
    /// Also revoke the token at the provider (RFC 7009) when it supports revocation.
    #[serde(default)]
    pub revoke: Option<bool>,
}

/// `POST /v1/access-token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessTokenRequest {
    /// Owner of the connection; required for an end user's, absent for the app's own.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub user_id: Option<String>,
    /// `developer`: the app's own connection to the provider (made with
    /// `latch connect --as-developer`), not an end user's. Default `end_user`.
    #[serde(default)]
    pub credential_source: Option<crate::CredentialSource>,
    /// Owner's organization, if any.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub organization_id: Option<String>,
    /// Provider key.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub provider: String,
    /// Pick the connection to this external account when the user has several.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub account_id: Option<String>,
    /// Pick this connection; it must still match the user, organization and provider.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")
    )]
    pub connection_id: Option<String>,
    /// Refresh even if the stored token is still fresh. A token refreshed moments ago is not
    /// refreshed again (providers such as Slack keep only two live tokens per chain).
    #[serde(default)]
    pub force_refresh: Option<bool>,
    /// Which token: `bot` (the default where there is one) or `user` (the installing user's,
    /// Slack `user_scope`); `404 token_not_found` when the connection holds no such token.
    #[serde(default)]
    pub token: Option<crate::TokenKind>,
}

/// Answer to [`AccessTokenRequest`]: `{"active":true,…}` or `{"active":false,"error":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum AccessTokenResponse {
    /// A usable token.
    Active(ActiveToken),
    /// No usable token, and why.
    Inactive(InactiveToken),
}

/// A fresh access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveToken {
    /// Always `true`.
    pub active: bool,
    /// The provider access token.
    pub access_token: String,
    /// Usually `bearer`.
    pub token_type: String,
    /// When it expires; `null` when the provider did not say.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Required scopes that were not granted.
    pub missing_scopes: Vec<String>,
    /// The connection that yielded it.
    pub connection_id: String,
    /// The external account.
    pub account_id: String,
    /// Slack's incoming webhook for the granted channel (a secret, like the token), when the
    /// install granted `incoming-webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_webhook_url: Option<String>,
}

/// Why no token can be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InactiveReason {
    /// The user has no connection to this provider.
    NotInstalled,
    /// The connection exists but the user must reconnect.
    NeedsReauthorization,
}

/// No usable token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InactiveToken {
    /// Always `false`.
    pub active: bool,
    /// Why.
    pub error: InactiveReason,
    /// The connection concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Where to send the user to reconnect (the hosted widget page), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_url: Option<String>,
}

/// Query of `GET /v1/activity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only entries about this connection.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub connection_id: Option<String>,
    /// Only entries about this user.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub user_id: Option<String>,
    /// Only entries about this provider.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub provider: Option<String>,
    /// Page size, 1–200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub cursor: Option<String>,
}

/// Who caused an activity entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// `api_key`, `user` or `system`.
    pub kind: String,
    /// The API key's name, the user id, or the subsystem.
    pub name: String,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityEntry {
    /// `act_…`.
    pub id: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub action: crate::activity::Action,
    /// The connection concerned.
    pub connection_id: Option<String>,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The organization concerned.
    pub organization_id: Option<String>,
    /// The provider concerned.
    pub provider: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    pub error_code: Option<String>,
    /// A short safe explanation (never a token or a provider's raw body).
    pub detail: Option<String>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
}

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// Where to POST events (https; private addresses only with `allow_private_webhook_targets`).
    pub url: String,
    /// Event types to receive; all when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// A webhook endpoint (its secret is shown only when created or rotated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    /// `whe_…`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Subscribed event types (empty: all).
    pub events: Vec<String>,
    /// The signing secret (`whsec_…`, Standard Webhooks), only in create and rotate answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Failed attempts at the event currently being delivered.
    pub failing_attempts: i64,
    /// The last delivery error, while failing.
    pub last_error: Option<String>,
}

/// A list of endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEndpointList {
    /// Oldest first.
    pub data: Vec<WebhookEndpoint>,
}

/// An event, as polled or delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `evt_…`; also the `webhook-id` of deliveries, for deduplication.
    pub id: String,
    /// `connection.created`, `connection.reauthorized`, `connection.needs_reauthorization`,
    /// `connection.deleted`, `connection.refresh_failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The connection (never a token).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// Query of `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events after this event id.
    #[cfg_attr(feature = "openapi", param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))]
    pub after: Option<String>,
    /// Page size, 1–200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
}

/// An event an endpoint did not accept within 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookFailure {
    /// `whf_…`.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was given up.
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
    /// When it was re-sent successfully.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resent_at: Option<OffsetDateTime>,
}

crate::endpoint::endpoints! {
    /// `POST /v1/widget-tokens`.
    CreateWidgetTokenEndpoint: Post "/v1/widget-tokens" => CreateWidgetToken, WidgetToken;
    /// `GET /v1/providers`.
    ListProviders: Get "/v1/providers" => (), ProviderList;
    /// `GET /v1/connections`.
    ListConnections: Get "/v1/connections" => ConnectionQuery, Page<Connection>;
    /// `GET /v1/connections/{id}`.
    GetConnection: Get "/v1/connections/{id}" => (), Connection;
    /// `PATCH /v1/connections/{id}`: sets what the connection is for.
    UpdateConnectionEndpoint: Patch "/v1/connections/{id}" => UpdateConnection, Connection;
    /// `DELETE /v1/connections/{id}`.
    DeleteConnection: Delete "/v1/connections/{id}" => DeleteConnectionQuery, ();
    /// `POST /v1/access-token`.
    GetAccessToken: Post "/v1/access-token" => AccessTokenRequest, AccessTokenResponse;
    /// `GET /v1/inventory`.
    ListInventory: Get "/v1/inventory" => InventoryQuery, Page<InventoryEntry>;
    /// `GET /v1/activity`.
    ListActivity: Get "/v1/activity" => ActivityQuery, Page<ActivityEntry>;
    /// `GET /v1/events`.
    ListEvents: Get "/v1/events" => EventQuery, Page<Event>;
    /// `GET /v1/webhook-endpoints`.
    ListWebhookEndpoints: Get "/v1/webhook-endpoints" => (), WebhookEndpointList;
    /// `POST /v1/webhook-endpoints`.
    CreateWebhookEndpointEndpoint: Post "/v1/webhook-endpoints" => CreateWebhookEndpoint, WebhookEndpoint;
    /// `DELETE /v1/webhook-endpoints/{id}`.
    DeleteWebhookEndpoint: Delete "/v1/webhook-endpoints/{id}" => (), ();
    /// `POST /v1/webhook-endpoints/{id}/rotate-secret`.
    RotateWebhookSecret: Post "/v1/webhook-endpoints/{id}/rotate-secret" => (), WebhookEndpoint;
    /// `GET /v1/webhook-endpoints/{id}/failures`.
    ListWebhookFailures: Get "/v1/webhook-endpoints/{id}/failures" => (), serde_json::Value;
    /// `POST /v1/webhook-endpoints/{id}/failures/{failure_id}/resend`.
    ResendWebhookFailure: Post "/v1/webhook-endpoints/{id}/failures/{failure_id}/resend" => (), ();
}

//! The server's side of the widget: minting widget tokens for host apps, and what the widget API
//! shows a user. The widget never receives a provider token from here.

use crate::auth::widget_jwt::WidgetSigner;
use crate::auth::widget_jwt::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS, Subject, WidgetClaims};
use crate::clock::Clock;
use crate::clock::from_unix;
use crate::config::normalize_origin;
use crate::connections::Deleter;
use crate::connections::{ConnectionError, check_id};
use crate::oauth::FlowError;
use crate::providers::{ClientSecrets, Registry};
use crate::store::Store;
use crate::store::flows::FlowStage;
use latch_shared::ErrorCode;
use latch_shared::api::host::{CreateWidgetToken, WidgetToken};
use latch_shared::api::widget::{
    FlowError as WireFlowError, FlowState, FlowStatus, Integration, IntegrationList, WidgetConnection,
};
use std::sync::Arc;
use url::Url;

/// Mints a widget token for `POST /v1/widget-tokens`.
/// What the widget's side of the server works with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct WidgetCtx {
    pub store: Store,
    pub clock: Clock,
    pub providers: Registry,
    /// Which providers can be offered (a provider without a client secret is not).
    pub secrets: ClientSecrets,
    pub signer: Arc<WidgetSigner>,
    pub deleter: Deleter,
    /// Latch's own URL (its origin may always embed the widget).
    pub public_url: Url,
    /// `allowed_origins`: the host pages that may embed the widget.
    pub allowed_origins: Vec<String>,
}

pub fn mint(w: &WidgetCtx, req: &CreateWidgetToken) -> Result<WidgetToken, MintError> {
    check_id("user_id", &req.user_id)?;
    if let Some(org) = &req.organization_id {
        check_id("organization_id", org)?;
    }
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(invalid("ttl_seconds", format!("must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")));
    }
    let providers = match &req.providers {
        Some(keys) => {
            if let Some(unknown) = keys.iter().find(|k| w.providers.get(k).is_none()) {
                return Err(invalid("providers", format!("no provider {unknown:?} is configured")));
            }
            // Each provider once, in the host's order.
            let mut unique: Vec<String> = Vec::with_capacity(keys.len());
            for key in keys {
                if !unique.contains(key) {
                    unique.push(key.clone());
                }
            }
            unique
        }
        None => w.providers.all().map(|p| p.key.clone()).collect(),
    };
    let origin = match &req.allowed_origin {
        Some(text) => {
            let origin = normalize_origin(text).map_err(|m| invalid("allowed_origin", m.to_owned()))?;
            // The hosted page (`/connect`) is on Latch's own origin.
            let own = w.public_url.origin().ascii_serialization();
            if origin != own && !w.allowed_origins.contains(&origin) {
                return Err(MintError::OriginNotAllowed(origin));
            }
            Some(origin)
        }
        None => None,
    };
    let label = match &req.user_label {
        Some(label) if label.is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control) => {
            return Err(invalid("user_label", "must be 1 to 200 characters without control characters".into()));
        }
        other => other.clone(),
    };
    let purpose = match req.purpose.as_deref().map(str::trim) {
        Some(p) if p.is_empty() || p.chars().count() > 500 || p.chars().any(char::is_control) => {
            return Err(invalid("purpose", "must be 1 to 500 characters without control characters".into()));
        }
        other => other.map(str::to_owned),
    };
    let now = w.clock.unix();
    let (token, claims) = w
        .signer
        .mint(
            now,
            ttl,
            Subject {
                user_id: &req.user_id,
                organization_id: req.organization_id.as_deref(),
                providers,
                origin,
                label,
                purpose,
            },
        )
        .map_err(|e| MintError::Internal(e.to_string()))?;
    Ok(WidgetToken { token, expires_at: from_unix(claims.exp) })
}

/// Why a widget token was not minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Invalid(#[from] ConnectionError),
    #[error("origin {0} is not in allowed_origins")]
    OriginNotAllowed(String),
    #[error("{0}")]
    Internal(String),
}

fn invalid(field: &'static str, message: String) -> MintError {
    MintError::Invalid(ConnectionError::Invalid { field, message })
}

/// `GET /widget/v1/integrations`: the providers the token allows, each with the token user's
/// own connections to it, and nothing of anyone else's. A provider without a client secret is
/// not offered, unless the user already has connections to it (to see and remove them); it is
/// then listed with `connectable: false`.
pub async fn integrations(w: &WidgetCtx, claims: &WidgetClaims) -> Result<IntegrationList, ConnectionError> {
    let org = claims.org.as_deref().unwrap_or("");
    let rows = w.store.connections_of_user(&claims.sub, org).await?;
    let secrets = w.secrets.sources().await?;
    let data = claims
        .providers
        .iter()
        .filter_map(|key| w.providers.get(key))
        .map(|p| (p, secrets.of(p).is_ready()))
        .filter(|(p, ready)| *ready || rows.iter().any(|r| r.provider == p.key))
        .map(|(p, connectable)| Integration {
            connectable,
            key: p.key.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            scopes: p.scopes.clone(),
            connections: rows
                .iter()
                .filter(|r| r.provider == p.key)
                .map(|r| WidgetConnection {
                    id: r.id.clone(),
                    account_label: r.account_label.clone(),
                    status: r.status,
                    scopes: r.scopes.to_vec(),
                    purpose: r.purpose.clone(),
                    connected_at: from_unix(r.created_at),
                    resources: r.resources.0.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(IntegrationList { data })
}

/// `GET /widget/v1/flows/{flow_id}`: the token user's own flows only.
pub async fn flow_status(w: &WidgetCtx, claims: &WidgetClaims, flow_id: &str) -> Result<FlowStatus, FlowError> {
    let org = claims.org.as_deref().unwrap_or("");
    let flow = w
        .store
        .flow(flow_id)
        .await?
        .filter(|f| f.user_id == claims.sub && f.organization_id == org)
        .ok_or_else(|| FlowError::new(ErrorCode::FlowNotFound, "No such connect attempt."))?;
    Ok(match flow.status {
        FlowStage::Connected => {
            FlowStatus { status: FlowState::Connected, connection_id: flow.connection_id, error: None }
        }
        FlowStage::Error => FlowStatus {
            status: FlowState::Error,
            connection_id: None,
            error: Some(WireFlowError {
                code: flow.error_code.unwrap_or_else(|| "internal_error".into()),
                message: flow.error_message.unwrap_or_default(),
            }),
        },
        _ if flow.expires_at <= w.clock.unix() => FlowStatus {
            status: FlowState::Error,
            connection_id: None,
            error: Some(WireFlowError {
                code: "oauth2_exchange_error".into(),
                message: "The connect attempt expired.".into(),
            }),
        },
        _ => FlowStatus { status: FlowState::Pending, connection_id: None, error: None },
    })
}

/// `DELETE /widget/v1/connections/{id}`: the user disconnects one of their own connections; the
/// grant is revoked at the provider when it supports revocation.
pub async fn disconnect(w: &WidgetCtx, claims: &WidgetClaims, id: &str) -> Result<(), ConnectionError> {
    let org = claims.org.as_deref().unwrap_or("");
    let row = w
        .store
        .connection(id)
        .await?
        .filter(|c| c.user_id == claims.sub && c.organization_id == org && claims.providers.contains(&c.provider))
        .ok_or_else(|| ConnectionError::NotFound(id.to_owned()))?;
    crate::connections::delete(&w.deleter, &crate::activity::Actor::User(claims.sub.clone()), &row, true).await
}

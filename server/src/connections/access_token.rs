//! "Give me a working access token for user U's provider P": the hot path of Latch.
//!
//! For a fresh token this is one indexed read, one decryption and an in-memory usage note: no
//! database write. Expiring tokens go through `oauth::refresh`.

use super::{ConnectionError, cache, check_id};
use crate::activity::Actor;
use crate::auth::api_keys::HostIdentity;
use crate::auth::widget_jwt::WidgetSigner;
use crate::clock::from_unix;
use crate::oauth::refresh::{self, RefreshCtx, Refreshed};
use crate::store::connections::{Chain, ConnectionRow, TokenLookup};
use crate::usage::UsageRecorder;
use crate::vault::Sealed;
use latch_shared::api::host::{AccessTokenRequest, AccessTokenResponse, ActiveToken, InactiveReason, InactiveToken};
use latch_shared::{ConnectionStatus, CredentialSource, TokenKind};
use std::sync::Arc;

/// What the fresh-token path works with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct TokenPath {
    pub refresh: RefreshCtx,
    /// Connection rows by lookup, for a couple of seconds (see `cache`).
    pub cache: Arc<cache::TokenCache>,
    pub usage: UsageRecorder,
    /// Mints the widget token of a reconnect link.
    pub signer: Arc<WidgetSigner>,
    /// Where the hosted reconnect page lives.
    pub public_url: url::Url,
}

/// Answers `POST /v1/access-token`.
pub async fn access_token(
    path: &TokenPath,
    caller: &HostIdentity,
    req: &AccessTokenRequest,
) -> Result<AccessTokenResponse, ConnectionError> {
    check_id("provider", &req.provider)?;
    for (field, value) in [
        ("user_id", &req.user_id),
        ("organization_id", &req.organization_id),
        ("account_id", &req.account_id),
        ("connection_id", &req.connection_id),
    ] {
        if let Some(value) = value {
            check_id(field, value)?;
        }
    }
    if path.refresh.upstream.providers.get(&req.provider).is_none() {
        return Err(ConnectionError::ProviderNotFound(req.provider.clone()));
    }
    let row = match (req.credential_source.unwrap_or(CredentialSource::EndUser), &req.user_id) {
        (CredentialSource::EndUser, Some(user_id)) => end_user_connection(path, req, user_id).await?,
        (CredentialSource::EndUser, None) => {
            return Err(invalid("user_id", "is required (or set credential_source to developer for the app's own)"));
        }
        (CredentialSource::Developer, None) if req.organization_id.is_none() => developer_connection(path, req).await?,
        (CredentialSource::Developer, _) => {
            let field = if req.user_id.is_some() { "user_id" } else { "organization_id" };
            return Err(invalid(field, "must not be given: a developer connection belongs to the app, not to a user"));
        }
    };
    let Some(row) = row else {
        // Naming a connection that is not this user's (or does not exist) must not be told apart.
        if req.connection_id.is_some() {
            return Err(ConnectionError::TokenNotFound);
        }
        return Ok(inactive(InactiveReason::NotInstalled, None));
    };
    if row.status != ConnectionStatus::Active {
        return Ok(needs_reauthorization(path, &row));
    }
    let chain = chain(&row, req.token)?;
    let now = path.refresh.clock.unix();
    let force = req.force_refresh.unwrap_or(false);
    let row = if force || refresh::needs_refresh(&row, chain, now, path.refresh.skew_seconds) {
        if !force {
            crate::metrics::refresh_wait();
        }
        let actor = Actor::ApiKey(caller.key_name.to_string());
        match refresh::refresh(&path.refresh, &row, chain, force, &actor).await? {
            Refreshed::Usable(row) | Refreshed::Stale(row) | Refreshed::Elsewhere(row) => Arc::new(row),
            Refreshed::NeedsReauthorization(row) => {
                return Ok(needs_reauthorization(path, &row));
            }
        }
    } else {
        row
    };
    active(path, caller, row, chain)
}

/// Which token chain answers `asked`: by default the connection's own token (the bot's, or a
/// user-only install's user token); `user` the installing user's (held beside a bot token, or
/// the only one of a user-only install, or a bearer token, which acts as its user); `bot` only
/// a bot token. Asking for a token the install did not grant is `token_not_found`.
fn chain(row: &ConnectionRow, asked: Option<TokenKind>) -> Result<Chain, ConnectionError> {
    match (asked, row.token_type.as_str()) {
        (None, _) | (Some(TokenKind::Bot), "bot") => Ok(Chain::Primary),
        (Some(TokenKind::User), _) if row.user_access_token.is_some() => Ok(Chain::User),
        (Some(TokenKind::User), "user" | "bearer") => Ok(Chain::Primary),
        (Some(_), _) => Err(ConnectionError::TokenNotFound),
    }
}

fn invalid(field: &'static str, message: &str) -> ConnectionError {
    ConnectionError::Invalid { field, message: message.to_owned() }
}

/// The end user's connection: from the row cache, or one indexed read.
async fn end_user_connection(
    path: &TokenPath,
    req: &AccessTokenRequest,
    user_id: &str,
) -> Result<Option<Arc<ConnectionRow>>, ConnectionError> {
    let lookup = TokenLookup {
        user_id,
        organization_id: req.organization_id.as_deref().unwrap_or(""),
        provider: &req.provider,
        account_id: req.account_id.as_deref(),
        connection_id: req.connection_id.as_deref(),
    };
    let cache_key = cache::key(&lookup);
    // Note the epoch before the query: a write that lands meanwhile makes the entry stale.
    let changes = path.refresh.store.changes();
    let read = changes.epoch();
    let cached = path.cache.get(&cache_key, changes);
    crate::metrics::token_lookup(cached.as_ref().err().copied());
    let row = match cached {
        Ok(row) => Some(row),
        Err(_) => {
            let row = path.refresh.store.connection_for_token(&lookup).await?.map(Arc::new);
            if let Some(row) = &row {
                path.cache.put(cache_key, row.clone(), read, changes);
            }
            row
        }
    };
    Ok(row)
}

/// Developer candidates examined at most (and listed in `ambiguous_connection`).
const MAX_CANDIDATES: i64 = 50;

/// The app's own connection to the provider: the only one that matches, or the selected
/// default; several without a selection are refused with their ids, never picked silently.
/// (Not cached: the selection is made by another process, `latch connections select`.)
async fn developer_connection(
    path: &TokenPath,
    req: &AccessTokenRequest,
) -> Result<Option<Arc<ConnectionRow>>, ConnectionError> {
    let store = &path.refresh.store;
    let mut candidates = store
        .developer_candidates(&req.provider, req.account_id.as_deref(), req.connection_id.as_deref(), MAX_CANDIDATES)
        .await?;
    if candidates.len() <= 1 {
        return Ok(candidates.pop().map(|(row, _)| Arc::new(row)));
    }
    if let Some(i) = candidates.iter().position(|(_, selected)| *selected) {
        return Ok(Some(Arc::new(candidates.swap_remove(i).0)));
    }
    Err(ConnectionError::Ambiguous(candidates.into_iter().map(|(row, _)| row.id).collect()))
}

fn active(
    path: &TokenPath,
    caller: &HostIdentity,
    row: Arc<ConnectionRow>,
    chain: Chain,
) -> Result<AccessTokenResponse, ConnectionError> {
    let vault = &path.refresh.vault;
    let open = |slot: Sealed, sealed: &[u8]| -> Result<String, ConnectionError> {
        let plain = vault.open(slot.slot(&row.id), sealed)?;
        Ok(String::from_utf8(plain).map_err(|_| crate::vault::VaultError::Integrity)?)
    };
    let sealed = row.access(chain).ok_or(ConnectionError::TokenNotFound)?;
    let token = open(chain.sealed().0, sealed)?;
    let incoming_webhook_url = match &row.incoming_webhook_url {
        Some(sealed) => Some(open(Sealed::IncomingWebhookUrl, sealed)?),
        None => None,
    };
    path.usage.token_retrieved(&row, &caller.key_name, path.refresh.clock.unix());
    let (token_type, scopes) = match chain {
        Chain::Primary => (row.token_type.clone(), row.scopes.to_vec()),
        Chain::User => ("user".to_owned(), row.user_scopes.to_vec()),
    };
    Ok(AccessTokenResponse::Active(ActiveToken {
        active: true,
        access_token: token,
        token_type,
        expires_at: row.expires_at(chain).map(from_unix),
        scopes,
        missing_scopes: row.missing_scopes.to_vec(),
        connection_id: row.id.clone(),
        account_id: row.account_id.clone(),
        incoming_webhook_url,
    }))
}

/// The answer for a connection whose user must reconnect, with a link the host can send them:
/// the hosted widget page with a one-hour widget token for this user and provider in the URL
/// fragment (never sent to a server, so never logged).
fn needs_reauthorization(path: &TokenPath, row: &ConnectionRow) -> AccessTokenResponse {
    if row.credential_source == CredentialSource::Developer {
        // No user to send a link to: the operator runs `latch connect --as-developer` again.
        return inactive(InactiveReason::NeedsReauthorization, Some(row.id.clone()));
    }
    let origin = path.public_url.origin().ascii_serialization();
    let org = (!row.organization_id.is_empty()).then_some(row.organization_id.as_str());
    let minted = path.signer.mint(
        path.refresh.clock.unix(),
        3600,
        crate::auth::widget_jwt::Subject {
            user_id: &row.user_id,
            organization_id: org,
            providers: vec![row.provider.clone()],
            origin: Some(origin),
            label: None,
            purpose: None,
        },
    );
    let reconnect_url = minted.ok().and_then(|(token, _)| path.public_url.join(&format!("connect#token={token}")).ok());
    AccessTokenResponse::Inactive(InactiveToken {
        active: false,
        error: InactiveReason::NeedsReauthorization,
        connection_id: Some(row.id.clone()),
        reconnect_url: reconnect_url.map(String::from),
    })
}

fn inactive(error: InactiveReason, connection_id: Option<String>) -> AccessTokenResponse {
    AccessTokenResponse::Inactive(InactiveToken { active: false, error, connection_id, reconnect_url: None })
}

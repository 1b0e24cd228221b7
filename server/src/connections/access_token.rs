//! "Give me a working access token for user U's provider P": the hot path of Latch.
//!
//! For a fresh token this is a cache hit (or one indexed read), one decryption spliced into the
//! answer rendered when the row was read (`ready`), and an in-memory usage note: no database
//! write. Expiring tokens go through `oauth::refresh`.

use super::ready::Ready;
use super::{ConnectionError, cache, check_id};
use crate::activity::{About, Actor};
use crate::auth::api_keys::HostIdentity;
use crate::auth::widget_jwt::WidgetSigner;
use crate::oauth::refresh::{self, RefreshCtx, RefreshError, Refreshed};
use crate::store::connections::{ConnectionRow, TokenLookup};
use crate::usage::{Counted, UsageRecorder};
use latch_shared::CredentialSource;
use latch_shared::api::host::{AccessTokenRequest, AccessTokenResponse, InactiveReason, InactiveToken};
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

/// An access-token answer: a fresh token's JSON already rendered ([`Ready::answer`]), or why
/// there is none.
#[derive(Debug)]
pub enum TokenAnswer {
    /// The `ActiveToken` JSON.
    Active(Vec<u8>),
    Inactive(InactiveToken),
}

impl TokenAnswer {
    /// The answer as the shared type (the CLI's `latch token get`, tests).
    pub fn into_response(self) -> Result<AccessTokenResponse, serde_json::Error> {
        match self {
            TokenAnswer::Active(json) => Ok(AccessTokenResponse::Active(serde_json::from_slice(&json)?)),
            TokenAnswer::Inactive(inactive) => Ok(AccessTokenResponse::Inactive(inactive)),
        }
    }
}

/// Answers `POST /v1/access-token`.
pub async fn access_token(
    path: &TokenPath,
    caller: &HostIdentity,
    req: &AccessTokenRequest,
) -> Result<TokenAnswer, ConnectionError> {
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
    let ready = match (req.credential_source.unwrap_or(CredentialSource::EndUser), &req.user_id) {
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
    let Some(ready) = ready else {
        // Naming a connection that is not this user's (or does not exist) must not be told apart.
        if req.connection_id.is_some() {
            return Err(ConnectionError::TokenNotFound);
        }
        return Ok(inactive(InactiveReason::NotInstalled, None));
    };
    if !ready.is_active() {
        return Ok(needs_reauthorization(path, Reconnect { about: ready.about(), developer: ready.is_developer() }));
    }
    let chain = ready.chain(req.token)?;
    let now = path.refresh.clock.unix();
    let force = req.force_refresh.unwrap_or(false);
    let ready = if force || ready.needs_refresh(chain, now, path.refresh.skew_seconds) {
        if !force {
            crate::metrics::refresh_wait();
        }
        let actor = Actor::ApiKey(caller.key_name.to_string());
        // The cache keeps no whole row: the refresh starts from the stored one (a read beside
        // the refresh's own, on a path that is about to call the provider anyway).
        let seen = path.refresh.store.connection(ready.id()).await?.ok_or(RefreshError::Gone)?;
        match refresh::refresh(&path.refresh, &seen, chain, force, &actor).await? {
            Refreshed::Usable(row) | Refreshed::Stale(row) | Refreshed::Elsewhere(row) => Arc::new(Ready::new(&row)?),
            Refreshed::NeedsReauthorization(row) => {
                return Ok(needs_reauthorization(path, Reconnect::of(&row)));
            }
        }
    } else {
        ready
    };
    let answer = ready.answer(&path.refresh.vault, chain)?;
    path.usage.token_retrieved(&ready, &caller.key_name, now);
    Ok(TokenAnswer::Active(answer))
}

fn invalid(field: &'static str, message: &str) -> ConnectionError {
    ConnectionError::Invalid { field, message: message.to_owned() }
}

/// The end user's connection: from the row cache, or one indexed read.
async fn end_user_connection(
    path: &TokenPath,
    req: &AccessTokenRequest,
    user_id: &str,
) -> Result<Option<Arc<Ready>>, ConnectionError> {
    let lookup = TokenLookup {
        user_id,
        organization_id: req.organization_id.as_deref().unwrap_or(""),
        provider: &req.provider,
        account_id: req.account_id.as_deref(),
        connection_id: req.connection_id.as_deref(),
    };
    // Note the epoch before the query: a write that lands meanwhile makes the entry stale.
    let changes = path.refresh.store.changes();
    let read = changes.epoch();
    let cached = path.cache.get(&lookup, changes);
    crate::metrics::token_lookup(cached.as_ref().err().copied());
    if let Ok(ready) = cached {
        return Ok(Some(ready));
    }
    let Some(row) = path.refresh.store.connection_for_token(&lookup).await? else {
        return Ok(None);
    };
    let ready = Arc::new(Ready::new(&row)?);
    path.cache.put(&lookup, ready.clone(), read, changes);
    Ok(Some(ready))
}

/// Developer candidates examined at most (and listed in `ambiguous_connection`).
const MAX_CANDIDATES: i64 = 50;

/// The app's own connection to the provider: the only one that matches, or the selected
/// default; several without a selection are refused with their ids, never picked silently.
/// (Not cached: the selection is made by another process, `latch connections select`.)
async fn developer_connection(
    path: &TokenPath,
    req: &AccessTokenRequest,
) -> Result<Option<Arc<Ready>>, ConnectionError> {
    let store = &path.refresh.store;
    let mut candidates = store
        .developer_candidates(&req.provider, req.account_id.as_deref(), req.connection_id.as_deref(), MAX_CANDIDATES)
        .await?;
    let row = if candidates.len() <= 1 {
        candidates.pop().map(|(row, _)| row)
    } else if let Some(i) = candidates.iter().position(|(_, selected)| *selected) {
        Some(candidates.swap_remove(i).0)
    } else {
        return Err(ConnectionError::Ambiguous(candidates.into_iter().map(|(row, _)| row.id).collect()));
    };
    row.map(|row| Ready::new(&row).map(Arc::new)).transpose()
}

/// A connection whose user must reconnect: what the link to send them names.
struct Reconnect<'a> {
    about: About<'a>,
    developer: bool,
}

impl<'a> Reconnect<'a> {
    fn of(row: &'a ConnectionRow) -> Self {
        Reconnect { about: About::of(row), developer: row.credential_source == CredentialSource::Developer }
    }
}

/// The answer for a connection whose user must reconnect, with a link the host can send them:
/// the hosted widget page with a one-hour widget token for this user and provider in the URL
/// fragment (never sent to a server, so never logged).
fn needs_reauthorization(path: &TokenPath, c: Reconnect<'_>) -> TokenAnswer {
    let About { id, owner } = c.about;
    if c.developer {
        // No user to send a link to: the operator runs `latch connect --as-developer` again.
        return inactive(InactiveReason::NeedsReauthorization, Some(id.to_owned()));
    }
    let origin = path.public_url.origin().ascii_serialization();
    let org = (!owner.organization_id.is_empty()).then_some(owner.organization_id);
    let minted = path.signer.mint(
        path.refresh.clock.unix(),
        3600,
        crate::auth::widget_jwt::Subject {
            user_id: owner.user_id,
            organization_id: org,
            providers: vec![owner.provider.to_owned()],
            origin: Some(origin),
            label: None,
            purpose: None,
        },
    );
    let reconnect_url = minted.ok().and_then(|(token, _)| path.public_url.join(&format!("connect#token={token}")).ok());
    TokenAnswer::Inactive(InactiveToken {
        active: false,
        error: InactiveReason::NeedsReauthorization,
        connection_id: Some(id.to_owned()),
        reconnect_url: reconnect_url.map(String::from),
    })
}

fn inactive(error: InactiveReason, connection_id: Option<String>) -> TokenAnswer {
    TokenAnswer::Inactive(InactiveToken { active: false, error, connection_id, reconnect_url: None })
}

//! The provider's redirect back to Latch: check that this browser started this flow, consume
//! `state` once, exchange the code, learn the account, check scopes, store the connection.
//!
//! Order matters: the flow cookie is checked before `state` is consumed, so a callback link
//! replayed in another browser (login CSRF) changes nothing; `state` is consumed before any
//! provider call, so a replayed callback makes no second exchange.

use super::FlowError;
use super::Flows;
use super::identity::{self, IdentityError};
use super::token::{self, TokenError, TokenSet};
use crate::activity::record;
use crate::activity::{Action, Actor, Entry};
use crate::providers::{Dialect, Provider};
use crate::random::digest;
use crate::scopes::Scopes;
use crate::store::StoreError;
use crate::store::connections::{ConnectionRow, Json, Owner};
use crate::store::flows::FlowRow;
use crate::store::new_id;
use crate::vault::{Sealed, Secret};
use latch_shared::{CredentialSource, ErrorCode};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// The callback's query. Providers add parameters of their own (`scope`, `authuser`, …), so
/// unknown ones are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207 issuer identification.
    pub iss: Option<String>,
}

/// What the callback resolved to.
#[derive(Debug)]
pub enum Callback {
    /// The flow (this id) ended, connected or failed; show its result page.
    Finished(String),
    /// Nothing could be attributed to a flow of this browser; nothing was stored.
    Refused(FlowError),
}

fn exchange_error(message: &str) -> FlowError {
    FlowError::new(ErrorCode::Oauth2ExchangeError, message)
}

/// Handles `GET /oauth/callback`. `cookie` returns the value of a cookie by name.
///
/// Runs to its end in a task of its own even if the browser goes away meanwhile: once `state`
/// is consumed the code is as good as spent, and the tokens it yields must be stored (or the
/// flow marked failed), never left in `exchanging`.
pub async fn handle(
    flows: &Flows,
    q: CallbackQuery,
    cookie: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Callback {
    let flows = flows.clone();
    crate::detach::run_to_end(async move { handle_to_end(&flows, &q, cookie).await }).await.unwrap_or_else(|| {
        Callback::Refused(FlowError::new(ErrorCode::InternalError, "Something went wrong inside Latch; try again."))
    })
}

async fn handle_to_end(flows: &Flows, q: &CallbackQuery, cookie: impl Fn(&str) -> Option<String>) -> Callback {
    match identify(flows, q, &cookie).await {
        Ok(flow) => {
            let outcome = complete(flows, &flow, q).await;
            let now = flows.clock.unix();
            let (connection_id, error) = match &outcome {
                Ok(id) => (Some(id.as_str()), None),
                Err(e) => (None, Some((e.code().as_str(), e.message()))),
            };
            if let Err(e) = flows.store.finish_flow(&flow.id, connection_id, error, now).await {
                return Callback::Refused(e.into());
            }
            if let Err(e) = &outcome {
                let entry = Entry::new(now, &Actor::User(flow.user_id.clone()), Action::ConnectFailed)
                    .provider(&flow.provider)
                    .failed(e.code().as_str())
                    .detail(e.message().to_owned());
                record(&flows.store, with_owner(entry, &flow)).await;
            }
            Callback::Finished(flow.id)
        }
        Err(e) => Callback::Refused(e),
    }
}

fn with_owner(entry: Entry, flow: &FlowRow) -> Entry {
    entry.owner(&flow.user_id, &flow.organization_id)
}

/// Finds the flow, checks the browser binding and consumes `state`.
async fn identify(
    flows: &Flows,
    q: &CallbackQuery,
    cookie: &impl Fn(&str) -> Option<String>,
) -> Result<FlowRow, FlowError> {
    let state_param = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(|| exchange_error("The provider's answer carries no valid state. Start again from the app."))?;
    let flow = flows.store.flow_by_state(&digest(state_param)).await?.ok_or_else(|| {
        exchange_error("This sign-in answer does not belong to any connect attempt. Start again from the app.")
    })?;
    let name = super::start::cookie_name(super::start::is_secure(&flows.public_url), &flow.id);
    let presented = cookie(&name).map(|v| digest(&v));
    let bound = match (&presented, &flow.browser_hash) {
        (Some(p), Some(b)) => bool::from(p.as_slice().ct_eq(b.as_slice())),
        _ => false,
    };
    if !bound {
        tracing::warn!(flow = %flow.id, "callback without the flow's browser cookie refused");
        return Err(exchange_error(
            "This sign-in was started in another browser (or its cookie is gone). For your safety nothing was connected; start again from the app.",
        ));
    }
    if !flows.store.claim_flow(&flow.id, flows.clock.unix()).await? {
        return Err(exchange_error("This sign-in answer was already used or has expired. Start again from the app."));
    }
    Ok(flow)
}

/// Everything after `state` is consumed; returns the connection id.
async fn complete(flows: &Flows, flow: &FlowRow, q: &CallbackQuery) -> Result<String, FlowError> {
    let provider = flows
        .upstream
        .providers
        .get(&flow.provider)
        .ok_or_else(|| FlowError::new(ErrorCode::InternalError, "This provider is no longer configured."))?;
    // RFC 9207: a provider that identifies itself must be the one this flow went to.
    match (&provider.issuer, &q.iss) {
        (Some(expected), Some(iss)) if iss == expected => {}
        (None, None) => {}
        (Some(_), None) => {
            return Err(exchange_error(
                "The provider's answer does not say who issued it; refused as a possible mix-up attack.",
            ));
        }
        _ => {
            return Err(exchange_error(
                "The provider's answer comes from an unexpected issuer; refused as a possible mix-up attack.",
            ));
        }
    }
    if let Some(error) = &q.error {
        let code = token::sanitize_code(error);
        let description = q.error_description.as_deref().map(token::sanitize_description);
        let message = match (code.as_str(), description) {
            ("access_denied", None) => format!("You declined access at {}.", provider.name),
            (_, Some(d)) => format!("{} answered: {d} ({code})", provider.name),
            (_, None) => format!("{} answered {code}.", provider.name),
        };
        return Err(FlowError::new(ErrorCode::Oauth2CallbackError, message));
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| exchange_error("The provider's answer carries no authorization code."))?;
    let secret = flows.upstream.secrets.get(provider).await?.ok_or_else(|| {
        tracing::error!(provider = %provider.key, "no client secret configured; run `latch secret add --provider KEY`");
        FlowError::new(
            ErrorCode::MissingClientSecret,
            format!(
                "{} is not fully set up in this app yet (no client secret). The administrator must add it.",
                provider.name
            ),
        )
    })?;
    let verifier = match &flow.pkce_verifier {
        Some(sealed) => Some(flows.vault.open_secret(Sealed::PkceVerifier.slot(&flow.id), sealed).map_err(|e| {
            tracing::error!(error = %e, "PKCE verifier does not decrypt");
            FlowError::new(ErrorCode::InternalError, "Something went wrong inside Latch; start again.")
        })?),
        None => None,
    };
    let redirect_uri = super::start::redirect_uri(&flows.public_url);
    let grant = token::Grant::Code { code, verifier: verifier.as_ref(), redirect_uri: &redirect_uri };
    let sent_at = flows.clock.unix();
    let tokens = token::request(&flows.upstream.http, provider, &secret, grant, crate::oauth::http::PROVIDER_TIMEOUT)
        .await
        .map_err(|e| exchange_failure(flows, provider, e))?;
    let account = match (&tokens.account, &provider.identity) {
        (Some((id, label)), _) => identity::Account { id: id.clone(), label: label.clone() },
        (None, Some(config)) => identity::fetch(&flows.upstream.http, config, &tokens.access_token).await.map_err(|e| match e {
            IdentityError::BadResponse(what) => FlowError::new(
                ErrorCode::InvalidIdentityConfigResponse,
                format!("{}'s account endpoint answered {what}; the connection was not saved.", provider.name),
            ),
            IdentityError::NotFound(path) => FlowError::new(
                ErrorCode::ExternalUserIdentityNotFound,
                format!("{}'s account endpoint did not say which account this is ({path}); the connection was not saved.", provider.name),
            ),
        })?,
        (None, None) => {
            return Err(FlowError::new(ErrorCode::ExternalUserIdentityNotFound, format!("No way to tell which {} account this is.", provider.name)));
        }
    };
    // RFC 6749 §3.3: an answer without `scope` granted what was asked.
    let granted: Scopes = tokens.scopes.clone().unwrap_or_else(|| provider.scopes.clone()).into_iter().collect();
    let mut missing = granted.missing(&provider.scopes);
    if !provider.user_scopes.is_empty() {
        // The user's token: lifted to the top for a user-only install, else beside the bot's.
        let user_granted: Scopes = match (&tokens.user, tokens.token_type.as_str()) {
            (Some(user), _) => user.scopes.iter().cloned().collect(),
            (None, "user") => granted.clone(),
            (None, _) => Scopes::default(),
        };
        missing =
            missing.as_slice().iter().cloned().chain(user_granted.missing(&provider.user_scopes).to_vec()).collect();
    }
    if !missing.is_empty() {
        return Err(FlowError::new(
            ErrorCode::ScopeMismatchError,
            format!(
                "{} granted less than this app needs (missing: {}). Connect again and allow all requested permissions.",
                provider.name,
                missing.as_slice().join(", ")
            ),
        ));
    }
    let user_expires_without_refresh =
        tokens.user.as_ref().is_some_and(|u| u.expires_in.is_some() && u.refresh_token.is_none());
    if (tokens.expires_in.is_some() && tokens.refresh_token.is_none()) || user_expires_without_refresh {
        return Err(FlowError::new(
            ErrorCode::NoRefreshToken,
            format!(
                "{} gave no refresh token, so the connection would stop working within the hour. Remove this app's access in your {} account settings, then connect again.",
                provider.name, provider.name
            ),
        ));
    }
    store_connection(flows, flow, provider, &Grant { tokens: &tokens, account: &account, granted: &granted, sent_at })
        .await
}

/// Maps a failed code exchange; the app's own bad credentials are reported to the operator.
fn exchange_failure(flows: &Flows, provider: &Provider, e: TokenError) -> FlowError {
    match e {
        TokenError::ClientRejected { code } => {
            tracing::error!(provider = %provider.key, provider_error = %code,
                "the provider rejected this app's credentials or settings during a code exchange; check the client id, secret and redirect URL");
            let flows = flows.clone();
            let key = provider.key.clone();
            crate::detach::spawn(async move {
                let entry =
                    Entry::new(flows.clock.unix(), &Actor::System("connect"), Action::ProviderCredentialsRejected)
                        .provider(&key)
                        .failed("provider_misconfigured")
                        .detail(format!(
                            "token endpoint answered {code}: the app's client id, secret or settings are wrong"
                        ));
                record(&flows.store, entry).await;
            });
            FlowError::new(
                ErrorCode::AccessTokenExchangeFailed,
                format!(
                    "{} refused this app's setup. This is not your fault: the app is misconfigured, and the administrator has been told.",
                    provider.name
                ),
            )
        }
        TokenError::Malformed { reason } => FlowError::new(
            ErrorCode::InvalidTokenResponse,
            format!("{} answered with an unusable token ({reason}).", provider.name),
        ),
        TokenError::NoAccessToken => {
            FlowError::new(ErrorCode::TokenNotFound, format!("{} answered without an access token.", provider.name))
        }
        TokenError::Transient { reason, .. } => FlowError::new(
            ErrorCode::AccessTokenExchangeFailed,
            format!("{} could not be reached ({reason}); try again in a moment.", provider.name),
        ),
        TokenError::GrantRejected { code, .. } | TokenError::Other { code, .. } => FlowError::new(
            ErrorCode::AccessTokenExchangeFailed,
            format!("{} refused to issue a token ({code}); start again.", provider.name),
        ),
    }
}

/// What the provider granted in one completed exchange.
struct Grant<'a> {
    tokens: &'a TokenSet,
    account: &'a identity::Account,
    /// Granted scopes (as requested when the answer did not say).
    granted: &'a Scopes,
    /// When the code exchange was sent: expiry is counted from there.
    sent_at: i64,
}

/// Creates the connection, or replaces the grant of the user's existing connection to the same
/// account. A reconnect must land on the connection's own account.
async fn store_connection(
    flows: &Flows,
    flow: &FlowRow,
    provider: &Provider,
    grant: &Grant<'_>,
) -> Result<String, FlowError> {
    let store = &flows.store;
    let account = grant.account;
    if let Some(id) = &flow.reconnect_connection_id {
        let target = store.connection(id).await?;
        match target {
            Some(c) if c.account_id == account.id => {}
            Some(c) => {
                return Err(FlowError::new(
                    ErrorCode::AccountMismatch,
                    format!(
                        "You signed in to a different {} account than the one being reconnected ({}). Nothing was changed; sign in as that account.",
                        provider.name,
                        c.account_label.as_deref().unwrap_or(&c.account_id)
                    ),
                ));
            }
            None => {
                return Err(FlowError::new(
                    ErrorCode::ConnectionNotFound,
                    "The connection being reconnected was deleted meanwhile.",
                ));
            }
        }
    }
    let now = flows.clock.unix();
    for _ in 0..2 {
        let existing =
            store.connection_by_account(&flow.user_id, &flow.organization_id, &provider.key, &account.id).await?;
        let id = existing.as_ref().map(|c| c.id.clone()).unwrap_or_else(|| new_id("conn"));
        let mut row = sealed_row(flows, &id, flow, provider, grant, now);
        let result = match &existing {
            Some(previous) => {
                row.created_at = previous.created_at;
                store.replace_grant(&row, Some(&crate::events::about(crate::events::REAUTHORIZED, &row, now))).await
            }
            None => store.insert_connection(&row, Some(&crate::events::about(crate::events::CREATED, &row, now))).await,
        };
        match result {
            Ok(()) => {
                let action = if existing.is_some() { Action::Reconnected } else { Action::Connected };
                let detail = format!(
                    "account {} ({}); scopes: {}",
                    account.id,
                    account.label.as_deref().unwrap_or("-"),
                    grant.granted.stored()
                );
                record(&flows.store, Entry::new(now, &maker(flow), action).connection(&row).detail(detail)).await;
                return Ok(id);
            }
            // Another flow created the same connection in between: replace its grant instead.
            Err(StoreError::Conflict { .. }) if existing.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FlowError::new(ErrorCode::InternalError, "The connection could not be saved; try again."))
}

fn sealed_row(
    flows: &Flows,
    id: &str,
    flow: &FlowRow,
    provider: &Provider,
    grant: &Grant<'_>,
    now: i64,
) -> ConnectionRow {
    let Grant { tokens, account, granted, sent_at } = *grant;
    let owner = Owner {
        provider: &provider.key,
        user_id: &flow.user_id,
        organization_id: &flow.organization_id,
        account_id: &account.id,
    };
    let refresh_token = tokens.refresh_token.as_ref().map(Secret::expose);
    let vault = &flows.vault;
    let row =
        ConnectionRow::new(id.to_owned(), owner, now).with_tokens(vault, tokens.access_token.expose(), refresh_token);
    let user = tokens.user.as_ref();
    let install = tokens.install.clone().unwrap_or_default();
    ConnectionRow {
        user_access_token: user.map(|u| vault.seal_str(Sealed::UserAccessToken.slot(id), u.access_token.expose())),
        user_refresh_token: user
            .and_then(|u| u.refresh_token.as_ref())
            .map(|rt| vault.seal_str(Sealed::UserRefreshToken.slot(id), rt.expose())),
        user_token_expires_at: user.and_then(|u| u.expires_in).map(|s| sent_at + s),
        user_token_refreshed_at: user.map(|_| now),
        user_scopes: user.map(|u| u.scopes.iter().cloned().collect()).unwrap_or_default(),
        incoming_webhook_url: install
            .incoming_webhook_url
            .as_ref()
            .map(|url| vault.seal_str(Sealed::IncomingWebhookUrl.slot(id), url.expose())),
        resources: Json(install.resources),
        installation: Json(install.installation),
        account_label: account.label.clone(),
        scopes: granted.clone(),
        // Slack's tokens say `bot` or `user`; everyone else's are bearer tokens.
        token_type: if provider.dialect == Dialect::Slack { tokens.token_type.clone() } else { row.token_type.clone() },
        access_token_expires_at: tokens.expires_in.map(|s| sent_at + s),
        last_refreshed_at: Some(now),
        last_validated_at: Some(now),
        purpose: Some(flow.purpose.clone().unwrap_or_else(|| provider.description.clone())),
        created_by: Some(maker(flow).name().to_owned()),
        credential_source: flow.credential_source,
        label: (flow.credential_source == CredentialSource::Developer).then(|| flow.user_label.clone()).flatten(),
        ..row
    }
}

/// Who makes the connection a flow ends in: its end user, or for the app's own account the
/// operator at the command line (`latch connect --as-developer`, acting as the API key `cli`).
fn maker(flow: &FlowRow) -> Actor {
    match flow.credential_source {
        CredentialSource::EndUser => Actor::User(flow.user_id.clone()),
        CredentialSource::Developer => Actor::cli(),
    }
}

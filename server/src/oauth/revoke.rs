//! Revoking tokens at the provider when a connection is deleted with `?revoke=true`:
//! RFC 7009 (refresh token first, with a type hint and client authentication) or Slack's
//! `auth.revoke`. The outcome is reported truthfully in the activity trail.

use super::Upstream;
use super::http::read_capped;
use super::http::{Endpoint, PROVIDER_TIMEOUT, ProviderCall};
use super::quirks::SlackVerdict;
use super::token::describe_transport;
use crate::providers::Dialect;
use crate::store::connections::ConnectionRow;
use crate::vault::{Sealed, Secret, Vault};
use oauth2::{AccessToken, RefreshToken, RequestTokenError, StandardRevocableToken};

/// What happened at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The provider confirmed.
    Revoked,
    /// The provider says the token was already dead (Slack's `invalid_auth`, `token_revoked`):
    /// nothing is left to revoke.
    AlreadyRevoked,
    /// The provider has no revocation endpoint; the token stays valid there until it expires.
    Unsupported,
    /// The provider refused or could not be reached; the reason is safe to store.
    Failed(String),
}

/// Revokes the connection's grant at its provider.
pub async fn revoke(up: &Upstream, vault: &Vault, row: &ConnectionRow) -> RevokeOutcome {
    let Some(provider) = up.providers.get(&row.provider) else {
        return RevokeOutcome::Failed("provider is no longer configured".into());
    };
    let Some(url) = provider.revocation_url.clone() else {
        return RevokeOutcome::Unsupported;
    };
    let open =
        |column: Sealed, sealed: Option<&[u8]>| sealed.and_then(|s| vault.open_secret(column.slot(&row.id), s).ok());
    let access = open(Sealed::AccessToken, row.access_token.as_deref());
    let refresh = open(Sealed::RefreshToken, row.refresh_token.as_deref());
    if provider.dialect == Dialect::Slack {
        // With token rotation `auth.revoke` revokes only the token it is given: the refresh
        // tokens are sent too, and the installing user's chain beside the bot's. Each access
        // token goes first (it is the grant without rotation).
        let user_access = open(Sealed::UserAccessToken, row.user_access_token.as_deref());
        let user_refresh = open(Sealed::UserRefreshToken, row.user_refresh_token.as_deref());
        let tokens: Vec<Secret> = [access, refresh, user_access, user_refresh].into_iter().flatten().collect();
        if tokens.is_empty() {
            return RevokeOutcome::Failed("no token to revoke".into());
        }
        let mut outcome = RevokeOutcome::Revoked;
        for token in &tokens {
            match slack_revoke(up, &url, token).await {
                RevokeOutcome::Revoked => {}
                RevokeOutcome::AlreadyRevoked if outcome == RevokeOutcome::Revoked => {
                    outcome = RevokeOutcome::AlreadyRevoked
                }
                RevokeOutcome::AlreadyRevoked => {}
                failed => return failed,
            }
        }
        return outcome;
    }
    let secret = match up.secrets.get(provider).await {
        Ok(Some(s)) => s,
        _ => return RevokeOutcome::Failed("no client secret configured".into()),
    };
    // Revoking the refresh token revokes the grant (RFC 7009 §2.1); fall back to the access token.
    let candidates = [(refresh, "refresh_token"), (access, "access_token")];
    let mut last = RevokeOutcome::Failed("no token to revoke".into());
    for (token, hint) in candidates {
        let Some(token) = token else { continue };
        last = post_revocation(up, provider, &secret, &token, hint).await;
        if last == RevokeOutcome::Revoked {
            break;
        }
    }
    last
}

/// One `auth.revoke` call, read by `ok`/`error` (Slack answers HTTP 200 either way).
async fn slack_revoke(up: &Upstream, url: &url::Url, token: &Secret) -> RevokeOutcome {
    let response = match up.http.post(url.clone()).form(&[("token", token.expose())]).send().await {
        Ok(r) => r,
        Err(e) => return RevokeOutcome::Failed(describe_transport(&e)),
    };
    let Ok(body) = read_capped(response).await else { return RevokeOutcome::Failed("unreadable answer".into()) };
    match super::quirks::slack_verdict(&body) {
        SlackVerdict::Ok => RevokeOutcome::Revoked,
        SlackVerdict::TokenDead => RevokeOutcome::AlreadyRevoked,
        SlackVerdict::Failed(Some(code)) => RevokeOutcome::Failed(format!("provider answered {code}")),
        SlackVerdict::Failed(None) => RevokeOutcome::Failed("provider answered an error".into()),
        SlackVerdict::Unreadable => RevokeOutcome::Failed("unreadable answer".into()),
    }
}

/// One RFC 7009 request through the `oauth2` crate (client authentication as for the token
/// endpoint, a type hint), reported with the provider's status and sanitized error code.
async fn post_revocation(
    up: &Upstream,
    provider: &crate::providers::Provider,
    secret: &Secret,
    token: &Secret,
    hint: &str,
) -> RevokeOutcome {
    let client = super::protocol::client(provider, None, Some(secret));
    let token = match hint {
        "refresh_token" => StandardRevocableToken::RefreshToken(RefreshToken::new(token.expose().to_owned())),
        _ => StandardRevocableToken::AccessToken(AccessToken::new(token.expose().to_owned())),
    };
    let request = match client.revoke_token(token) {
        Ok(request) => request,
        Err(e) => return RevokeOutcome::Failed(format!("revocation not sent: {e}")),
    };
    let Some(url) = provider.revocation_url.clone() else {
        return RevokeOutcome::Unsupported;
    };
    let call = ProviderCall::new(&up.http, PROVIDER_TIMEOUT, provider, Endpoint::Revocation).sending_to(url);
    match request.request_async(&call).await {
        Ok(()) => RevokeOutcome::Revoked,
        Err(RequestTokenError::Request(e)) => RevokeOutcome::Failed(e.to_string()),
        Err(RequestTokenError::ServerResponse(e)) => {
            let code = e.error().as_ref();
            RevokeOutcome::Failed(format!(
                "provider answered HTTP {}{}",
                call.status(),
                if code.starts_with("http_") { String::new() } else { format!(" ({code})") }
            ))
        }
        Err(_) => RevokeOutcome::Failed(format!("provider answered HTTP {}", call.status())),
    }
}

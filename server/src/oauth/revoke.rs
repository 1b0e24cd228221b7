//! Revoking tokens at the provider when a connection is deleted with `?revoke=true`:
//! RFC 7009 (refresh token first, with a type hint and client authentication) or Slack's
//! `auth.revoke`. The outcome is reported truthfully in the activity trail.

use super::Upstream;
use super::http::read_capped;
use super::http::{Endpoint, PROVIDER_TIMEOUT, ProviderCall};
use super::token::{describe_transport, sanitize_code};
use crate::providers::Dialect;
use crate::store::connections::ConnectionRow;
use crate::vault::{Sealed, Secret, Vault};
use oauth2::{AccessToken, RefreshToken, RequestTokenError, StandardRevocableToken};

/// What happened at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The provider confirmed.
    Revoked,
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
        let Some(access) = access else {
            return RevokeOutcome::Failed("no token to revoke".into());
        };
        let response = up.http.post(url).form(&[("token", access.expose())]).send().await;
        return match response {
            Ok(r) => match read_capped(r).await.ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            {
                Some(v) if v.get("ok").and_then(|ok| ok.as_bool()) == Some(true) => RevokeOutcome::Revoked,
                Some(v) => RevokeOutcome::Failed(format!(
                    "provider answered {}",
                    v.get("error").and_then(|e| e.as_str()).map(sanitize_code).unwrap_or_else(|| "an error".into())
                )),
                None => RevokeOutcome::Failed("unreadable answer".into()),
            },
            Err(e) => RevokeOutcome::Failed(describe_transport(&e)),
        };
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

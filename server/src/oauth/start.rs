//! Starting a connect flow: the widget asks for one (`create`), then the popup opens Latch's
//! authorize URL (`authorize`), which binds the flow to that browser with a cookie and sends the
//! user to the provider with `state`, PKCE and the provider's extras.

use super::FlowError;
use crate::auth::widget_jwt::WidgetClaims;
use crate::state::AppState;
use crate::store::flows::FlowRow;
use crate::store::new_id;
use crate::vault::Slot;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latch_shared::ErrorCode;
use latch_shared::api::widget::{ConnectRequest, ConnectStarted};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use url::Url;

/// A flow must be finished within this many seconds of its creation.
pub const FLOW_TTL_SECONDS: i64 = 600;

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, the only form in which `state` and the browser secret are stored.
pub fn digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// The flow cookie's name: one per flow, so parallel flows in one browser do not collide;
/// `__Host-` (Secure, no Domain, Path=/) whenever Latch is served over https.
pub fn cookie_name(secure: bool, flow_id: &str) -> String {
    format!("{}latch_flow_{flow_id}", if secure { "__Host-" } else { "" })
}

/// `POST /widget/v1/connect`: records a single-use flow for the token's user.
pub async fn create(
    state: &AppState,
    claims: &WidgetClaims,
    req: &ConnectRequest,
) -> Result<ConnectStarted, FlowError> {
    if !claims.providers.iter().any(|p| p == &req.provider) {
        return Err(FlowError::new(
            ErrorCode::ProviderNotAllowed,
            format!("This widget may not connect {:?}.", req.provider),
        ));
    }
    let provider = state.providers.get(&req.provider).ok_or_else(|| {
        FlowError::new(ErrorCode::ProviderNotFound, format!("No provider {:?} is configured.", req.provider))
    })?;
    let org = claims.org.clone().unwrap_or_default();
    if let Some(id) = &req.connection_id {
        let owned = state
            .store
            .connection(id)
            .await?
            .filter(|c| c.user_id == claims.sub && c.organization_id == org && c.provider == provider.key);
        if owned.is_none() {
            return Err(FlowError::new(ErrorCode::ConnectionNotFound, "No such connection."));
        }
    }
    let return_to = req.return_to.as_deref().map(|r| check_return_to(r, claims.origin.as_deref())).transpose()?;
    let now = state.clock.unix();
    let flow = FlowRow {
        id: new_id("flow"),
        provider: provider.key.clone(),
        user_id: claims.sub.clone(),
        organization_id: org,
        allowed_origin: claims.origin.clone(),
        return_to,
        reconnect_connection_id: req.connection_id.clone(),
        status: "created".into(),
        state_hash: None,
        browser_hash: None,
        pkce_verifier: None,
        connection_id: None,
        error_code: None,
        error_message: None,
        created_at: now,
        expires_at: now + FLOW_TTL_SECONDS,
        started_at: None,
        completed_at: None,
    };
    state.store.insert_flow(&flow).await?;
    let authorize_url = state
        .config
        .public_url
        .join(&format!("oauth/authorize/{}", flow.id))
        .map_err(|_| FlowError::new(ErrorCode::InternalError, "Could not build the authorize URL."))?;
    Ok(ConnectStarted { flow_id: flow.id, authorize_url: authorize_url.into() })
}

/// `return_to` must be an http(s) URL whose origin is exactly the token's allowed origin
/// (compared as parsed origin tuples, not strings): no open redirect.
pub fn check_return_to(value: &str, allowed_origin: Option<&str>) -> Result<String, FlowError> {
    let refuse = || {
        FlowError::new(ErrorCode::ReturnToNotAllowed, "return_to must be a URL on the widget token's allowed origin.")
    };
    let allowed = allowed_origin.ok_or_else(refuse)?;
    if value.len() > 2048 || value.chars().any(|c| c.is_control() || c == '\\') {
        return Err(refuse());
    }
    let url = Url::parse(value).map_err(|_| refuse())?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return Err(refuse());
    }
    let allowed = Url::parse(allowed).map_err(|_| refuse())?;
    if url.origin() != allowed.origin() {
        return Err(refuse());
    }
    Ok(url.into())
}

/// Where to send the browser, and the cookie binding the flow to it.
#[derive(Debug)]
pub struct Authorize {
    pub location: Url,
    pub cookie_name: String,
    /// The per-flow browser secret (the cookie's value).
    pub cookie_value: String,
}

/// `GET /oauth/authorize/{flow_id}`: starts the flow once and builds the provider URL.
pub async fn authorize(state: &AppState, flow_id: &str) -> Result<Authorize, FlowError> {
    let now = state.clock.unix();
    let flow = state.store.flow(flow_id).await?.ok_or_else(|| {
        FlowError::new(ErrorCode::FlowNotFound, "This connect link is not valid. Start again from the app.")
    })?;
    if flow.expires_at <= now {
        return Err(FlowError::new(
            ErrorCode::Oauth2ExchangeError,
            "This connect link has expired. Start again from the app.",
        ));
    }
    if flow.status != "created" {
        return Err(FlowError::new(
            ErrorCode::FlowAlreadyStarted,
            "This connect link was already opened. Start again from the app.",
        ));
    }
    let provider = state
        .providers
        .get(&flow.provider)
        .ok_or_else(|| FlowError::new(ErrorCode::InternalError, "This provider is no longer configured."))?;
    let state_token = random_token();
    let browser_secret = random_token();
    let verifier = provider.pkce.then(random_token);
    let sealed = verifier.as_ref().map(|v| state.vault.seal_str(Slot::new("flows", &flow.id, "pkce_verifier"), v));
    if !state
        .store
        .start_flow(&flow.id, &digest(&state_token), &digest(&browser_secret), sealed.as_deref(), now)
        .await?
    {
        return Err(FlowError::new(
            ErrorCode::FlowAlreadyStarted,
            "This connect link was already opened. Start again from the app.",
        ));
    }
    let mut location = provider.authorization_url.clone();
    {
        let mut q = location.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &provider.client_id);
        q.append_pair("redirect_uri", redirect_uri(state).as_str());
        if !provider.scopes.is_empty() {
            q.append_pair("scope", &provider.scopes.join(&provider.scope_separator));
        }
        q.append_pair("state", &state_token);
        if let Some(verifier) = &verifier {
            q.append_pair("code_challenge", &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())));
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &provider.authorization_url_extras {
            q.append_pair(k, v);
        }
    }
    Ok(Authorize { location, cookie_name: cookie_name(is_secure(state), &flow.id), cookie_value: browser_secret })
}

/// `{public_url}/oauth/callback`, byte-identical in the authorize and token requests.
pub fn redirect_uri(state: &AppState) -> Url {
    let mut url = state.config.public_url.clone();
    url.set_path("/oauth/callback");
    url
}

/// Whether Latch is served over https (cookies get `Secure` and the `__Host-` prefix).
pub fn is_secure(state: &AppState) -> bool {
    state.config.public_url.scheme() == "https"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_same_origin_only() {
        let allowed = Some("https://app.example.com");
        assert!(check_return_to("https://app.example.com/settings?x=1#y", allowed).is_ok());
        assert!(check_return_to("https://APP.example.com:443/", allowed).is_ok());
        for bad in [
            "https://evil.test/",
            "//evil.test",
            "javascript:alert(1)",
            "https://app.example.com@evil.test/",
            "https://app.example.com.evil.test/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://app.example.com\\@evil.test",
            "https://app.example.com/\r\nLocation: https://evil.test",
            "https://аpp.example.com/",
            "data:text/html,hi",
            "/relative",
            "",
        ] {
            assert!(check_return_to(bad, allowed).is_err(), "{bad}");
        }
        assert!(check_return_to("https://app.example.com/", None).is_err());
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }
}

//! Starting a connect flow: the widget asks for one (`create`), then starts it in the popup with
//! a form POST from the host page to Latch's authorize URL (`authorize`), which checks that the
//! POST comes from the widget token's origin, binds the flow to that browser with a cookie and
//! sends the user to the provider with `state`, PKCE and the provider's extras.
//!
//! Why a POST from the token's origin: a connect link is a capability. Opened by anyone, it
//! would attach whoever signs in at the provider to the user who created the flow, so an
//! ordinary user could forward their link to a victim and collect the victim's account. A
//! browser sets `Origin` itself and no page can forge it, so only a page on the host app's
//! origin (the widget, in that user's session) can start the flow; a forwarded link, opened
//! with a GET or posted from elsewhere, attaches nothing.

use super::FlowError;
use super::Flows;
use crate::activity::{Action, Actor, Entry};
use crate::auth::widget_jwt::WidgetClaims;
use crate::providers::Provider;
use crate::store::flows::{FlowRow, FlowStage};
use crate::store::new_id;
use crate::vault::Sealed;
use latch_shared::api::widget::{ConnectRequest, ConnectStarted};
use latch_shared::{CredentialSource, ErrorCode};
use oauth2::{CsrfToken, PkceCodeChallenge, Scope};
use url::Url;

/// A flow must be finished within this many seconds of its creation.
pub const FLOW_TTL_SECONDS: i64 = 600;

/// The flow cookie's name: one per flow, so parallel flows in one browser do not collide;
/// `__Host-` (Secure, no Domain, Path=/) whenever Latch is served over https.
pub fn cookie_name(secure: bool, flow_id: &str) -> String {
    format!("{}latch_flow_{flow_id}", if secure { "__Host-" } else { "" })
}

/// `POST /widget/v1/connect`: records a single-use flow for the token's user.
///
/// `request_origin` is the `Origin` of the widget's request: the flow's origin when the token
/// is bound to none (it must then be one of `allowed_origins`).
pub async fn create(
    flows: &Flows,
    claims: &WidgetClaims,
    req: &ConnectRequest,
    request_origin: Option<&str>,
) -> Result<ConnectStarted, FlowError> {
    if !claims.providers.iter().any(|p| p == &req.provider) {
        return Err(FlowError::new(
            ErrorCode::ProviderNotAllowed,
            format!("This widget may not connect {:?}.", req.provider),
        ));
    }
    let provider = flows.upstream.providers.get(&req.provider).ok_or_else(|| {
        FlowError::new(ErrorCode::ProviderNotFound, format!("No provider {:?} is configured.", req.provider))
    })?;
    ensure_secret(flows, provider).await?;
    let org = claims.org.clone().unwrap_or_default();
    if let Some(id) = &req.connection_id {
        let owned = flows
            .store
            .connection(id)
            .await?
            .filter(|c| c.user_id == claims.sub && c.organization_id == org && c.provider == provider.key);
        if owned.is_none() {
            return Err(FlowError::new(ErrorCode::ConnectionNotFound, "No such connection."));
        }
    }
    let origin = claims
        .origin
        .clone()
        .or_else(|| request_origin.filter(|o| flows.allowed_origins.iter().any(|a| a == o)).map(str::to_owned));
    let return_to = req.return_to.as_deref().map(|r| check_return_to(r, origin.as_deref())).transpose()?;
    let now = flows.clock.unix();
    if flows.store.pending_flows(&claims.sub, &org, now).await? >= flows.max_pending_flows_per_user {
        return Err(FlowError::new(
            ErrorCode::TooManyPendingFlows,
            "Too many connect attempts are under way for this user; finish one or wait a few minutes.",
        ));
    }
    let flow = FlowRow {
        return_to,
        reconnect_connection_id: req.connection_id.clone(),
        user_label: claims.label.clone(),
        purpose: claims.purpose.clone(),
        ..FlowRow::created(
            new_id("flow"),
            &provider.key,
            (&claims.sub, &org),
            origin,
            CredentialSource::EndUser,
            now,
            FLOW_TTL_SECONDS,
        )
    };
    flows.store.insert_flow(&flow).await?;
    let authorize_url = flows
        .public_url
        .join(&format!("oauth/authorize/{}", flow.id))
        .map_err(|_| FlowError::new(ErrorCode::InternalError, "Could not build the authorize URL."))?;
    Ok(ConnectStarted { flow_id: flow.id, authorize_url: authorize_url.into() })
}

/// A flow that connects one of the app's own accounts (`latch connect --as-developer`): it has
/// no end user, its `label` names the connection, and it is started from Latch's own page
/// ([`developer_start_url`]), so its origin is Latch's.
pub async fn create_developer(flows: &Flows, provider: &str, label: Option<&str>) -> Result<FlowRow, FlowError> {
    let provider = flows.upstream.providers.get(provider).ok_or_else(|| {
        FlowError::new(ErrorCode::ProviderNotFound, format!("No provider {provider:?} is configured."))
    })?;
    ensure_secret(flows, provider).await?;
    let now = flows.clock.unix();
    let origin = Some(flows.public_url.origin().ascii_serialization());
    let flow = FlowRow {
        user_label: label.map(str::to_owned),
        ..FlowRow::created(
            new_id("flow"),
            &provider.key,
            ("", ""),
            origin,
            CredentialSource::Developer,
            now,
            FLOW_TTL_SECONDS,
        )
    };
    flows.store.insert_flow(&flow).await?;
    Ok(flow)
}

/// A flow is not started for a provider without a client secret: its code exchange could only
/// fail, after the user had consented at the provider.
async fn ensure_secret(flows: &Flows, provider: &Provider) -> Result<(), FlowError> {
    if flows.upstream.secrets.source(provider).await?.is_ready() {
        return Ok(());
    }
    tracing::warn!(provider = %provider.key, "connect refused: no client secret; run `latch secret add --provider KEY`");
    Err(FlowError::new(
        ErrorCode::MissingClientSecret,
        format!(
            "{} is not fully set up in this app yet (no client secret). The administrator must add it.",
            provider.name
        ),
    ))
}

/// Where an operator opens a developer flow: Latch's page whose button starts it.
pub fn developer_start_url(public_url: &Url, flow_id: &str) -> Option<Url> {
    public_url.join(&format!("oauth/start/{flow_id}")).ok()
}

/// The developer flow behind `GET /oauth/start/{flow_id}`, while it can still be started; an end
/// user's flow is never offered there (theirs start only from the host app).
pub async fn developer_flow(flows: &Flows, flow_id: &str) -> Result<FlowRow, FlowError> {
    let flow = flows.store.flow(flow_id).await?.filter(|f| {
        f.credential_source == CredentialSource::Developer
            && f.status == FlowStage::Created
            && f.expires_at > flows.clock.unix()
    });
    flow.ok_or_else(|| {
        FlowError::new(
            ErrorCode::FlowNotFound,
            "This connect link is not valid (or was used). Run `latch connect` again.",
        )
    })
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

/// How a browser asked to start a flow.
#[derive(Debug, Clone, Copy)]
pub enum StartRequest<'a> {
    /// A form POST, with the `Origin` the browser sent (if any).
    Post { origin: Option<&'a str> },
    /// A plain GET: a link that was opened, not started by the widget.
    Get,
}

/// `POST /oauth/authorize/{flow_id}` from the flow's origin: starts the flow once and builds the
/// provider URL. Anything else (a GET, another origin, no origin) is refused and recorded, and
/// leaves the flow as it was.
pub async fn authorize(flows: &Flows, flow_id: &str, how: StartRequest<'_>) -> Result<Authorize, FlowError> {
    let now = flows.clock.unix();
    let flow = flows.store.flow(flow_id).await?.ok_or_else(|| {
        FlowError::new(ErrorCode::FlowNotFound, "This connect link is not valid. Start again from the app.")
    })?;
    let from_the_app = match (how, flow.allowed_origin.as_deref()) {
        (StartRequest::Post { origin: Some(origin) }, Some(expected)) => same_origin(origin, expected),
        _ => false,
    };
    if !from_the_app {
        let how = match how {
            StartRequest::Get => "opened as a link".to_owned(),
            StartRequest::Post { origin: None } => "posted without an origin".to_owned(),
            StartRequest::Post { origin: Some("null") } => {
                "posted with `Origin: null` (an opaque origin, or a page whose Referrer-Policy is no-referrer)"
                    .to_owned()
            }
            StartRequest::Post { origin: Some(o) } => {
                format!("posted from {}", o.chars().take(100).collect::<String>())
            }
        };
        let entry = Entry::new(now, &Actor::User(flow.user_id.clone()), Action::ConnectRefused)
            .owner(&flow.user_id, &flow.organization_id)
            .provider(&flow.provider)
            .failed(ErrorCode::ConnectLinkRefused.as_str())
            .detail(format!("a connect link was {how}, not started by the widget on the app's origin"));
        crate::activity::record(&flows.store, entry).await;
        return Err(FlowError::new(
            ErrorCode::ConnectLinkRefused,
            "This connect link only works from the app that created it. If someone sent it to you, do not use it; \
             to connect an account, open the app and start from there.",
        ));
    }
    if flow.expires_at <= now {
        return Err(FlowError::new(
            ErrorCode::Oauth2ExchangeError,
            "This connect link has expired. Start again from the app.",
        ));
    }
    if flow.status != FlowStage::Created {
        return Err(FlowError::new(
            ErrorCode::FlowAlreadyStarted,
            "This connect link was already opened. Start again from the app.",
        ));
    }
    let provider = flows
        .upstream
        .providers
        .get(&flow.provider)
        .ok_or_else(|| FlowError::new(ErrorCode::InternalError, "This provider is no longer configured."))?;
    let state_token = crate::random::token();
    let browser_secret = crate::random::token();
    // PKCE S256 with a 256-bit verifier (the crate's), sealed until the code exchange.
    let pkce = provider.pkce.then(PkceCodeChallenge::new_random_sha256);
    let sealed =
        pkce.as_ref().map(|(_, verifier)| flows.vault.seal_str(Sealed::PkceVerifier.slot(&flow.id), verifier.secret()));
    let (state_hash, browser_hash) = (crate::random::digest(&state_token), crate::random::digest(&browser_secret));
    if !flows.store.start_flow(&flow.id, &state_hash, &browser_hash, sealed.as_deref(), now).await? {
        return Err(FlowError::new(
            ErrorCode::FlowAlreadyStarted,
            "This connect link was already opened. Start again from the app.",
        ));
    }
    let client = super::protocol::client(provider, Some(&redirect_uri(&flows.public_url)), None);
    let mut request = client.authorize_url(|| CsrfToken::new(state_token));
    if !provider.scopes.is_empty() {
        // One value, joined with the provider's separator (Slack and GitHub use commas).
        request = request.add_scope(Scope::new(provider.scopes.join(&provider.scope_separator)));
    }
    if !provider.user_scopes.is_empty() {
        request = request.add_extra_param("user_scope", provider.user_scopes.join(&provider.scope_separator));
    }
    if let Some((challenge, _)) = pkce {
        request = request.set_pkce_challenge(challenge);
    }
    for (k, v) in &provider.authorization_url_extras {
        request = request.add_extra_param(k, v);
    }
    let (location, _) = request.url();
    Ok(Authorize {
        location,
        cookie_name: cookie_name(is_secure(&flows.public_url), &flow.id),
        cookie_value: browser_secret,
    })
}

/// Whether two serialized origins are the same origin (scheme, host, port), compared parsed.
fn same_origin(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.origin() == b.origin(),
        _ => false,
    }
}

/// `{public_url}/oauth/callback`, byte-identical in the authorize and token requests.
pub fn redirect_uri(public_url: &Url) -> Url {
    let mut url = public_url.clone();
    url.set_path("/oauth/callback");
    url
}

/// Whether Latch is served over https (cookies get `Secure` and the `__Host-` prefix).
pub fn is_secure(public_url: &Url) -> bool {
    public_url.scheme() == "https"
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
}

//! A provider as an `oauth2::Client`: the crate builds authorization URLs (with PKCE S256),
//! code exchanges, refreshes and RFC 7009 revocations, and reads RFC 6749 §5.2 error answers;
//! `quirks` makes what providers really answer fit it, and `http::ProviderCall` sends it.

use crate::providers::{Provider, TokenAuthMethod};
use crate::vault::Secret;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields,
    RedirectUrl, RevocationUrl, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

/// Fields of a token answer beyond RFC 6749's that Latch reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderFields {
    /// Slack: the workspace the app was installed in (`{id, name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<serde_json::Value>,
    /// Slack: the Enterprise Grid organization (`{id, name}`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<serde_json::Value>,
    /// Slack: an org-wide install (`team` is then `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enterprise_install: Option<bool>,
    /// Slack: the app's bot user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_user_id: Option<String>,
    /// Slack: the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Slack: the installing user, with their token when `user_scope` was granted besides a
    /// bot token (`quirks` checked its fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authed_user: Option<serde_json::Value>,
    /// Slack: `incoming-webhook` granted (`{channel, channel_id, configuration_url, url}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_webhook: Option<serde_json::Value>,
}

impl ExtraTokenFields for ProviderFields {}

/// A token endpoint's success answer.
pub type TokenAnswer = StandardTokenResponse<ProviderFields, BasicTokenType>;

/// A provider's client: authorization and token endpoints always, revocation when it has one.
pub type ProviderClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// The client for `provider`: its endpoints, its client authentication, Latch's redirect URI
/// (sent with the authorization request and the code exchange, byte-identical), and the app's
/// client secret when the call needs it.
pub fn client(provider: &Provider, redirect_uri: Option<&Url>, secret: Option<&Secret>) -> ProviderClient {
    let mut client = oauth2::Client::new(ClientId::new(provider.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(provider.authorization_url.clone()))
        .set_token_uri(TokenUrl::from_url(provider.token_url.clone()))
        .set_revocation_url_option(provider.revocation_url.as_ref().map(|url| RevocationUrl::from_url(https_form(url))))
        .set_auth_type(match provider.token_auth_method {
            TokenAuthMethod::Basic => AuthType::BasicAuth,
            TokenAuthMethod::Post => AuthType::RequestBody,
        });
    if let Some(uri) = redirect_uri {
        client = client.set_redirect_uri(RedirectUrl::from_url(uri.clone()));
    }
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    client
}

/// The crate refuses a revocation URL that is not https (RFC 7009 §2), while Latch allows plain
/// http for providers on loopback (development, tests; `providers` refuses it elsewhere). Such a
/// URL is handed to the crate in its https form, and the call is sent to the configured URL
/// (`ProviderCall::sending_to`).
fn https_form(url: &Url) -> Url {
    let mut https = url.clone();
    if url.scheme() == "http" && https.set_scheme("https").is_ok() {
        return https;
    }
    url.clone()
}

//! Calls to a provider's token endpoint and the reading of its answers, fail-closed.
//!
//! Provider error bodies can echo secrets, so an answer is reduced to its `error` code (checked to
//! be a short identifier) and a sanitized description before anything else sees it.

use super::http::{CallError, Endpoint, ProviderCall};
use super::protocol::{ProviderClient, TokenAnswer};
use super::quirks::Refusal;
use crate::providers::{Dialect, Provider};
use crate::vault::Secret;
use oauth2::basic::BasicErrorResponse;
use oauth2::{AuthorizationCode, PkceCodeVerifier, RefreshToken, RequestTokenError, TokenResponse as _};
use std::time::Duration;
use url::Url;

/// Tokens from a successful answer.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    /// Seconds, clamped to a sane range.
    pub expires_in: Option<i64>,
    /// Granted scopes (`None`: as before / as requested).
    pub scopes: Option<Vec<String>>,
    /// The account the answer itself names (Slack: the team, or the enterprise of an org-wide
    /// install), as (id, label).
    pub account: Option<Account>,
    /// The installing user's token, granted besides a bot token (Slack `user_scope`).
    pub user: Option<UserGrant>,
    /// What else the install granted and who made it where (Slack).
    pub install: Option<Install>,
}

/// An account at the provider: (id, label).
pub type Account = (String, Option<String>);

/// The installing user's token of a Slack install that also granted a bot token.
#[derive(Debug, Clone)]
pub struct UserGrant {
    pub access_token: Secret,
    /// With token rotation.
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<i64>,
    pub scopes: Vec<String>,
}

/// What a Slack install answer says beyond its tokens.
#[derive(Debug, Clone, Default)]
pub struct Install {
    pub installation: latch_shared::Installation,
    /// The incoming webhook's channel.
    pub resources: Vec<latch_shared::Resource>,
    /// The incoming webhook's URL: a credential, sealed like a token.
    pub incoming_webhook_url: Option<Secret>,
}

/// How a token-endpoint call failed, classified for the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The grant is dead (`invalid_grant`, Slack `invalid_refresh_token`, `token_revoked`…):
    /// the user must reconnect.
    #[error("grant rejected by provider ({code})")]
    GrantRejected { code: String, description: Option<String> },
    /// The provider rejected the app's own credentials: an operator must fix the client secret.
    #[error("client credentials rejected by provider ({code})")]
    ClientRejected { code: String },
    /// Outage, timeout, rate limit: try again later (after `retry_after` seconds when the
    /// provider said, HTTP 429 `Retry-After`).
    #[error("provider unavailable: {reason}")]
    Transient { reason: String, retry_after: Option<u32> },
    /// A 200 answer that is not a usable token response (the outcome of a refresh is unknown).
    #[error("malformed token response: {reason}")]
    Malformed { reason: &'static str },
    /// A well-formed success answer that carries no access token.
    #[error("the token response holds no access token")]
    NoAccessToken,
    /// Any other OAuth error code.
    #[error("provider error ({code})")]
    Other { code: String, description: Option<String> },
}

impl TokenError {
    /// Whether the provider may have acted on the request although it failed (Slack's
    /// `fatal_error`): a refresh token may have been rotated without our hearing of it.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Transient { reason, .. } if reason == "fatal_error")
    }

    /// The provider's error code, sanitized, when it sent one.
    pub fn provider_code(&self) -> Option<&str> {
        match self {
            Self::GrantRejected { code, .. } | Self::ClientRejected { code } | Self::Other { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What a token request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    /// The authorization code of a connect flow, with its PKCE verifier; the client's redirect
    /// URI goes with it.
    Code { code: &'a str, verifier: Option<&'a Secret>, redirect_uri: &'a Url },
    /// A refresh.
    Refresh { refresh_token: &'a Secret },
}

/// Sends a grant to `provider`'s token endpoint with the `oauth2` crate, within `timeout`, and
/// classifies the answer.
pub async fn request(
    http: &reqwest::Client,
    provider: &Provider,
    client_secret: &Secret,
    grant: Grant<'_>,
    timeout: Duration,
) -> Result<TokenSet, TokenError> {
    let redirect_uri = match grant {
        Grant::Code { redirect_uri, .. } => Some(redirect_uri),
        Grant::Refresh { .. } => None,
    };
    let client = super::protocol::client(provider, redirect_uri, Some(client_secret));
    let call = ProviderCall::new(http, timeout, provider, Endpoint::Token);
    send(&client, &call, provider.dialect, grant).await
}

async fn send(
    client: &ProviderClient,
    call: &ProviderCall<'_>,
    dialect: Dialect,
    grant: Grant<'_>,
) -> Result<TokenSet, TokenError> {
    let answer = match grant {
        Grant::Code { code, verifier, .. } => {
            let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
            if let Some(verifier) = verifier {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()));
            }
            request.request_async(call).await
        }
        Grant::Refresh { refresh_token } => {
            let token = RefreshToken::new(refresh_token.expose().to_owned());
            client.exchange_refresh_token(&token).request_async(call).await
        }
    };
    read(dialect, answer)
}

/// Classifies what the crate made of an answer (which `quirks` has already checked).
fn read(
    dialect: Dialect,
    answer: Result<TokenAnswer, RequestTokenError<CallError, BasicErrorResponse>>,
) -> Result<TokenSet, TokenError> {
    match answer {
        Ok(answer) => Ok(token_set(dialect, &answer)),
        // `quirks` sanitized both before the crate read them.
        Err(RequestTokenError::ServerResponse(e)) => {
            Err(classify(dialect, e.error().as_ref().to_owned(), e.error_description().cloned()))
        }
        Err(RequestTokenError::Request(CallError::Transport(reason))) => {
            Err(TokenError::Transient { reason, retry_after: None })
        }
        Err(RequestTokenError::Request(CallError::Refused(refusal))) => Err(match refusal {
            Refusal::Unavailable(reason) => TokenError::Transient { reason, retry_after: None },
            Refusal::RateLimited { retry_after } => TokenError::Transient {
                reason: format!("rate limited for {retry_after} s"),
                retry_after: Some(retry_after),
            },
            Refusal::Malformed(reason) => TokenError::Malformed { reason },
            Refusal::NoAccessToken => TokenError::NoAccessToken,
        }),
        Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) => {
            Err(TokenError::Malformed { reason: "unexpected token response" })
        }
    }
}

fn token_set(dialect: Dialect, answer: &TokenAnswer) -> TokenSet {
    let (account, user, install) = match dialect {
        Dialect::Slack => slack_install(answer.extra_fields()),
        Dialect::Standard => (None, None, None),
    };
    TokenSet {
        access_token: Secret::new(answer.access_token().secret().clone()),
        refresh_token: answer.refresh_token().map(|t| Secret::new(t.secret().clone())),
        token_type: answer.token_type().as_ref().to_owned(),
        // `quirks` checked the range.
        expires_in: answer.expires_in().and_then(|d| i64::try_from(d.as_secs()).ok()),
        scopes: answer.scopes().map(|scopes| scopes.iter().flat_map(|s| split_scopes(s)).collect::<Vec<_>>()).map(
            |mut scopes| {
                scopes.dedup();
                scopes
            },
        ),
        account,
        user,
        install,
    }
}

/// `{id, name}` of a Slack object, if it has an id.
fn account_ref(value: Option<&serde_json::Value>) -> Option<latch_shared::AccountRef> {
    let value = value?;
    let id = value.get("id").and_then(|id| id.as_str()).filter(|id| !id.is_empty())?;
    Some(latch_shared::AccountRef {
        id: id.to_owned(),
        name: value.get("name").and_then(|n| n.as_str()).map(str::to_owned),
    })
}

/// Reads what a Slack `oauth.v2.access` answer says beyond its top-level token: the account
/// (the workspace, or the enterprise of an org-wide install, whose `team` is `null`), the
/// installing user's token besides a bot token, the incoming webhook and who installed it where.
fn slack_install(fields: &super::protocol::ProviderFields) -> (Option<Account>, Option<UserGrant>, Option<Install>) {
    let team = account_ref(fields.team.as_ref());
    let enterprise = account_ref(fields.enterprise.as_ref());
    let is_enterprise_install = fields.is_enterprise_install.unwrap_or(false);
    let account = match (&team, &enterprise) {
        (Some(team), _) if !is_enterprise_install => Some(team),
        (_, Some(enterprise)) if is_enterprise_install => Some(enterprise),
        (team, _) => team.as_ref(),
    }
    .map(|a| (a.id.clone(), a.name.clone()));
    let authed_user = fields.authed_user.as_ref();
    let text = |v: Option<&serde_json::Value>, field: &str| {
        v.and_then(|v| v.get(field)).and_then(|f| f.as_str()).filter(|f| !f.is_empty()).map(str::to_owned)
    };
    // `quirks` lifted a user-only install's token to the top and checked this one.
    let user = text(authed_user, "access_token").map(|token| UserGrant {
        access_token: Secret::new(token),
        refresh_token: text(authed_user, "refresh_token").map(Secret::new),
        expires_in: authed_user.and_then(|u| u.get("expires_in")).and_then(serde_json::Value::as_i64),
        scopes: text(authed_user, "scope").map(|s| split_scopes(&s)).unwrap_or_default(),
    });
    let webhook = fields.incoming_webhook.as_ref();
    let channel_id = text(webhook, "channel_id").or_else(|| text(webhook, "single_channel_id"));
    let resources = channel_id
        .map(|id| latch_shared::Resource { kind: "channel".into(), id, name: text(webhook, "channel") })
        .into_iter()
        .collect();
    let installation = latch_shared::Installation {
        team,
        enterprise,
        is_enterprise_install,
        bot_user_id: fields.bot_user_id.clone().filter(|b| !b.is_empty()),
        app_id: fields.app_id.clone().filter(|a| !a.is_empty()),
        authed_user_id: text(authed_user, "id"),
    };
    let install = Install { installation, resources, incoming_webhook_url: text(webhook, "url").map(Secret::new) };
    (account, user, Some(install))
}

/// Classifies a token-endpoint answer exactly as [`request`] does, without a network: for
/// tests and fuzzing.
pub async fn parse(dialect: Dialect, status: u16, is_form: bool, body: &[u8]) -> Result<TokenSet, TokenError> {
    let canned = |_request: oauth2::HttpRequest| async move {
        let (status, body) = super::quirks::token_answer(dialect, status, is_form, body)?;
        super::http::json_answer(status, body)
    };
    let url = Url::parse("https://provider.invalid/token").ok();
    let Some(url) = url else { return Err(TokenError::Malformed { reason: "no URL" }) };
    let client: oauth2::Client<
        BasicErrorResponse,
        TokenAnswer,
        oauth2::basic::BasicTokenIntrospectionResponse,
        oauth2::StandardRevocableToken,
        oauth2::basic::BasicRevocationErrorResponse,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    > = oauth2::Client::new(oauth2::ClientId::new("c".into())).set_token_uri(oauth2::TokenUrl::from_url(url));
    let answer = client.exchange_refresh_token(&RefreshToken::new("r".into())).request_async(&canned).await;
    read(dialect, answer)
}

fn classify(dialect: Dialect, code: String, description: Option<String>) -> TokenError {
    let slack = dialect == Dialect::Slack;
    match code.as_str() {
        "invalid_grant"
        | "invalid_refresh_token"
        | "token_revoked"
        | "token_expired"
        | "refresh_token_revoked"
        | "account_inactive"
        | "app_uninstalled"
        | "invalid_scope" => TokenError::GrantRejected { code, description },
        // Slack's "the token is dead" for a call made with it.
        "invalid_auth" if slack => TokenError::GrantRejected { code, description },
        "invalid_client"
        | "unauthorized_client"
        | "bad_client_secret"
        | "invalid_client_id"
        | "incorrect_client_credentials" => TokenError::ClientRejected { code },
        // Slack's answers to a misconfigured app (redirect URL, PKCE, grant type, scopes): the
        // operator's problem, never the user's, so they go the same way as bad credentials.
        "bad_redirect_uri"
        | "oauth_authorization_url_mismatch"
        | "pkce_not_allowed"
        | "invalid_code_verifier"
        | "invalid_grant_type"
        | "no_scopes"
            if slack =>
        {
            TokenError::ClientRejected { code }
        }
        "temporarily_unavailable" | "server_error" | "ratelimited" | "rate_limited" | "slow_down" => {
            TokenError::Transient { reason: code, retry_after: None }
        }
        // Slack's own outage answers (HTTP 200 with ok:false). After `fatal_error` on a refresh
        // the outcome is unknown; the refresh protocol keeps the stored tokens and tries again.
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" if slack => {
            TokenError::Transient { reason: code, retry_after: None }
        }
        _ => TokenError::Other { code, description },
    }
}

/// Splits a scope string on spaces (RFC 6749) and commas (Slack, GitHub).
pub fn split_scopes(s: &str) -> Vec<String> {
    let mut scopes: Vec<String> = s.split([' ', ',']).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    scopes.dedup();
    scopes
}

/// Keeps an error code only if it looks like one: a short identifier. Anything else (a provider
/// echoing input, HTML) becomes `unrecognized_error`.
pub fn sanitize_code(code: &str) -> String {
    if !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        code.to_ascii_lowercase()
    } else {
        "unrecognized_error".to_owned()
    }
}

/// A description fit to show: printable ASCII, at most 200 characters, and without long
/// token-like runs (providers sometimes echo what they were sent).
pub fn sanitize_description(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect();
    cleaned.split(' ').map(|w| if w.len() > 24 { "[…]" } else { w }).collect::<Vec<_>>().join(" ")
}

/// A transport failure, described without the URL (which may carry a query).
pub fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "redirect refused".into()
    } else {
        "transport error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn std_parse(status: u16, body: &str) -> Result<TokenSet, TokenError> {
        parse(Dialect::Standard, status, false, body.as_bytes()).await
    }

    #[tokio::test]
    async fn good_answers() {
        let t = std_parse(
            200,
            r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":3600,"scope":"a b"}"#,
        )
        .await
        .unwrap();
        assert_eq!(t.access_token.expose(), "a");
        assert_eq!(t.refresh_token.unwrap().expose(), "r");
        assert_eq!(t.token_type, "bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scopes.unwrap(), ["a", "b"]);
        let t = parse(Dialect::Standard, 200, true, b"access_token=gho_x&scope=repo%2Cuser&token_type=bearer")
            .await
            .unwrap();
        assert_eq!(t.scopes.unwrap(), ["repo", "user"]);
        assert!(t.expires_in.is_none());
        let t = std_parse(200, r#"{"access_token":"a"}"#).await.unwrap();
        assert_eq!(t.token_type, "bearer", "a missing token_type is bearer");
    }

    #[test]
    fn basic_client_authentication_is_a_sensitive_header() {
        let cfg: crate::providers::ProviderConfig = toml::from_str(
            r#"client_id = "id"
               authorization_url = "http://127.0.0.1:9/authorize"
               token_url = "http://127.0.0.1:9/token"
               token_auth_method = "basic"
               identity = { url = "http://127.0.0.1:9/me", account_identifier = "$.sub" }"#,
        )
        .unwrap();
        let provider = crate::providers::Provider::from_config("custom", cfg).unwrap();
        let secret = Secret::new("s3cret");
        let client = super::super::protocol::client(&provider, None, Some(&secret));
        // What the crate would send, captured instead of sent.
        let captured = std::sync::Mutex::new(None);
        let capture = |request: oauth2::HttpRequest| {
            *captured.lock().unwrap() = Some(request);
            std::future::ready(Err::<oauth2::HttpResponse, _>(CallError::Transport("captured".into())))
        };
        let token = RefreshToken::new("r".into());
        let _ = futures_lite_block_on(client.exchange_refresh_token(&token).request_async(&capture));
        let request = captured.lock().unwrap().take().unwrap();
        let body = String::from_utf8(request.body().clone()).unwrap();
        assert!(!body.contains("s3cret") && !body.contains("client_id"), "no credentials in the body: {body}");
        let request = crate::oauth::http::outbound(request, std::time::Duration::from_secs(1)).unwrap();
        let header = &request.headers()[reqwest::header::AUTHORIZATION];
        assert!(header.is_sensitive(), "the Basic header must be marked sensitive");
        assert!(!format!("{request:?}").contains(header.to_str().unwrap()), "Debug shows no credentials");
    }

    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[tokio::test]
    async fn each_slack_error_string_has_its_class() {
        let class = |code: &str| {
            let body = format!(r#"{{"ok":false,"error":"{code}"}}"#);
            async move {
                match parse(Dialect::Slack, 200, false, body.as_bytes()).await.unwrap_err() {
                    TokenError::GrantRejected { .. } => "dead grant",
                    TokenError::ClientRejected { .. } => "operator",
                    TokenError::Transient { .. } => "transient",
                    _ => "other",
                }
            }
        };
        for code in [
            "bad_client_secret",
            "invalid_client_id",
            "bad_redirect_uri",
            "oauth_authorization_url_mismatch",
            "pkce_not_allowed",
            "invalid_code_verifier",
            "invalid_grant_type",
            "no_scopes",
        ] {
            assert_eq!(class(code).await, "operator", "{code}");
        }
        for code in ["internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"] {
            assert_eq!(class(code).await, "transient", "{code}");
        }
        for code in ["invalid_refresh_token", "token_revoked", "account_inactive", "invalid_auth"] {
            assert_eq!(class(code).await, "dead grant", "{code}");
        }
        assert_eq!(class("invalid_code").await, "other", "a reused code: the user starts again");
        // Outside Slack these words mean nothing special.
        let e = parse(Dialect::Standard, 400, false, br#"{"error":"invalid_auth"}"#).await.unwrap_err();
        assert!(matches!(e, TokenError::Other { .. }));
    }

    #[tokio::test]
    async fn slack_ok_false_is_an_error_even_with_200() {
        let e =
            parse(Dialect::Slack, 200, false, br#"{"ok":false,"error":"invalid_refresh_token"}"#).await.unwrap_err();
        assert!(matches!(e, TokenError::GrantRejected { .. }));
        let e = parse(Dialect::Slack, 200, false, br#"{"ok":false,"error":"ratelimited"}"#).await.unwrap_err();
        assert!(matches!(e, TokenError::Transient { .. }));
    }

    #[tokio::test]
    async fn malformed_answers_fail_closed() {
        for body in [
            r#"{"access_token":""}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","expires_in":"3600"}"#,
            r#"{"access_token":"a","expires_in":-5}"#,
            r#"{"access_token":"a","expires_in":0}"#,
            r#"{"access_token":"a","expires_in":1e15}"#,
            r#"{"access_token":"a","scope":["a"]}"#,
            r#"{"access_token":"a","refresh_token":7}"#,
            r#"{"access_token":"a","token_type":1}"#,
            r#"{"access_token":5}"#,
            "<html>hi</html>",
            "[]",
            "",
        ] {
            assert!(matches!(std_parse(200, body).await, Err(TokenError::Malformed { .. })), "{body}");
        }
    }

    #[tokio::test]
    async fn no_access_token_is_its_own_error() {
        assert!(matches!(std_parse(200, "{}").await, Err(TokenError::NoAccessToken)));
    }

    #[tokio::test]
    async fn slack_install_answer() {
        let body = br#"{"ok":true,"access_token":"xoxb-1","token_type":"bot","scope":"chat:write,channels:read",
            "team":{"id":"T1","name":"Acme"},"authed_user":{"id":"U1","scope":"identify","access_token":"xoxp-1","token_type":"user"}}"#;
        let t = parse(Dialect::Slack, 200, false, body).await.unwrap();
        assert_eq!(t.access_token.expose(), "xoxb-1");
        assert_eq!(t.token_type, "bot");
        assert_eq!(t.scopes.unwrap(), ["chat:write", "channels:read"]);
        assert_eq!(t.account, Some(("T1".into(), Some("Acme".into()))));
        let user_only = br#"{"ok":true,"team":{"id":"T1"},"authed_user":{"id":"U1","scope":"search:read","access_token":"xoxp-2","token_type":"user"}}"#;
        let t = parse(Dialect::Slack, 200, false, user_only).await.unwrap();
        assert_eq!(t.access_token.expose(), "xoxp-2");
        assert_eq!(t.scopes.unwrap(), ["search:read"]);
    }

    #[tokio::test]
    async fn classification() {
        assert!(matches!(std_parse(400, r#"{"error":"invalid_grant"}"#).await, Err(TokenError::GrantRejected { .. })));
        assert!(matches!(
            std_parse(401, r#"{"error":"invalid_client"}"#).await,
            Err(TokenError::ClientRejected { .. })
        ));
        assert!(matches!(std_parse(503, "down").await, Err(TokenError::Transient { .. })));
        assert!(matches!(std_parse(429, "{}").await, Err(TokenError::Transient { .. })));
        assert!(matches!(std_parse(200, r#"{"error":"invalid_grant"}"#).await, Err(TokenError::GrantRejected { .. })));
        match std_parse(403, "forbidden").await {
            Err(TokenError::Other { code, .. }) => assert_eq!(code, "http_403"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn provider_text_is_sanitized() {
        let e = std_parse(400, r#"{"error":"<script>secret-token-value</script>","error_description":"bad token xoxb-1234567890-abcdefghijklmnop given"}"#).await.unwrap_err();
        match e {
            TokenError::Other { code, description } => {
                assert_eq!(code, "unrecognized_error");
                assert_eq!(description.unwrap(), "bad token […] given");
            }
            other => panic!("{other:?}"),
        }
    }
}

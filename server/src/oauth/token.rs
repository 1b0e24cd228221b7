//! Calls to a provider's token endpoint and the reading of its answers, fail-closed.
//!
//! Provider error bodies can echo secrets, so an answer is reduced to its `error` code (checked to
//! be a short identifier) and a sanitized description before anything else sees it.

use super::http::read_capped;
use crate::providers::{Dialect, Provider, TokenAuthMethod};
use crate::vault::Secret;
use base64::Engine as _;
use serde::Deserialize;

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
    /// The account the answer itself names (Slack: the team), as (id, label).
    pub account: Option<(String, Option<String>)>,
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
    /// Outage, timeout, rate limit: try again later.
    #[error("provider unavailable: {reason}")]
    Transient { reason: String },
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
    /// The provider's error code, sanitized, when it sent one.
    pub fn provider_code(&self) -> Option<&str> {
        match self {
            Self::GrantRejected { code, .. } | Self::ClientRejected { code } | Self::Other { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    ok: Option<bool>,
    error: Option<serde_json::Value>,
    error_description: Option<serde_json::Value>,
    access_token: Option<serde_json::Value>,
    refresh_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
    /// Slack: the workspace the app was installed in.
    team: Option<serde_json::Value>,
    /// Slack: the installing user, with a user token when user scopes were asked for.
    authed_user: Option<serde_json::Value>,
}

/// Posts a grant to the token endpoint and classifies the answer.
pub async fn request(
    http: &reqwest::Client,
    provider: &Provider,
    client_secret: &Secret,
    params: &[(&str, &str)],
    timeout: std::time::Duration,
) -> Result<TokenSet, TokenError> {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let request = authenticate(http.post(provider.token_url.clone()), &mut form, provider, client_secret)
        .timeout(timeout)
        .header("Accept", "application/json");
    let body = serde_urlencoded::to_string(&form).map_err(|_| TokenError::Malformed { reason: "form encoding" })?;
    let response = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| TokenError::Transient { reason: describe_transport(&e) })?;
    let status = response.status();
    let is_form = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded") || v.starts_with("text/plain"));
    let bytes = read_capped(response).await.map_err(|e| TokenError::Transient { reason: describe_transport(&e) })?;
    parse(provider.dialect, status.as_u16(), is_form, &bytes)
}

/// Classifies a token endpoint answer. Public for tests and fuzzing.
pub fn parse(dialect: Dialect, status: u16, is_form: bool, body: &[u8]) -> Result<TokenSet, TokenError> {
    if status == 429 || status >= 500 {
        return Err(TokenError::Transient { reason: format!("HTTP {status}") });
    }
    let raw: Option<RawTokenResponse> = if is_form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok().map(|pairs| {
            let get =
                |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| serde_json::Value::String(v.clone()));
            RawTokenResponse {
                ok: None,
                error: get("error"),
                error_description: get("error_description"),
                access_token: get("access_token"),
                refresh_token: get("refresh_token"),
                token_type: get("token_type"),
                expires_in: get("expires_in"),
                scope: get("scope"),
                team: None,
                authed_user: None,
            }
        })
    } else {
        serde_json::from_slice(body).ok()
    };
    let Some(raw) = raw else {
        return Err(if (200..300).contains(&status) {
            TokenError::Malformed { reason: "body is not a JSON object" }
        } else {
            TokenError::Other { code: format!("http_{status}"), description: None }
        });
    };
    // Slack answers 200 with ok:false; GitHub answers 200 with an error field.
    let failed = raw.error.is_some() || raw.ok == Some(false) || !(200..300).contains(&status);
    if failed {
        let code =
            raw.error.as_ref().and_then(|v| v.as_str()).map(sanitize_code).unwrap_or_else(|| format!("http_{status}"));
        let description = raw.error_description.as_ref().and_then(|v| v.as_str()).map(sanitize_description);
        return Err(classify(dialect, code, description));
    }
    // Slack installs with only user scopes carry the token inside `authed_user`.
    let (access_field, scope_field) = match (raw.access_token, &raw.authed_user) {
        (None, Some(user)) if dialect == Dialect::Slack && user.get("access_token").is_some() => {
            (user.get("access_token").cloned(), user.get("scope").cloned())
        }
        (access, _) => (access, raw.scope),
    };
    let access_token = match access_field {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Secret::new(s),
        None | Some(serde_json::Value::Null) => return Err(TokenError::NoAccessToken),
        _ => return Err(TokenError::Malformed { reason: "access_token is not a non-empty string" }),
    };
    let refresh_token = match raw.refresh_token {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(Secret::new(s)),
        None | Some(serde_json::Value::Null) => None,
        _ => {
            return Err(TokenError::Malformed { reason: "refresh_token is not a string" });
        }
    };
    let token_type = match raw.token_type {
        Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
        None | Some(serde_json::Value::Null) => "bearer".to_owned(),
        _ => {
            return Err(TokenError::Malformed { reason: "token_type is not a string" });
        }
    };
    // Slack bot tokens say "bot"; anything else that is not bearer is unusable for us.
    if !matches!(token_type.as_str(), "bearer" | "bot" | "user") {
        return Err(TokenError::Malformed { reason: "unsupported token_type" });
    }
    let expires_in = match raw.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(v) if (1..=10 * 365 * 86_400).contains(&v) => Some(v),
            _ => {
                return Err(TokenError::Malformed { reason: "expires_in out of range" });
            }
        },
        // Form-encoded answers (GitHub) carry numbers as strings.
        Some(serde_json::Value::String(s)) if is_form => match s.parse::<i64>() {
            Ok(v) if (1..=10 * 365 * 86_400).contains(&v) => Some(v),
            _ => {
                return Err(TokenError::Malformed { reason: "expires_in out of range" });
            }
        },
        _ => {
            return Err(TokenError::Malformed { reason: "expires_in is not a number" });
        }
    };
    let scopes = match scope_field {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(split_scopes(&s)),
        _ => {
            return Err(TokenError::Malformed { reason: "scope is not a string" });
        }
    };
    let account = match (dialect, &raw.team) {
        (Dialect::Slack, Some(team)) => team
            .get("id")
            .and_then(|id| id.as_str())
            .filter(|id| !id.is_empty())
            .map(|id| (id.to_owned(), team.get("name").and_then(|n| n.as_str()).map(str::to_owned))),
        _ => None,
    };
    Ok(TokenSet { access_token, refresh_token, token_type, expires_in, scopes, account })
}

fn classify(dialect: Dialect, code: String, description: Option<String>) -> TokenError {
    match code.as_str() {
        "invalid_grant"
        | "invalid_refresh_token"
        | "token_revoked"
        | "token_expired"
        | "refresh_token_revoked"
        | "account_inactive"
        | "app_uninstalled"
        | "invalid_scope" => TokenError::GrantRejected { code, description },
        "invalid_client"
        | "unauthorized_client"
        | "bad_client_secret"
        | "invalid_client_id"
        | "incorrect_client_credentials" => TokenError::ClientRejected { code },
        "temporarily_unavailable" | "server_error" | "ratelimited" | "rate_limited" | "slow_down" => {
            TokenError::Transient { reason: code }
        }
        _ if dialect == Dialect::Slack && code == "internal_error" => TokenError::Transient { reason: code },
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

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Adds the client's authentication to a request to the provider (token or revocation
/// endpoint): HTTP Basic, or `client_id` and `client_secret` in `form`.
pub fn authenticate<'a>(
    request: reqwest::RequestBuilder,
    form: &mut Vec<(&'a str, &'a str)>,
    provider: &'a Provider,
    client_secret: &'a Secret,
) -> reqwest::RequestBuilder {
    match provider.token_auth_method {
        TokenAuthMethod::Basic => {
            // RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding.
            let id = form_encode(&provider.client_id);
            let secret = form_encode(client_secret.expose());
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            // Marked sensitive, so no debug output or HTTP/2 header table ever shows it.
            match reqwest::header::HeaderValue::from_str(&format!("Basic {basic}")) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header(reqwest::header::AUTHORIZATION, value)
                }
                // Base64 is always a valid header value; an impossible failure sends no secret.
                Err(_) => request,
            }
        }
        TokenAuthMethod::Post => {
            form.push(("client_id", &provider.client_id));
            form.push(("client_secret", client_secret.expose()));
            request
        }
    }
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

    fn std_parse(status: u16, body: &str) -> Result<TokenSet, TokenError> {
        parse(Dialect::Standard, status, false, body.as_bytes())
    }

    #[test]
    fn good_answers() {
        let t = std_parse(
            200,
            r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":3600,"scope":"a b"}"#,
        )
        .unwrap();
        assert_eq!(t.access_token.expose(), "a");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scopes.unwrap(), ["a", "b"]);
        let t = parse(Dialect::Standard, 200, true, b"access_token=gho_x&scope=repo%2Cuser&token_type=bearer").unwrap();
        assert_eq!(t.scopes.unwrap(), ["repo", "user"]);
        assert!(t.expires_in.is_none());
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
        let provider = Provider::from_config("custom", cfg).unwrap();
        let secret = Secret::new("s3cret");
        let mut form = Vec::new();
        let client = reqwest::Client::new();
        let request =
            authenticate(client.post(provider.token_url.clone()), &mut form, &provider, &secret).build().unwrap();
        let header = &request.headers()[reqwest::header::AUTHORIZATION];
        assert!(header.is_sensitive(), "the Basic header must be marked sensitive");
        assert!(!format!("{request:?}").contains(header.to_str().unwrap()), "Debug shows no credentials");
        assert!(form.is_empty(), "no secret in the body");
    }

    #[test]
    fn slack_ok_false_is_an_error_even_with_200() {
        let e = parse(Dialect::Slack, 200, false, br#"{"ok":false,"error":"invalid_refresh_token"}"#).unwrap_err();
        assert!(matches!(e, TokenError::GrantRejected { .. }));
        let e = parse(Dialect::Slack, 200, false, br#"{"ok":false,"error":"ratelimited"}"#).unwrap_err();
        assert!(matches!(e, TokenError::Transient { .. }));
    }

    #[test]
    fn malformed_answers_fail_closed() {
        for body in [
            r#"{"access_token":""}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","expires_in":"3600"}"#,
            r#"{"access_token":"a","expires_in":-5}"#,
            r#"{"access_token":"a","expires_in":1e15}"#,
            r#"{"access_token":"a","scope":["a"]}"#,
            "<html>hi</html>",
            "",
        ] {
            assert!(matches!(std_parse(200, body), Err(TokenError::Malformed { .. })), "{body}");
        }
    }

    #[test]
    fn no_access_token_is_its_own_error() {
        assert!(matches!(std_parse(200, "{}"), Err(TokenError::NoAccessToken)));
    }

    #[test]
    fn slack_install_answer() {
        let body = br#"{"ok":true,"access_token":"xoxb-1","token_type":"bot","scope":"chat:write,channels:read",
            "team":{"id":"T1","name":"Acme"},"authed_user":{"id":"U1","scope":"identify","access_token":"xoxp-1","token_type":"user"}}"#;
        let t = parse(Dialect::Slack, 200, false, body).unwrap();
        assert_eq!(t.access_token.expose(), "xoxb-1");
        assert_eq!(t.scopes.unwrap(), ["chat:write", "channels:read"]);
        assert_eq!(t.account, Some(("T1".into(), Some("Acme".into()))));
        let user_only = br#"{"ok":true,"team":{"id":"T1"},"authed_user":{"id":"U1","scope":"search:read","access_token":"xoxp-2","token_type":"user"}}"#;
        let t = parse(Dialect::Slack, 200, false, user_only).unwrap();
        assert_eq!(t.access_token.expose(), "xoxp-2");
        assert_eq!(t.scopes.unwrap(), ["search:read"]);
    }

    #[test]
    fn classification() {
        assert!(matches!(std_parse(400, r#"{"error":"invalid_grant"}"#), Err(TokenError::GrantRejected { .. })));
        assert!(matches!(std_parse(401, r#"{"error":"invalid_client"}"#), Err(TokenError::ClientRejected { .. })));
        assert!(matches!(std_parse(503, "down"), Err(TokenError::Transient { .. })));
        assert!(matches!(std_parse(429, "{}"), Err(TokenError::Transient { .. })));
    }

    #[test]
    fn provider_text_is_sanitized() {
        let e = std_parse(400, r#"{"error":"<script>secret-token-value</script>","error_description":"bad token xoxb-1234567890-abcdefghijklmnop given"}"#).unwrap_err();
        match e {
            TokenError::Other { code, description } => {
                assert_eq!(code, "unrecognized_error");
                assert_eq!(description.unwrap(), "bad token […] given");
            }
            other => panic!("{other:?}"),
        }
    }
}

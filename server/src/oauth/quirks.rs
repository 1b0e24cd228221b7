//! What providers answer, made into what RFC 6749 says they answer, before the `oauth2` crate
//! reads it; and what it must never accept, refused here (fail-closed).
//!
//! The crate reads standard answers well, and only those: an error must come with a non-200
//! status, a success as JSON with a `token_type`. Providers differ:
//! - Slack answers every call HTTP 200, failures as `{"ok": false, "error": …}`; an install with
//!   only user scopes carries its token inside `authed_user`;
//! - GitHub answers errors with HTTP 200 and an `error` field, and (without `Accept`) form-encoded
//!   bodies whose numbers are strings;
//! - error bodies may echo what they were sent, so a code is kept only if it is a short
//!   identifier and a description only once sanitized;
//! - an odd success (an empty token, a `mac` token, an `expires_in` of `-5` or `"3600"`) is not
//!   a token we can use: refused, so the outcome of a refresh is known to be unknown.

use super::token::{sanitize_code, sanitize_description};
use crate::providers::Dialect;
use serde_json::{Map, Value};

/// Why an answer never reaches the crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Rate limited or down (HTTP 429 or 5xx): try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// HTTP 429 with `Retry-After` in seconds: try again after that.
    #[error("rate limited for {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// A success answer we cannot use.
    #[error("malformed token response: {0}")]
    Malformed(&'static str),
    /// A success answer without an access token.
    #[error("the token response holds no access token")]
    NoAccessToken,
}

/// A `Retry-After` header of a 429 answer in seconds (RFC 9110 §10.2.3; Slack sends seconds),
/// capped at an hour; `None` when absent or not a number of seconds.
pub fn retry_after(status: u16, header: Option<&str>) -> Option<u32> {
    if status != 429 {
        return None;
    }
    header?.trim().parse::<u32>().ok().map(|s| s.min(3600))
}

/// The longest token lifetime believed: ten years.
const MAX_EXPIRES_IN: i64 = 10 * 365 * 86_400;

/// A token-endpoint answer as the crate expects it: `(status, JSON body)`, a success with status
/// 200 and checked fields, an error with a non-200 status and a sanitized `error`.
pub fn token_answer(dialect: Dialect, status: u16, is_form: bool, body: &[u8]) -> Result<(u16, Vec<u8>), Refusal> {
    if status == 429 || status >= 500 {
        return Err(Refusal::Unavailable(format!("HTTP {status}")));
    }
    let ok_status = (200..300).contains(&status);
    let Some(mut answer) = object(is_form, body) else {
        return if ok_status {
            Err(Refusal::Malformed("body is not a JSON object"))
        } else {
            Ok(error_answer(status, format!("http_{status}"), None))
        };
    };
    let failed = answer.contains_key("error") || answer.get("ok") == Some(&Value::Bool(false)) || !ok_status;
    if failed {
        let code = answer.get("error").and_then(Value::as_str).map(sanitize_code);
        let description = answer.get("error_description").and_then(Value::as_str).map(sanitize_description);
        let status = if ok_status { 400 } else { status };
        return Ok(error_answer(status, code.unwrap_or_else(|| format!("http_{status}")), description));
    }
    if dialect == Dialect::Slack {
        lift_user_token(&mut answer);
        check_user_token(&mut answer)?;
    }
    check_fields(&mut answer, is_form)?;
    Ok((200, Value::Object(answer).to_string().into_bytes()))
}

/// A revocation answer as the crate expects it (RFC 7009 §2.2: 200 is success, whatever the
/// body): 2xx becomes 200; an error keeps its status and a sanitized `error`.
pub fn revocation_answer(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    if (200..300).contains(&status) {
        return (200, Vec::new());
    }
    let code = object(false, body).and_then(|a| a.get("error").and_then(Value::as_str).map(sanitize_code));
    error_answer(status, code.unwrap_or_else(|| format!("http_{status}")), None)
}

/// The answer's fields as a JSON object: parsed JSON, or form pairs as strings.
fn object(is_form: bool, body: &[u8]) -> Option<Map<String, Value>> {
    if is_form {
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()?;
        Some(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    } else {
        match serde_json::from_slice(body).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }
}

fn error_answer(status: u16, code: String, description: Option<String>) -> (u16, Vec<u8>) {
    let mut body = Map::new();
    body.insert("error".into(), Value::String(code));
    if let Some(description) = description {
        body.insert("error_description".into(), Value::String(description));
    }
    (status, Value::Object(body).to_string().into_bytes())
}

/// Slack: an install with only user scopes (or a refresh of a user token) has no top-level
/// token; its token, scopes, type and, with token rotation, refresh token and expiry are the
/// installing user's, inside `authed_user`. They are moved up (and out of `authed_user`, which
/// keeps the user's id), so a rotating user token is stored with its expiry and refresh token.
fn lift_user_token(answer: &mut Map<String, Value>) {
    if answer.get("access_token").is_some_and(|t| !t.is_null()) {
        return;
    }
    let Some(Value::Object(user)) = answer.get_mut("authed_user") else { return };
    if user.get("access_token").is_none_or(Value::is_null) {
        return;
    }
    let lifted: Vec<(&str, Option<Value>)> = ["access_token", "scope", "token_type", "refresh_token", "expires_in"]
        .into_iter()
        .map(|field| (field, user.remove(field)))
        .collect();
    for (field, value) in lifted {
        match value {
            Some(value) => answer.insert(field.to_owned(), value),
            None => answer.remove(field),
        };
    }
    if !answer.contains_key("token_type") {
        answer.insert("token_type".into(), Value::String("user".into()));
    }
}

/// Slack: the installing user's token held besides a bot token (inside `authed_user`) is
/// checked like the top-level one, so what `token::token_set` reads is a token we can use.
fn check_user_token(answer: &mut Map<String, Value>) -> Result<(), Refusal> {
    let Some(Value::Object(user)) = answer.get_mut("authed_user") else { return Ok(()) };
    match user.get("access_token") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err(Refusal::Malformed("authed_user.access_token is not a non-empty string")),
    }
    match user.get("refresh_token") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err(Refusal::Malformed("authed_user.refresh_token is not a string")),
    }
    match user.get("expires_in") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| (1..=MAX_EXPIRES_IN).contains(&v)) => {}
        _ => return Err(Refusal::Malformed("authed_user.expires_in out of range")),
    }
    match user.get("scope") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        _ => Err(Refusal::Malformed("authed_user.scope is not a string")),
    }
}

/// Checks every field the crate will read, so that what it reads is a token we can use.
fn check_fields(answer: &mut Map<String, Value>, is_form: bool) -> Result<(), Refusal> {
    match answer.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => {}
        None | Some(Value::Null) => return Err(Refusal::NoAccessToken),
        _ => return Err(Refusal::Malformed("access_token is not a non-empty string")),
    }
    match answer.get("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => {}
        None => {}
        Some(Value::Null) => {
            answer.remove("refresh_token");
        }
        _ => return Err(Refusal::Malformed("refresh_token is not a string")),
    }
    let token_type = match answer.get("token_type") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        None | Some(Value::Null) => "bearer".to_owned(),
        _ => return Err(Refusal::Malformed("token_type is not a string")),
    };
    // Slack bot tokens say "bot"; anything else that is not bearer is unusable for us.
    if !matches!(token_type.as_str(), "bearer" | "bot" | "user") {
        return Err(Refusal::Malformed("unsupported token_type"));
    }
    answer.insert("token_type".into(), Value::String(token_type));
    let expires_in = match answer.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or(Refusal::Malformed("expires_in out of range"))?),
        // Form-encoded answers (GitHub) carry numbers as strings.
        Some(Value::String(s)) if is_form => {
            Some(s.parse::<i64>().map_err(|_| Refusal::Malformed("expires_in out of range"))?)
        }
        _ => return Err(Refusal::Malformed("expires_in is not a number")),
    };
    match expires_in {
        Some(v) if (1..=MAX_EXPIRES_IN).contains(&v) => {
            answer.insert("expires_in".into(), Value::from(v));
        }
        Some(_) => return Err(Refusal::Malformed("expires_in out of range")),
        None => {
            answer.remove("expires_in");
        }
    }
    match answer.get("scope") {
        None | Some(Value::String(_)) => {}
        Some(Value::Null) => {
            answer.remove("scope");
        }
        _ => return Err(Refusal::Malformed("scope is not a string")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(answer: (u16, Vec<u8>)) -> (u16, Value) {
        (answer.0, serde_json::from_slice(&answer.1).unwrap())
    }

    #[test]
    fn slack_failures_become_standard_errors() {
        let (status, body) =
            json(token_answer(Dialect::Slack, 200, false, br#"{"ok":false,"error":"invalid_refresh_token"}"#).unwrap());
        assert_eq!((status, body), (400, serde_json::json!({"error": "invalid_refresh_token"})));
        let (status, body) = json(token_answer(Dialect::Slack, 200, false, br#"{"ok":false}"#).unwrap());
        assert_eq!((status, body["error"].as_str()), (400, Some("http_400")));
    }

    #[test]
    fn github_form_answers_become_json() {
        let (status, body) = json(
            token_answer(Dialect::Standard, 200, true, b"access_token=gho_x&expires_in=28800&token_type=bearer")
                .unwrap(),
        );
        assert_eq!(status, 200);
        assert_eq!(body["expires_in"], 28800);
        let (status, body) = json(token_answer(Dialect::Standard, 200, true, b"error=bad_verification_code").unwrap());
        assert_eq!((status, body["error"].as_str()), (400, Some("bad_verification_code")));
    }

    #[test]
    fn outages_never_reach_the_crate() {
        assert!(matches!(token_answer(Dialect::Standard, 503, false, b"down"), Err(Refusal::Unavailable(_))));
        assert!(matches!(token_answer(Dialect::Slack, 429, false, b"{}"), Err(Refusal::Unavailable(_))));
    }

    #[test]
    fn errors_without_a_body_are_named_by_status() {
        let (status, body) = json(token_answer(Dialect::Standard, 403, false, b"<html>no</html>").unwrap());
        assert_eq!((status, body["error"].as_str()), (403, Some("http_403")));
    }

    #[test]
    fn revocation_answers() {
        assert_eq!(revocation_answer(204, b"").0, 200);
        let (status, body) = json(revocation_answer(400, br#"{"error":"unsupported_token_type"}"#));
        assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_token_type")));
    }
}

/// What a Slack Web API answer (`{"ok": …, "error": …}`, HTTP 200 either way) says about the
/// token the call was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackVerdict {
    /// `ok: true`.
    Ok,
    /// The token is dead: `invalid_auth`, `token_revoked`, `account_inactive`, `token_expired`.
    TokenDead,
    /// Any other failure, with its code sanitized (`None`: the answer named none).
    Failed(Option<String>),
    /// Not JSON.
    Unreadable,
}

/// Reads a Slack Web API answer (`auth.test`, `auth.revoke`).
pub fn slack_verdict(body: &[u8]) -> SlackVerdict {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else { return SlackVerdict::Unreadable };
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return SlackVerdict::Ok;
    }
    match answer.get("error").and_then(Value::as_str) {
        Some("invalid_auth" | "token_revoked" | "account_inactive" | "token_expired") => SlackVerdict::TokenDead,
        code => SlackVerdict::Failed(code.map(sanitize_code)),
    }
}

/// Slack's `auth.test` answer: `Some(true)` when the token works, `Some(false)` when Slack says
/// it is dead, `None` when the answer says neither (a rate limit, an outage, a body that is not
/// Slack's).
pub fn slack_auth_test(status: u16, body: &[u8]) -> Option<bool> {
    if status != 200 {
        return None;
    }
    match slack_verdict(body) {
        SlackVerdict::Ok => Some(true),
        SlackVerdict::TokenDead => Some(false),
        SlackVerdict::Failed(_) | SlackVerdict::Unreadable => None,
    }
}

#[cfg(test)]
mod auth_test_tests {
    use super::slack_auth_test;

    #[test]
    fn auth_test_is_read_by_ok_and_error_not_by_status() {
        assert_eq!(slack_auth_test(200, br#"{"ok":true,"team_id":"T1"}"#), Some(true));
        for dead in ["invalid_auth", "token_revoked", "account_inactive", "token_expired"] {
            let body = format!(r#"{{"ok":false,"error":"{dead}"}}"#);
            assert_eq!(slack_auth_test(200, body.as_bytes()), Some(false), "{dead}");
        }
        assert_eq!(slack_auth_test(200, br#"{"ok":false,"error":"ratelimited"}"#), None);
        assert_eq!(slack_auth_test(429, br#"{"ok":false,"error":"invalid_auth"}"#), None);
        assert_eq!(slack_auth_test(200, b"<html>"), None);
    }
}

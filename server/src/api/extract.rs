//! Extractors that speak our error envelope: JSON bodies and queries with coded rejections, and
//! the two kinds of caller. A handler that takes neither `HostCaller` nor `WidgetCaller` is public.

use super::error::ApiError;
use crate::auth::AuthError;
use crate::auth::api_keys::HostIdentity;
use crate::auth::widget_jwt::WidgetClaims;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use latch_shared::ErrorCode;
use serde::de::DeserializeOwned;

/// A JSON body: 415 without `application/json`, 413 over the limit, 400 `invalid_json` when
/// malformed, 422 `invalid_request` naming the field when well-formed but invalid.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Send the body as JSON with `Content-Type: application/json`.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "The body is larger than 64 KiB.")
            } else {
                ApiError::new(ErrorCode::InvalidJson, "The body could not be read.")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Longest path segment accepted (ids are at most 256 characters).
const MAX_SEGMENT: usize = 256;
/// Longest query value accepted (an authorization code can be a kilobyte or two).
const MAX_QUERY_VALUE: usize = 4096;

/// The one screen for identifiers and text from outside, before any of it reaches SQL: a path
/// segment with a control character (NUL included) or over 256 bytes is `404 not_found`; a query
/// value with a control character or over 4 KiB is `422 invalid_request` naming the parameter.
/// (PostgreSQL refuses NUL in text with an error that would otherwise surface as a 500.)
pub fn screen(uri: &axum::http::Uri) -> Result<(), ApiError> {
    // The common case costs one pass over the bytes and no allocation: a URI holds no raw
    // control characters, so only percent-escapes and long segments need a closer look.
    let path = uri.path();
    let plain = !path.contains('%') && path.split('/').all(|s| s.len() <= MAX_SEGMENT);
    if plain && uri.query().is_none() {
        return Ok(());
    }
    for segment in path.split('/').filter(|_| !plain) {
        let decoded = percent_encoding::percent_decode_str(segment).collect::<Vec<u8>>();
        let text = String::from_utf8_lossy(&decoded);
        if decoded.len() > MAX_SEGMENT || text.chars().any(char::is_control) {
            return Err(ApiError::new(ErrorCode::NotFound, "No such route or resource."));
        }
    }
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let key_bad = key.chars().any(char::is_control) || key.len() > MAX_SEGMENT;
        if key_bad || value.chars().any(char::is_control) || value.len() > MAX_QUERY_VALUE {
            let field = if key_bad { "query".to_owned() } else { key.into_owned() };
            return Err(ApiError::invalid(field, "must be at most 4 KiB, without control characters"));
        }
    }
    Ok(())
}

/// Where in a JSON value the first string (or key) with a control character is, if any.
fn control_character_at(value: &serde_json::Value, path: &str) -> Option<String> {
    let bad = |s: &str| s.chars().any(char::is_control);
    match value {
        serde_json::Value::String(s) if bad(s) => Some(if path.is_empty() { "body".into() } else { path.into() }),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| control_character_at(v, &format!("{path}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if bad(k) { Some(here) } else { control_character_at(v, &here) }
        }),
        _ => None,
    }
}

/// Parses JSON, telling syntax errors (400) from data errors (422, naming the field). Strings
/// with control characters are refused like every identifier from outside (see [`screen`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // In JSON a control character can only be escaped (`\u0000`…`\u001f`, `\n`…): look for
    // the escapes first, so ordinary bodies pay one scan and no second parse.
    let escapes = bytes.windows(2).any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'n' | b'r' | b't' | b'b' | b'f'));
    if escapes
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = control_character_at(&value, "")
    {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(_) => {
                Err(ApiError::new(ErrorCode::InvalidJson, "The body has trailing characters after the JSON value."))
            }
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Data => {
                    let field = if path == "." { unknown_field(&inner).unwrap_or_else(|| "body".into()) } else { path };
                    Err(ApiError::invalid(field, describe_data_error(&inner)))
                }
                Category::Syntax | Category::Eof | Category::Io => Err(ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("The body is not valid JSON (line {}, column {}).", inner.line(), inner.column()),
                )),
            }
        }
    }
}

/// serde's message without its " at line X column Y" suffix.
fn describe_data_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text.get(..i).unwrap_or(&text).to_owned(),
        None => text,
    }
}

/// The name in serde's "unknown field `x`" / "missing field `x`" messages.
fn unknown_field(e: &serde_json::Error) -> Option<String> {
    let text = e.to_string();
    let start = text.find('`')? + 1;
    let len = text.get(start..)?.find('`')?;
    text.get(start..start + len).map(str::to_owned)
}

/// A query string with coded rejections (422 naming the field).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let message = err.inner().to_string();
            let field = if path == "." {
                message.split('`').nth(1).map(str::to_owned).unwrap_or_else(|| "query".into())
            } else {
                path
            };
            ApiError::invalid(field, message)
        })
    }
}

fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidApiKey)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// A host app authenticated by its secret API key.
#[derive(Debug, Clone)]
pub struct HostCaller(pub HostIdentity);

impl FromRequestParts<AppState> for HostCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let identity = state.api_keys.verify(&state.store, token).await?;
        state.limits.host(&identity.key_id).map_err(ApiError::rate_limited)?;
        state.usage.api_key_used(&identity.key_id, state.clock.unix());
        Ok(HostCaller(identity))
    }
}

/// A widget authenticated by a widget JWT; when the token is bound to an origin, a request from
/// any other origin is refused.
#[derive(Debug, Clone)]
pub struct WidgetCaller(pub WidgetClaims);

impl FromRequestParts<AppState> for WidgetCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ip) = client_ip(parts) {
            state.limits.widget_ip(ip).map_err(ApiError::rate_limited)?;
        }
        let token = bearer(parts).map_err(|e| match e {
            AuthError::InvalidApiKey => AuthError::InvalidWidgetToken("header"),
            other => other,
        })?;
        let claims = state.signer.verify(token, state.clock.unix()).await?;
        if let (Some(bound), Some(origin)) = (&claims.origin, parts.headers.get(header::ORIGIN))
            && origin.as_bytes() != bound.as_bytes()
        {
            return Err(ApiError::new(ErrorCode::OriginNotAllowed, "This widget token was issued for another origin."));
        }
        let org = claims.org.as_deref().unwrap_or("");
        state.limits.widget_user(&claims.sub, org).map_err(ApiError::rate_limited)?;
        Ok(WidgetCaller(claims))
    }
}

/// The peer address of the connection (not `X-Forwarded-For`, which any client can write).
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

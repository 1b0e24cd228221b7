//! The sandbox provider: a real OAuth2 authorization server built into Latch, on only in demo
//! mode, so Latch can be tried with no credentials anywhere.
//!
//! It implements the authorization server side of the OAuth security BCP (RFC 9700): one exact
//! redirect URI, PKCE with S256 required, single-use codes valid one minute (a replayed code
//! revokes the grant), short-lived access tokens, rotating refresh tokens with reuse detection
//! (a spent refresh token presented again revokes the grant), RFC 9207 `iss`, RFC 7009
//! revocation, a CSRF-protected consent page that cannot be framed, and one API call (post a
//! message) for the demo. Its tokens are stored only as SHA-256 hashes.

use crate::clock::Clock;
use crate::providers::{Identity, Provider, TokenAuthMethod};
use crate::random::{digest, token as random_token};
use crate::store::new_id;
use crate::store::sandbox::SandboxMessage;
use crate::store::{Store, StoreError};
use crate::vault::{Sealed, Secret, Vault};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latch_shared::{ScopeAccess, ScopeDetail};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use url::Url;

/// The provider key.
pub const KEY: &str = "sandbox";
/// Latch's client id at the sandbox.
pub const CLIENT_ID: &str = "latch-sandbox";
/// Scopes the sandbox knows.
pub const SCOPES: &[&str] = &["messages:write", "profile"];
const CODE_TTL: i64 = 60;
const REFRESH_TTL: i64 = 30 * 86_400;

fn url(state_url: &Url, path: &str) -> Url {
    let mut u = state_url.clone();
    u.set_path(path);
    u
}

/// The sandbox's issuer identifier (RFC 9207).
pub fn issuer(public_url: &Url) -> String {
    url(public_url, "/sandbox").to_string()
}

/// The provider definition Latch uses to talk to its own sandbox.
pub fn provider(public_url: &Url) -> Provider {
    Provider {
        key: KEY.into(),
        name: "Sandbox".into(),
        description: "A pretend chat service built into Latch, to try connecting an account without any credentials."
            .into(),
        authorization_url: url(public_url, "/sandbox/authorize"),
        token_url: url(public_url, "/sandbox/token"),
        client_id: CLIENT_ID.into(),
        scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        scope_details: vec![
            ScopeDetail {
                name: "messages:write".into(),
                description: Some("Post messages as you".into()),
                access: Some(ScopeAccess::Write),
            },
            ScopeDetail {
                name: "profile".into(),
                description: Some("See your name".into()),
                access: Some(ScopeAccess::Read),
            },
        ],
        user_scopes: Vec::new(),
        min_refresh_interval_seconds: 0,
        scope_separator: " ".into(),
        authorization_url_extras: Default::default(),
        identity: Some(Identity {
            url: url(public_url, "/sandbox/userinfo"),
            account_identifier: "$.sub".into(),
            account_label: Some("$.name".into()),
            headers: Default::default(),
        }),
        revocation_url: Some(url(public_url, "/sandbox/revoke")),
        validation_url: None,
        issuer: Some(issuer(public_url)),
        token_auth_method: TokenAuthMethod::Basic,
        pkce: true,
        client_secret_env: None,
        dialect: Default::default(),
    }
}

/// What the sandbox authorization server works with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub store: Store,
    pub vault: Vault,
    pub clock: Clock,
    pub public_url: Url,
    /// The one redirect URI its client (Latch) registered: `{public_url}/oauth/callback`.
    pub redirect_uri: Url,
    pub access_token_ttl_seconds: i64,
}

/// Creates Latch's client secret at the sandbox on first start (stored sealed, like any other).
pub async fn ensure_client_secret(store: &Store, vault: &Vault, now: i64) -> Result<(), StoreError> {
    if store.client_secret(KEY).await?.is_none() {
        let sealed = vault.seal_str(Sealed::ClientSecret.slot(KEY), &random_token());
        store.put_client_secret(KEY, &sealed, now).await?;
    }
    Ok(())
}

/// The query of `GET /sandbox/authorize` (and the hidden fields of the consent form).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Why an authorization request fails.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI unknown: show an error page, never redirect (RFC 6749 §4.1.2.1).
    Page(String),
    /// Redirect back with `error` (and `iss`, `state`).
    Redirect(Url),
}

/// Checks an authorization request.
pub fn check(sb: &Sandbox, p: &AuthorizeParams) -> Result<(), AuthorizeError> {
    if p.client_id.as_deref() != Some(CLIENT_ID) {
        return Err(AuthorizeError::Page("Unknown client.".into()));
    }
    let expected = sb.redirect_uri.clone();
    if p.redirect_uri.as_deref() != Some(expected.as_str()) {
        return Err(AuthorizeError::Page("The redirect URI is not registered for this client.".into()));
    }
    let fail =
        |error: &str, description: &str| Err(AuthorizeError::Redirect(error_redirect(sb, p, error, description)));
    if p.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "only the code flow is supported");
    }
    if p.code_challenge_method.as_deref() != Some("S256") || p.code_challenge.as_deref().is_none_or(|c| c.len() != 43) {
        return fail("invalid_request", "PKCE with S256 is required");
    }
    if scopes(p).iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return fail("invalid_scope", "unknown scope");
    }
    Ok(())
}

fn scopes(p: &AuthorizeParams) -> Vec<String> {
    p.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The redirect for a denied or invalid request.
pub fn error_redirect(sb: &Sandbox, p: &AuthorizeParams, error: &str, description: &str) -> Url {
    let mut u = sb.redirect_uri.clone();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", description);
        if let Some(s) = &p.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &issuer(&sb.public_url));
    }
    u
}

/// The user approved as `account`: issue a code and build the redirect.
pub async fn approve(sb: &Sandbox, p: &AuthorizeParams, account: &str) -> Result<Url, StoreError> {
    let now = sb.clock.unix();
    let grant = new_id("sbg");
    sb.store.sandbox_insert_grant(&grant, account, &scopes(p).join(" "), now).await?;
    let code = random_token();
    sb.store
        .sandbox_insert_token(
            &digest(&code),
            &grant,
            "code",
            now + CODE_TTL,
            p.code_challenge.as_deref(),
            p.redirect_uri.as_deref(),
        )
        .await?;
    let mut u = sb.redirect_uri.clone();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &p.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &issuer(&sb.public_url));
    }
    Ok(u)
}

/// An OAuth error answer of the token endpoint: (HTTP status, `error`).
pub type TokenFailure = (u16, &'static str);

/// `POST /sandbox/token`.
pub async fn token(
    sb: &Sandbox,
    authorization: Option<&str>,
    form: &[(String, String)],
) -> Result<serde_json::Value, TokenFailure> {
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    authenticate_client(sb, authorization, get("client_id"), get("client_secret")).await?;
    let now = sb.clock.unix();
    let store = &sb.store;
    let internal = |_: StoreError| (500, "server_error");
    let (grant_id, account, granted) = match get("grant_type") {
        Some("authorization_code") => {
            let code = get("code").ok_or((400, "invalid_request"))?;
            let hash = digest(code);
            let t = store
                .sandbox_token(&hash)
                .await
                .map_err(internal)?
                .filter(|t| t.kind == "code")
                .ok_or((400, "invalid_grant"))?;
            if !store.sandbox_use_token(&hash, now).await.map_err(internal)? {
                // A replayed code: whoever holds its tokens may be an attacker; end the grant.
                store.sandbox_revoke_grant(&t.grant_id, now).await.map_err(internal)?;
                return Err((400, "invalid_grant"));
            }
            if t.expires_at <= now || t.revoked_at.is_some() || t.redirect_uri.as_deref() != get("redirect_uri") {
                return Err((400, "invalid_grant"));
            }
            let verifier = get("code_verifier").ok_or((400, "invalid_grant"))?;
            let computed = crate::random::s256_challenge(verifier);
            if t.challenge.as_deref().is_none_or(|c| !bool::from(c.as_bytes().ct_eq(computed.as_bytes()))) {
                return Err((400, "invalid_grant"));
            }
            (t.grant_id, t.account, t.scopes)
        }
        Some("refresh_token") => {
            let presented = get("refresh_token").ok_or((400, "invalid_request"))?;
            let hash = digest(presented);
            let t = store
                .sandbox_token(&hash)
                .await
                .map_err(internal)?
                .filter(|t| t.kind == "refresh")
                .ok_or((400, "invalid_grant"))?;
            if t.revoked_at.is_some() || t.expires_at <= now {
                return Err((400, "invalid_grant"));
            }
            if !store.sandbox_use_token(&hash, now).await.map_err(internal)? {
                // Reuse of a rotated refresh token: revoke the whole family (RFC 9700 §4.14.2).
                store.sandbox_revoke_grant(&t.grant_id, now).await.map_err(internal)?;
                return Err((400, "invalid_grant"));
            }
            (t.grant_id, t.account, t.scopes)
        }
        _ => return Err((400, "unsupported_grant_type")),
    };
    let ttl = sb.access_token_ttl_seconds;
    let access = format!("sbx_at_{}", random_token());
    let refresh = format!("sbx_rt_{}", random_token());
    store.sandbox_insert_token(&digest(&access), &grant_id, "access", now + ttl, None, None).await.map_err(internal)?;
    store
        .sandbox_insert_token(&digest(&refresh), &grant_id, "refresh", now + REFRESH_TTL, None, None)
        .await
        .map_err(internal)?;
    let _ = account;
    Ok(serde_json::json!({
        "access_token": access, "token_type": "Bearer", "expires_in": ttl,
        "refresh_token": refresh, "scope": granted,
    }))
}

async fn authenticate_client(
    sb: &Sandbox,
    authorization: Option<&str>,
    id: Option<&str>,
    secret: Option<&str>,
) -> Result<(), TokenFailure> {
    let basic = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match (&basic, id, secret) {
        (Some(pair), _, _) => {
            let (i, s) = pair.split_once(':').ok_or((401, "invalid_client"))?;
            let decode = |v: &str| {
                url::form_urlencoded::parse(format!("x={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (decode(i), decode(s))
        }
        (None, Some(i), Some(s)) => (i.to_owned(), s.to_owned()),
        _ => return Err((401, "invalid_client")),
    };
    let expected = stored_secret(sb).await.ok_or((401, "invalid_client"))?;
    if id != CLIENT_ID || !bool::from(secret.as_bytes().ct_eq(expected.expose().as_bytes())) {
        return Err((401, "invalid_client"));
    }
    Ok(())
}

async fn stored_secret(sb: &Sandbox) -> Option<Secret> {
    let sealed = sb.store.client_secret(KEY).await.ok()??;
    sb.vault.open_secret(Sealed::ClientSecret.slot(KEY), &sealed).ok()
}

/// The account behind a live access token.
pub async fn account_of(sb: &Sandbox, bearer: Option<&str>) -> Option<String> {
    let token = bearer?.strip_prefix("Bearer ")?;
    let t = sb.store.sandbox_token(&digest(token)).await.ok()??;
    (t.kind == "access" && t.revoked_at.is_none() && t.expires_at > sb.clock.unix()).then_some(t.account)
}

/// `POST /sandbox/revoke` (RFC 7009): revoking any token of a grant revokes the grant; unknown
/// tokens are not an error.
pub async fn revoke(sb: &Sandbox, authorization: Option<&str>, form: &[(String, String)]) -> Result<(), TokenFailure> {
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    authenticate_client(sb, authorization, get("client_id"), get("client_secret")).await?;
    let token = get("token").ok_or((400, "invalid_request"))?;
    if let Ok(Some(t)) = sb.store.sandbox_token(&digest(token)).await {
        sb.store.sandbox_revoke_grant(&t.grant_id, sb.clock.unix()).await.map_err(|_| (500, "server_error"))?;
    }
    Ok(())
}

/// `POST /sandbox/api/messages`: the demo's "notification".
pub async fn post_message(sb: &Sandbox, account: String, text: &str) -> Result<SandboxMessage, StoreError> {
    let message = SandboxMessage {
        id: new_id("msg"),
        account,
        text: text.chars().take(500).collect(),
        created_at: sb.clock.unix(),
    };
    sb.store.sandbox_insert_message(&message).await?;
    Ok(message)
}

/// The double-submit CSRF check of the consent form.
pub fn csrf_ok(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(c), Some(f)) if c.len() >= 32 => bool::from(c.as_bytes().ct_eq(f.as_bytes())),
        _ => false,
    }
}

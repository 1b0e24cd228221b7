//! A fake Slack that behaves as Slack documents it: OAuth v2 installs (`oauth/v2/authorize`,
//! `oauth.v2.access`) granting a bot token (`scope`), the installing user's token (`user_scope`,
//! inside `authed_user`), both, or an org-wide Enterprise Grid install (`team: null`); the
//! `incoming_webhook` of the chosen channel; Slack's own error strings with HTTP 200
//! (`invalid_code`, `bad_client_secret`, `invalid_client_id`, `bad_redirect_uri`,
//! `invalid_refresh_token`); token rotation (`xoxe.` tokens for 12 hours, single-use refresh
//! tokens with a short grace, at most two live access tokens per chain) or the non-rotating
//! default (non-expiring `xoxb`/`xoxp`, no refresh token); `auth.test`; `auth.revoke` (only the
//! token it is given); HTTP 429 with `Retry-After`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which token a chain issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bot,
    User,
}

/// What the fake grants and how it behaves; change it between calls with [`FakeSlack::with`].
#[derive(Debug)]
pub struct SlackState {
    pub client_id: String,
    pub client_secret: String,
    /// Token rotation on (`xoxe.` tokens, 12 hours, refresh tokens) or off (non-expiring).
    pub rotation: bool,
    /// The bot's scopes granted, `None`: no bot token (a user-only install).
    pub bot_scope: Option<String>,
    /// The installing user's scopes granted, `None`: no user token.
    pub user_scope: Option<String>,
    /// Install across the whole Enterprise Grid organization (`team: null`).
    pub org_wide: bool,
    /// The channel chosen for `incoming-webhook`: (name, id).
    pub webhook_channel: Option<(String, String)>,
    /// The webhook URL it hands out (a credential).
    pub webhook_url: String,
    /// The next `oauth.v2.access` answers HTTP 429 with this `Retry-After`.
    pub rate_limit: Option<u32>,
    /// The next `oauth.v2.access` calls answer `{"ok": false, "error": …}` with these, one each.
    /// After `fatal_error` the refresh happened anyway (the caller never heard of the new token).
    pub fail: VecDeque<&'static str>,
    /// Authorization codes are expired by the time they are exchanged.
    pub expire_codes: bool,
    /// How long a spent refresh token may still be used.
    pub grace: Duration,
    /// Every `oauth.v2.access` form, in order.
    pub token_calls: Vec<HashMap<String, String>>,
    /// Every `oauth/v2/authorize` query.
    pub authorize_calls: Vec<HashMap<String, String>>,
    /// Every token `auth.revoke` revoked.
    pub revoked: Vec<String>,
    /// The Slack user who installs (`authed_user.id`).
    pub installer: String,
    codes: HashMap<String, String>,
    /// Live access tokens: their kind.
    live: HashMap<String, Kind>,
    /// The live access tokens of each chain, oldest first (at most two with rotation).
    chains: HashMap<String, VecDeque<String>>,
    /// Refresh tokens: their chain, kind and when they were spent.
    refresh: HashMap<String, (String, Kind, Option<Instant>)>,
    issued: u64,
}

pub const TEAM: (&str, &str) = ("T0FAKE1", "Acme Deploys");
pub const ENTERPRISE: (&str, &str) = ("E0FAKE1", "Acme Grid");
pub const BOT_USER: &str = "U0BOT";
pub const INSTALLER: &str = "U0INSTALLER";
pub const APP: &str = "A0FAKEAPP";

/// The running fake.
#[derive(Clone)]
pub struct FakeSlack {
    pub url: String,
    pub state: Arc<Mutex<SlackState>>,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SlackState {
            client_id: "111.222".into(),
            client_secret: "slack-client-secret".into(),
            rotation: true,
            bot_scope: Some("chat:write,incoming-webhook".into()),
            user_scope: Some("search:read".into()),
            org_wide: false,
            webhook_channel: Some(("#deploys".into(), "C0DEPLOYS".into())),
            webhook_url: format!("https://hooks.slack.com/services/T0FAKE1/B0HOOK/{}", uuid::Uuid::new_v4().simple()),
            rate_limit: None,
            fail: VecDeque::new(),
            expire_codes: false,
            grace: Duration::from_secs(2),
            token_calls: Vec::new(),
            authorize_calls: Vec::new(),
            revoked: Vec::new(),
            installer: INSTALLER.into(),
            codes: HashMap::new(),
            live: HashMap::new(),
            chains: HashMap::new(),
            refresh: HashMap::new(),
            issued: 0,
        }));
        let app = Router::new()
            .route("/oauth/v2/authorize", get(authorize))
            .route("/api/oauth.v2.access", post(access))
            .route("/api/auth.test", post(auth_test))
            .route("/api/auth.revoke", post(auth_revoke))
            .with_state(state.clone());
        let url = super::serve_on_loopback(app).await;
        Self { url, state }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut SlackState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Whether Slack still accepts `token` (what `auth.test` answers).
    pub fn is_live(&self, token: &str) -> bool {
        self.with(|s| s.live.contains_key(token))
    }

    /// Revokes `token` at Slack's end (an admin, the user, a security tool), as `auth.revoke` would.
    pub fn kill(&self, token: &str) {
        self.with(|s| s.live.remove(token));
    }

    /// Refresh-grant calls so far.
    pub fn refresh_calls(&self) -> usize {
        self.with(|s| {
            s.token_calls.iter().filter(|c| c.get("grant_type").map(String::as_str) == Some("refresh_token")).count()
        })
    }

    /// A `latch.toml` provider table for this fake (the `slack` template with its URLs).
    pub fn provider(&self, key: &str, extra: &str) -> latch_server::providers::Provider {
        let text = format!(
            "template = \"slack\"\nclient_id = \"111.222\"\nauthorization_url = \"{u}/oauth/v2/authorize\"\n\
             token_url = \"{u}/api/oauth.v2.access\"\nrevocation_url = \"{u}/api/auth.revoke\"\n\
             validation_url = \"{u}/api/auth.test\"\n{extra}",
            u = self.url
        );
        let cfg: latch_server::providers::ProviderConfig = toml::from_str(&text).unwrap();
        latch_server::providers::Provider::from_config(key, cfg).unwrap()
    }
}

type Shared = State<Arc<Mutex<SlackState>>>;

/// Slack answers its failures with HTTP 200.
fn slack_error(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

async fn authorize(State(state): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    s.authorize_calls.push(q.clone());
    if q.get("client_id") != Some(&s.client_id) {
        return (StatusCode::BAD_REQUEST, "invalid_client_id").into_response();
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let mut url = url::Url::parse(&redirect).unwrap();
    let code = format!("slackcode-{}", uuid::Uuid::new_v4().simple());
    s.codes.insert(code.clone(), redirect.clone());
    url.query_pairs_mut().append_pair("code", &code).append_pair("state", q.get("state").map_or("", |v| v));
    (StatusCode::FOUND, [("location", url.to_string())]).into_response()
}

impl SlackState {
    /// Issues an access token (and with rotation a refresh token) on `chain`; with rotation a
    /// chain keeps at most two live access tokens, so the oldest is revoked.
    fn issue(&mut self, kind: Kind, chain: &str) -> (String, Option<String>, Option<i64>) {
        self.issued += 1;
        let n = self.issued;
        let letter = if kind == Kind::Bot { 'b' } else { 'p' };
        if !self.rotation {
            let token = format!("xox{letter}-{n}");
            self.live.insert(token.clone(), kind);
            return (token, None, None);
        }
        let token = format!("xoxe.xox{letter}-1-{n}");
        self.live.insert(token.clone(), kind);
        let tokens = self.chains.entry(chain.to_owned()).or_default();
        tokens.push_back(token.clone());
        while tokens.len() > 2 {
            if let Some(oldest) = tokens.pop_front() {
                self.live.remove(&oldest);
            }
        }
        let refresh = format!("xoxe-1-{letter}{n}");
        self.refresh.insert(refresh.clone(), (chain.to_owned(), kind, None));
        (token, Some(refresh), Some(43_200))
    }
}

fn with_token(mut body: Value, kind: Kind, token: (String, Option<String>, Option<i64>), scope: &str) -> Value {
    body["access_token"] = token.0.into();
    body["token_type"] = if kind == Kind::Bot { "bot" } else { "user" }.into();
    body["scope"] = scope.into();
    if let Some(refresh) = token.1 {
        body["refresh_token"] = refresh.into();
    }
    if let Some(expires_in) = token.2 {
        body["expires_in"] = expires_in.into();
    }
    body
}

async fn access(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    s.token_calls.push(form.clone());
    if let Some(retry_after) = s.rate_limit.take() {
        let body = json!({"ok": false, "error": "ratelimited"});
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after.to_string())], Json(body)).into_response();
    }
    if form.get("client_id") != Some(&s.client_id) {
        return slack_error("invalid_client_id");
    }
    if form.get("client_secret") != Some(&s.client_secret) {
        return slack_error("bad_client_secret");
    }
    let failure = s.fail.pop_front();
    if let Some(error) = failure.filter(|e| *e != "fatal_error") {
        return slack_error(error);
    }
    let team = if s.org_wide { Value::Null } else { json!({"id": TEAM.0, "name": TEAM.1}) };
    let enterprise = if s.org_wide { json!({"id": ENTERPRISE.0, "name": ENTERPRISE.1}) } else { Value::Null };
    let mut body = json!({"ok": true, "app_id": APP, "team": team, "enterprise": enterprise,
        "is_enterprise_install": s.org_wide, "authed_user": {"id": s.installer}});
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(redirect) = s.codes.remove(&code) else { return slack_error("invalid_code") };
            if s.expire_codes {
                return slack_error("invalid_code");
            }
            if form.get("redirect_uri") != Some(&redirect) {
                return slack_error("bad_redirect_uri");
            }
            let install = format!("install-{}", s.issued);
            if let Some(scope) = s.bot_scope.clone() {
                let token = s.issue(Kind::Bot, &format!("{install}-bot"));
                body = with_token(body, Kind::Bot, token, &scope);
                body["bot_user_id"] = BOT_USER.into();
            }
            if let Some(scope) = s.user_scope.clone() {
                let token = s.issue(Kind::User, &format!("{install}-user"));
                body["authed_user"] = with_token(body["authed_user"].take(), Kind::User, token, &scope);
            }
            if let Some((channel, id)) = s.webhook_channel.clone() {
                body["incoming_webhook"] = json!({"channel": channel, "channel_id": id,
                    "configuration_url": "https://acme.slack.com/services/B0HOOK", "url": s.webhook_url});
            }
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            let grace = s.grace;
            let Some((chain, kind, spent)) = s.refresh.get(&presented).cloned() else {
                return slack_error("invalid_refresh_token");
            };
            if spent.is_some_and(|at| at.elapsed() > grace) {
                return slack_error("invalid_refresh_token");
            }
            s.refresh.insert(presented, (chain.clone(), kind, spent.or(Some(Instant::now()))));
            let token = s.issue(kind, &chain);
            match kind {
                Kind::Bot => {
                    let scope = s.bot_scope.clone().unwrap_or_default();
                    body = with_token(body, kind, token, &scope);
                    body["bot_user_id"] = BOT_USER.into();
                }
                Kind::User => {
                    let scope = s.user_scope.clone().unwrap_or_default();
                    body["authed_user"] = with_token(body["authed_user"].take(), kind, token, &scope);
                }
            }
        }
        _ => return slack_error("invalid_grant_type"),
    }
    if let Some(error) = failure {
        return slack_error(error);
    }
    Json(body).into_response()
}

/// The token a Web API call presents: `Authorization: Bearer`, or a `token` form field.
fn presented(headers: &HeaderMap, body: &[u8]) -> String {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| form.get("token").cloned())
        .unwrap_or_default()
}

async fn auth_test(State(state): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let s = state.lock().unwrap();
    let token = presented(&headers, &body);
    match s.live.get(&token) {
        Some(kind) => {
            let user = if *kind == Kind::Bot { BOT_USER } else { INSTALLER };
            Json(json!({"ok": true, "team_id": TEAM.0, "team": TEAM.1, "user_id": user})).into_response()
        }
        None if token.is_empty() => slack_error("not_authed"),
        None => slack_error("invalid_auth"),
    }
}

/// Revokes only the token it is given (an access or a refresh token).
async fn auth_revoke(State(state): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let token = presented(&headers, &body);
    if s.live.remove(&token).is_some() || s.refresh.remove(&token).is_some() {
        s.revoked.push(token);
        Json(json!({"ok": true, "revoked": true})).into_response()
    } else {
        slack_error("invalid_auth")
    }
}

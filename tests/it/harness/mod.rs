//! The test harness: databases, a running server, a fake provider, log capture, bounded waits.

pub mod browser;
pub mod chrome;
pub mod cli;
pub mod db;
pub mod fake_provider;
pub mod fake_slack;
pub mod logs;
pub mod oidc;
pub mod skip;

use db::{Backend, TestDb};
use latch_server::AppState;
use latch_server::auth::api_keys;
use latch_server::clock::Clock;
use latch_server::config::Config;
use latch_server::providers::{Provider, ProviderConfig};
use latch_server::store::connections::{ConnectionRow, Owner};
use latch_server::store::new_id;
use serde_json::Value;
use std::time::Duration;

/// Generates `sqlite` and `postgres` variants of one async test body taking a [`Backend`].
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                ($body)($crate::harness::db::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if !$crate::harness::db::postgres_available() {
                    return;
                }
                ($body)($crate::harness::db::Backend::Postgres).await
            }
        }
    };
}
pub(crate) use both;

/// A fixed master key for tests (base64 of 32 bytes of 0x2a).
pub const MASTER_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// A running server with its database and an API key.
pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub api_key: String,
    pub db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts a server on `backend` with the default test configuration.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after letting `configure` adjust the configuration.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, backend, configure).await
    }

    /// Starts a server on a listener bound beforehand (when a provider must know our URL first).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        logs::install();
        let db = TestDb::create(backend).await;
        let addr = listener.local_addr().unwrap();
        let mut config = Config::for_tests(&db.url, MASTER_KEY);
        config.listen = addr;
        config.public_url = format!("http://127.0.0.1:{}", addr.port()).parse().unwrap();
        configure(&mut config);
        let state = AppState::build(config, Clock::default()).await.unwrap();
        let key = api_keys::generate();
        state.store.insert_api_key(&new_id("key"), "test-host", &key.hash, state.clock.unix()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            latch_server::serve(listener, server_state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url: format!("http://127.0.0.1:{}", addr.port()),
            state,
            http: reqwest::Client::new(),
            api_key: key.plaintext,
            db,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server (flushing usage) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    /// A request to the host API with the test API key.
    pub fn host(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.api_key)
    }

    /// POSTs JSON to the host API; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.host(reqwest::Method::POST, path).json(&body)).await
    }

    /// GETs from the host API; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.host(reqwest::Method::GET, path)).await
    }

    /// Calls host endpoint `E` (the shared description: method and path) with its path
    /// parameters and JSON body; returns status and body.
    pub async fn call<E: latch_shared::endpoint::Endpoint>(
        &self,
        params: &[&str],
        body: Option<&E::Request>,
    ) -> (u16, Value)
    where
        E::Request: serde::Serialize,
    {
        let method = reqwest::Method::from_bytes(E::METHOD.as_str().as_bytes()).unwrap();
        let request = self.host(method, &E::path(params));
        send(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    /// Adds a provider to the running registry is not possible; use `start_with` and this helper.
    pub fn provider(key: &str, token_url: &str, extra: &str) -> Provider {
        let text = format!(
            "client_id = \"client-{key}\"\nauthorization_url = \"{token_url}/authorize\"\ntoken_url = \"{token_url}/token\"\nscopes = [\"read\", \"write\"]\nidentity = {{ url = \"{token_url}/userinfo\", account_identifier = \"$.sub\", account_label = \"$.email\" }}\n{extra}"
        );
        let cfg: ProviderConfig = toml::from_str(&text).unwrap();
        Provider::from_config(key, cfg).unwrap()
    }

    /// Stores a connection with sealed tokens, as the connect flow would.
    pub async fn seed(&self, seed: Seed<'_>) -> ConnectionRow {
        seed_connection(&self.state.store, &self.state.vault, self.state.clock.unix(), seed).await
    }
}

/// Serves `app` on a fresh loopback port in the background (the fake providers); its base URL.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    url
}

/// Stores a connection with sealed tokens into any store (also one a child process serves).
pub async fn seed_connection(
    store: &latch_server::store::Store,
    vault: &latch_server::vault::Vault,
    now: i64,
    seed: Seed<'_>,
) -> ConnectionRow {
    let owner = Owner {
        provider: seed.provider,
        user_id: seed.user_id,
        organization_id: seed.organization_id.unwrap_or(""),
        account_id: seed.account_id,
    };
    let row = ConnectionRow::new(new_id("conn"), owner, now).with_tokens(vault, seed.access_token, seed.refresh_token);
    let row = ConnectionRow {
        account_label: Some(format!("{} at {}", seed.account_id, seed.provider)),
        status: seed.status.parse().unwrap(),
        scopes: "read write".to_owned().into(),
        access_token_expires_at: seed.expires_in.map(|s| now + s),
        ..row
    };
    store.insert_connection(&row, None).await.unwrap();
    row
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What to seed.
#[derive(Debug, Clone, Copy)]
pub struct Seed<'a> {
    pub provider: &'a str,
    pub user_id: &'a str,
    pub organization_id: Option<&'a str>,
    pub account_id: &'a str,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub expires_in: Option<i64>,
    pub status: &'a str,
}

impl Default for Seed<'_> {
    fn default() -> Self {
        Self {
            provider: "acme",
            user_id: "alice",
            organization_id: None,
            account_id: "acct-1",
            access_token: "at-default",
            refresh_token: Some("rt-default"),
            expires_in: Some(3600),
            status: "active",
        }
    }
}

/// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A unique secret-looking string that tests search for in logs, databases and bodies.
pub fn canary(kind: &str) -> String {
    format!("CANARY{kind}{}", uuid::Uuid::new_v4().simple())
}

/// Asserts an error envelope.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "status of {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body {}", got.1);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    // A message is for a person: a line of text, not the code again, a Rust value or internals.
    assert!(!message.is_empty() && message != code && !message.contains('\n'), "message in {}", got.1);
    for internal in ["{ ", "Error(", "sqlx", "panicked", "backtrace", "SqliteError", "PgDatabaseError"] {
        assert!(!message.contains(internal), "message shows internals ({internal}): {}", got.1);
    }
}

/// [`assert_error`], and the message says `says`.
pub fn assert_error_says(got: &(u16, Value), status: u16, code: &str, says: &str) {
    assert_error(got, status, code);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "expected the message to say {says:?}: {message}");
}

/// Polls `check` every 50 ms until it returns true, for at most `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Stores a provider's client secret sealed, as `latch secret add` does.
    pub async fn set_client_secret(&self, provider: &str, secret: &str) {
        let sealed = self.state.vault.seal_str(latch_server::vault::Sealed::ClientSecret.slot(provider), secret);
        self.state.store.put_client_secret(provider, &sealed, self.state.clock.unix()).await.unwrap();
    }

    /// A server with the fake provider configured as `acme` (with revocation) and its secret.
    pub async fn with_fake(backend: Backend) -> (Self, fake_provider::FakeProvider) {
        Self::with_fake_configured(backend, |_| {}).await
    }

    /// [`TestApp::with_fake`], after letting `configure` adjust the configuration.
    pub async fn with_fake_configured(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> (Self, fake_provider::FakeProvider) {
        let fake = fake_provider::FakeProvider::start().await;
        let revoke = format!("revocation_url = \"{}/revoke\"\ntoken_auth_method = \"basic\"", fake.url);
        let acme = Self::provider("acme", &fake.url, &revoke);
        let plain = Self::provider("plain", &fake.url, "");
        let app = Self::start_with(backend, |c| {
            c.providers = vec![acme, plain];
            c.allowed_origins = vec!["http://127.0.0.1:4000".into()];
            configure(c);
        })
        .await;
        app.set_client_secret("acme", "acme-client-secret").await;
        app.set_client_secret("plain", "plain-client-secret").await;
        (app, fake)
    }
}

/// The host page origin every test widget token is bound to.
pub const HOST_ORIGIN: &str = "http://127.0.0.1:4000";

impl TestApp {
    /// A widget token for a user, bound to [`HOST_ORIGIN`].
    pub async fn widget_token(&self, user: &str, org: Option<&str>, providers: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/v1/widget-tokens",
                serde_json::json!({"user_id": user, "organization_id": org, "providers": providers, "allowed_origin": HOST_ORIGIN}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A widget API call with a widget token.
    pub async fn widget(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req =
            self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token).header("origin", HOST_ORIGIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        send(req).await
    }

    /// Starts a flow through the widget API; returns (flow_id, authorize_url).
    pub async fn connect(&self, token: &str, body: Value) -> (String, String) {
        let (status, started) = self.widget(reqwest::Method::POST, "/widget/v1/connect", token, Some(body)).await;
        assert_eq!(status, 201, "{started}");
        (started["flow_id"].as_str().unwrap().to_owned(), started["authorize_url"].as_str().unwrap().to_owned())
    }

    /// Connects `provider` for `user` end to end in a fresh browser.
    pub async fn connect_flow(&self, user: &str, provider: &str) -> browser::FlowRun {
        let token = self.widget_token(user, None, &[provider]).await;
        let (_, authorize) = self.connect(&token, serde_json::json!({"provider": provider})).await;
        browser::Browser::new().run(&self.url, &authorize).await
    }

    /// Activity entries (newest first) as JSON.
    pub async fn activity(&self, query: &str) -> Vec<Value> {
        let (_, body) = self.get(&format!("/v1/activity?limit=200&{query}")).await;
        body["data"].as_array().unwrap().clone()
    }
}

/// A child process (a `latch serve`), killed with the test whatever happens.
pub struct KilledOnDrop(pub std::process::Child);

impl KilledOnDrop {
    /// Spawns `serve` (a `latch serve` command) and waits until `{public}/readyz` answers 200.
    pub async fn serving(mut serve: std::process::Command, public: &str) -> Self {
        let server = Self(serve.spawn().unwrap());
        let http = reqwest::Client::new();
        let ready = || async { http.get(format!("{public}/readyz")).send().await.is_ok_and(|r| r.status() == 200) };
        assert!(wait_until(Duration::from_secs(20), ready).await, "latch serve did not start");
        server
    }

    /// Sends SIGTERM and collects the exit status and output, or `None` when the process has
    /// not exited within `limit` (it is then killed). The output is read meanwhile, so a full
    /// pipe cannot hold the process up.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::Output> {
        let pid = self.0.id().to_string();
        let signal = |name: &str| std::process::Command::new("kill").args([name, &pid]).status().unwrap().success();
        assert!(signal("-TERM"));
        let placeholder = std::process::Command::new("true").spawn().unwrap();
        let child = std::mem::replace(&mut self.0, placeholder);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = rx.recv_timeout(limit).ok().map(Result::unwrap);
        if output.is_none() {
            signal("-KILL");
        }
        output
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free a moment ago, for a `latch serve` process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `latch` binary built by `cargo build -p latch-server` (the README's test command does).
pub fn latch_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("latch");
    assert!(bin.exists(), "{} is missing: run `cargo build -p latch-server` first (tests/run does)", bin.display());
    bin
}

/// A `latch` command for a test directory: a clean environment with the test master key.
pub fn latch_command(dir: &std::path::Path, database_url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(latch_binary());
    cmd.current_dir(dir)
        .env_clear()
        .env("LATCH_DATABASE_URL", database_url)
        .env("LATCH_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "warn");
    cmd
}

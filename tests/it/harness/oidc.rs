//! The real authorization server of the tests: `tests/oidc/server.mjs` (panva/oidc-provider)
//! as a child process on loopback, with a control API for accounts, outages and counters.

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running oidc-provider.
pub struct Oidc {
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

impl Oidc {
    /// Starts it for a client whose only redirect URI is `redirect_uri`.
    pub fn start(redirect_uri: &str, client_secret: &str, access_token_ttl: u32) -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc");
        assert!(dir.join("node_modules/oidc-provider").exists(), "run `npm ci --prefix tests/oidc` (tests/run does)");
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg(redirect_uri)
            .arg(client_secret)
            .arg(access_token_ttl.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = rx.recv_timeout(deadline - Instant::now()).expect("oidc-provider did not start within 20 s");
        Self { url: format!("http://127.0.0.1:{port}"), child, http: reqwest::Client::new() }
    }

    async fn control(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.url)).send().await.unwrap().json().await.unwrap()
    }

    /// The account the next login signs in as.
    pub async fn set_account(&self, id: &str) {
        self.control(&format!("/_test/account?id={id}")).await;
    }

    /// Token-endpoint counters: `refresh_token`, `authorization_code`, `errors`, `revoked_grants`,
    /// `injected_failures` (the 500s of [`Oidc::fail_next`]).
    pub async fn stats(&self) -> Value {
        self.control("/_test/stats").await
    }

    /// The next `n` token requests fail with HTTP 500.
    pub async fn fail_next(&self, n: u32) {
        self.control(&format!("/_test/fail?n={n}")).await;
    }

    /// Holds every token request this long before the provider processes it.
    pub async fn delay(&self, ms: u32) {
        self.control(&format!("/_test/delay?ms={ms}")).await;
    }

    /// Holds every token answer this long after the provider produced it (and rotated).
    pub async fn hold(&self, ms: u32) {
        self.control(&format!("/_test/hold?ms={ms}")).await;
    }

    /// Latch's provider table for this server.
    pub fn provider_toml(&self) -> String {
        format!(
            "client_id = \"latch\"\nauthorization_url = \"{u}/auth\"\ntoken_url = \"{u}/token\"\nrevocation_url = \"{u}/token/revocation\"\n\
             issuer = \"{u}\"\nscopes = [\"openid\", \"email\", \"offline_access\"]\ntoken_auth_method = \"basic\"\npkce = true\n\
             authorization_url_extras = {{ prompt = \"consent\" }}\n\
             identity = {{ url = \"{u}/me\", account_identifier = \"$.sub\", account_label = \"$.email\" }}\n",
            u = self.url
        )
    }
}

impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

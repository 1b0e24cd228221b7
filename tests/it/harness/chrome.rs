//! Headless Chromium through chromedriver and fantoccini, with find / act / check helpers for
//! the widget (which lives in a shadow root) and a screenshot on failure.

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A browser session with its own chromedriver and a fresh profile.
pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    name: String,
    done: bool,
}

/// Whether Chromium and chromedriver are installed; when not, fails in CI and records a skip
/// elsewhere (see `harness::skip`).
pub fn available() -> bool {
    let ok =
        std::path::Path::new("/usr/bin/chromedriver").exists() && std::path::Path::new("/usr/bin/chromium").exists();
    if !ok {
        super::skip::missing("Chromium", "install the chromium and chromium-driver packages (tests/run does)");
    }
    ok
}

impl Chrome {
    /// Starts chromedriver and a headless Chromium session named `name` (for screenshots).
    pub async fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1100,900", format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps_clone(&caps)).connect(&url).await {
                Ok(client) => {
                    return Self { client, driver, _profile: profile, name: name.to_owned(), done: false };
                }
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start: {last:?}");
    }

    /// Marks the scenario as passed (no failure screenshot) and closes the browser.
    pub async fn finish(mut self) {
        self.done = true;
        let _ = self.client.clone().close().await;
    }

    /// Saves a screenshot to `target/screenshots/<file>`.
    pub async fn screenshot(&self, file: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let dir = screenshot_dir();
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(file), png);
        }
    }

    /// Runs JavaScript in the current page.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `check` (JavaScript returning a boolean) until true, for at most `seconds`.
    pub async fn wait_js(&self, what: &str, check: &str, seconds: u64) {
        for _ in 0..seconds * 10 {
            if self.client.execute(check, vec![]).await.ok().and_then(|v| v.as_bool()) == Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.screenshot(&format!("{}-timeout.png", self.name)).await;
        panic!("timed out waiting for {what}");
    }

    /// Waits until the page's own text (not the widget's) contains `needle`.
    pub async fn wait_page_text(&self, needle: &str, seconds: u64) {
        let check = format!(
            "return !!document.body && document.body.textContent.indexOf({}) >= 0;",
            serde_json::to_string(needle).unwrap()
        );
        self.wait_js(&format!("page text {needle:?}"), &check, seconds).await;
    }

    /// Clicks Approve on the sandbox consent page in the current window; on a timeout, says
    /// where the window is and what it shows.
    pub async fn approve_consent(&self) {
        match self.client.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css("button.approve")).await {
            Ok(button) => button.click().await.unwrap(),
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let text = self.js("return document.body ? document.body.textContent : '';").await;
                self.screenshot(&format!("{}-no-consent.png", self.name)).await;
                panic!("no consent page ({e}): at {url}: {text}");
            }
        }
    }

    /// The widget's text (inside its shadow root).
    pub async fn widget_text(&self) -> String {
        self.js("var h = document.querySelector('#integrations'); return h && h.shadowRoot ? h.shadowRoot.textContent : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the widget's text contains `needle`.
    pub async fn wait_widget_text(&self, needle: &str, seconds: u64) {
        let check = format!(
            "var h = document.querySelector('#integrations'); return !!(h && h.shadowRoot && h.shadowRoot.textContent.indexOf({}) >= 0);",
            serde_json::to_string(needle).unwrap()
        );
        self.wait_js(&format!("widget text {needle:?}"), &check, seconds).await;
    }

    /// Clicks a widget button by its visible text (a real WebDriver click: a user gesture).
    pub async fn click_widget_button(&self, text: &str) {
        let host = self.client.find(Locator::Css("#integrations")).await.unwrap();
        let root = host.shadow_root().await.unwrap();
        for button in root.find_all(Locator::Css("button")).await.unwrap() {
            if button.text().await.unwrap_or_default().trim().eq_ignore_ascii_case(text) {
                button.click().await.unwrap();
                return;
            }
        }
        self.screenshot(&format!("{}-no-button.png", self.name)).await;
        panic!("no widget button {text:?} in: {}", self.widget_text().await);
    }
}

fn caps_clone(caps: &fantoccini::wd::Capabilities) -> fantoccini::wd::Capabilities {
    caps.clone()
}

/// Where screenshots go.
pub fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/screenshots")
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if !self.done {
            // A failed scenario: keep a picture of where it stopped.
            let client = self.client.clone();
            let path = screenshot_dir().join(format!("{}-failure.png", self.name));
            let _ = std::fs::create_dir_all(screenshot_dir());
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async move {
                    if let Ok(png) = tokio::time::timeout(Duration::from_secs(5), client.screenshot())
                        .await
                        .unwrap_or(Err(fantoccini::error::CmdError::NotJson(String::new())))
                    {
                        let _ = std::fs::write(path, png);
                    }
                    // Ending the session closes Chromium; killing chromedriver alone would not.
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
                });
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

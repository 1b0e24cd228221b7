//! Configuration: `latch.toml` (every key optional, unknown keys refused) overridden by
//! `LATCH_*` environment variables. Invalid configuration fails at start with the field's name.

use crate::providers::{Provider, ProviderConfig, is_loopback};
use crate::vault::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// The defaults, declared once: a missing key in the file, an empty file and the tests'
/// configuration all start from these.
mod defaults {
    pub fn access_token_skew_seconds() -> i64 {
        60
    }
    pub fn refresh_window_seconds() -> i64 {
        600
    }
    pub fn validation_interval_seconds() -> i64 {
        86_400
    }
    pub fn refresh_caller_wait_ms() -> u64 {
        1500
    }
    pub fn max_pending_flows_per_user() -> i64 {
        10
    }
    pub fn sandbox_access_token_ttl_seconds() -> i64 {
        300
    }
    pub fn background_refresh() -> bool {
        true
    }
    pub fn tombstone_retention_days() -> i64 {
        365
    }
    pub fn demo_listen() -> String {
        "127.0.0.1:8081".into()
    }
    pub fn data_dir() -> std::path::PathBuf {
        "latch-data".into()
    }
}

/// The file as written; see the README's configuration reference. Keys with a fixed default
/// get it from `defaults`; the others are `None` when absent, because the environment or the
/// mode (demo) decides them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    /// `text` (default) or `json` (one JSON object a line); `LATCH_LOG_FORMAT` overrides it.
    pub log_format: Option<String>,
    /// A second listener for the host API and `/metrics`, kept off the public network.
    pub admin_listen: Option<String>,
    pub public_url: Option<String>,
    pub database_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    /// Older master keys that still open envelopes until `latch keys rotate` re-seals them.
    pub previous_master_key_files: Option<Vec<PathBuf>>,
    pub allowed_origins: Option<Vec<String>>,
    pub demo: Option<bool>,
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "defaults::access_token_skew_seconds")]
    pub access_token_skew_seconds: i64,
    /// Default: on in demo mode only.
    pub allow_private_webhook_targets: Option<bool>,
    /// Start even when connections belong to a provider no longer configured.
    #[serde(default)]
    pub allow_orphaned_providers: bool,
    #[serde(default = "defaults::sandbox_access_token_ttl_seconds")]
    pub sandbox_access_token_ttl_seconds: i64,
    pub widget_dir: Option<PathBuf>,
    #[serde(default = "defaults::demo_listen")]
    pub demo_listen: String,
    #[serde(default = "defaults::background_refresh")]
    pub background_refresh: bool,
    #[serde(default = "defaults::refresh_window_seconds")]
    pub refresh_window_seconds: i64,
    #[serde(default = "defaults::validation_interval_seconds")]
    pub validation_interval_seconds: i64,
    #[serde(default = "defaults::refresh_caller_wait_ms")]
    pub refresh_caller_wait_ms: u64,
    #[serde(default = "defaults::max_pending_flows_per_user")]
    pub max_pending_flows_per_user: i64,
    #[serde(default = "defaults::tombstone_retention_days")]
    pub tombstone_retention_days: i64,
    #[serde(default)]
    pub provider_health: HealthSettings,
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl FileConfig {
    /// The file's relative paths taken as relative to `dir`, the file's directory: a
    /// configuration means the same wherever `latch` is started from. (Paths from the
    /// environment stay relative to the working directory.)
    pub fn relative_to(mut self, dir: &Path) -> Self {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        rebase(&mut self.data_dir);
        self.master_key_file.iter_mut().for_each(rebase);
        self.previous_master_key_files.iter_mut().flatten().for_each(rebase);
        self.widget_dir.iter_mut().for_each(rebase);
        if let Some(url) = &self.database_url
            && let Some((file, query)) = sqlite_file(url)
            && file.is_relative()
        {
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            self.database_url = Some(format!("sqlite://{}{query}", dir.join(file).display()));
        }
        self
    }
}

/// The file of a SQLite `database_url` (`sqlite://path` or `sqlite:path`) and its query, if
/// any; `None` for PostgreSQL and for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<(&Path, Option<&str>)> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, query) = rest.split_once('?').map_or((rest, None), |(f, q)| (f, Some(q)));
    (!file.is_empty() && file != ":memory:").then(|| (Path::new(file), query))
}

impl Default for FileConfig {
    /// An empty file.
    fn default() -> Self {
        Self {
            log_format: None,
            listen: None,
            admin_listen: None,
            public_url: None,
            database_url: None,
            master_key_file: None,
            previous_master_key_files: None,
            allowed_origins: None,
            demo: None,
            data_dir: defaults::data_dir(),
            access_token_skew_seconds: defaults::access_token_skew_seconds(),
            allow_private_webhook_targets: None,
            allow_orphaned_providers: false,
            sandbox_access_token_ttl_seconds: defaults::sandbox_access_token_ttl_seconds(),
            widget_dir: None,
            demo_listen: defaults::demo_listen(),
            background_refresh: defaults::background_refresh(),
            refresh_window_seconds: defaults::refresh_window_seconds(),
            validation_interval_seconds: defaults::validation_interval_seconds(),
            refresh_caller_wait_ms: defaults::refresh_caller_wait_ms(),
            max_pending_flows_per_user: defaults::max_pending_flows_per_user(),
            tombstone_retention_days: defaults::tombstone_retention_days(),
            provider_health: HealthSettings::default(),
            rate_limits: RateLimitSettings::default(),
            http: HttpSettings::default(),
            providers: BTreeMap::new(),
        }
    }
}

/// `[http]`: what one listener accepts (see `listener` and `api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A request that takes longer answers `408 request_timeout` (work that must finish, such
    /// as a refresh or a code exchange, runs on in its own task).
    pub request_timeout_seconds: u64,
    /// Requests served at once; one more answers `503 server_busy` at once.
    pub max_concurrent_requests: u32,
    /// Open connections at once; further ones wait in the listen queue.
    pub max_connections: u32,
    /// A client must send its request headers within this time (slow-loris defence).
    pub header_read_timeout_seconds: u64,
    /// On SIGTERM or SIGINT: how long the requests in flight, then the workers' last writes
    /// (usage), then the refreshes and code exchanges under way may each take before the
    /// process exits anyway.
    pub shutdown_grace_seconds: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout_seconds: 30,
            max_concurrent_requests: 4096,
            max_connections: 8192,
            header_read_timeout_seconds: 10,
            shutdown_grace_seconds: 10,
        }
    }
}

impl HttpSettings {
    fn check(self) -> Result<Self, ConfigError> {
        within("http.request_timeout_seconds", self.request_timeout_seconds, 1, 3600)?;
        within("http.max_concurrent_requests", self.max_concurrent_requests, 1, 1_000_000)?;
        within("http.max_connections", self.max_connections, 1, 1_000_000)?;
        within("http.header_read_timeout_seconds", self.header_read_timeout_seconds, 1, 600)?;
        within("http.shutdown_grace_seconds", self.shutdown_grace_seconds, 1, 3600)?;
        Ok(self)
    }
}

/// `[rate_limits]`: token buckets per replica (see `limits`). The defaults stop a runaway client
/// without touching honest traffic (the benchmark's 60 000 requests a second on one key pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Host API requests per API key per second…
    pub host_per_second: u32,
    /// …and the burst above that rate.
    pub host_burst: u32,
    /// Widget API requests per widget user per minute (also the burst).
    pub widget_user_per_minute: u32,
    /// Widget API requests per client address per minute (also the burst).
    pub widget_ip_per_minute: u32,
    /// `/oauth` pages per client address per minute (also the burst).
    pub oauth_ip_per_minute: u32,
    /// Outbound refreshes per provider per second…
    pub provider_per_second: u32,
    /// …and the burst above that rate (a refresh storm of this many goes out at once).
    pub provider_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            host_per_second: 100_000,
            host_burst: 200_000,
            widget_user_per_minute: 300,
            widget_ip_per_minute: 1200,
            oauth_ip_per_minute: 300,
            provider_per_second: 100,
            provider_burst: 500,
        }
    }
}

impl RateLimitSettings {
    fn check(self) -> Result<Self, ConfigError> {
        let values = [
            ("host_per_second", self.host_per_second),
            ("host_burst", self.host_burst),
            ("widget_user_per_minute", self.widget_user_per_minute),
            ("widget_ip_per_minute", self.widget_ip_per_minute),
            ("oauth_ip_per_minute", self.oauth_ip_per_minute),
            ("provider_per_second", self.provider_per_second),
            ("provider_burst", self.provider_burst),
        ];
        match values.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(ConfigError(format!("rate_limits.{key}: must be at least 1"))),
            None => Ok(self),
        }
    }
}

/// `[provider_health]`: the thresholds of the per-provider circuit breaker and incident guard
/// (see `oauth::provider_health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Consecutive transient failures that open a provider's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one probe is let through.
    pub breaker_open_seconds: i64,
    /// `invalid_grant` answers within the window before further ones stop flipping connections.
    pub incident_invalid_grants: u32,
    /// …and the share of the window's refresh outcomes they must make up, in percent.
    pub incident_percent: u32,
    /// The incident guard's sliding window.
    pub incident_window_seconds: i64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            breaker_failures: 5,
            breaker_open_seconds: 30,
            incident_invalid_grants: 10,
            incident_percent: 50,
            incident_window_seconds: 300,
        }
    }
}

impl HealthSettings {
    fn check(self) -> Result<Self, ConfigError> {
        within("provider_health.breaker_failures", self.breaker_failures, 1, 1000)?;
        within("provider_health.breaker_open_seconds", self.breaker_open_seconds, 1, 3600)?;
        within("provider_health.incident_invalid_grants", self.incident_invalid_grants, 1, 100_000)?;
        within("provider_health.incident_percent", self.incident_percent, 1, 100)?;
        within("provider_health.incident_window_seconds", self.incident_window_seconds, 10, 86_400)?;
        Ok(self)
    }
}

/// A configuration problem; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `LATCH_MASTER_KEY` (base64).
    Inline(Secret),
    /// A file holding the base64 key.
    File(PathBuf),
    /// Demo mode: generated into this file when missing.
    GenerateInto(PathBuf),
    /// Not configured.
    Missing,
}

/// A database URL whose `Display`/`Debug` hide any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
    /// The full URL, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                f.write_str(url.as_str())
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// With it, `listen` serves what browsers and providers reach and this listener the host
    /// API and `/metrics`; without it, `listen` serves everything.
    pub admin_listen: Option<SocketAddr>,
    /// Where browsers and providers reach this server (`redirect_uri` base, JWT issuer).
    pub public_url: Url,
    pub database_url: DatabaseUrl,
    pub master_key: MasterKeySource,
    /// Older keys (`LATCH_PREVIOUS_MASTER_KEYS`, comma-separated, or `previous_master_key_files`).
    pub previous_master_keys: Vec<MasterKeySource>,
    /// Origins (scheme://host[:port]) that may embed the widget.
    pub allowed_origins: Vec<String>,
    /// Demo mode: development key, sandbox provider, demo page.
    pub demo: bool,
    /// How log lines are written.
    pub log_format: crate::telemetry::LogFormat,
    /// Where the default SQLite file and the demo key live.
    pub data_dir: PathBuf,
    /// Refresh tokens this many seconds before they expire (capped at half their lifetime).
    pub access_token_skew_seconds: i64,
    /// Webhook targets on private addresses (tests, the demo).
    pub allow_private_webhook_targets: bool,
    /// Start even when connections belong to a provider no longer configured.
    pub allow_orphaned_providers: bool,
    /// Lifetime of the sandbox provider's access tokens (demo mode).
    pub sandbox_access_token_ttl_seconds: i64,
    /// Trunk's output directory, served under /widget/; without it, the widget built into the
    /// binary (or `./target/widget-dist`).
    pub widget_dir: Option<PathBuf>,
    /// Where `latch demo` serves its demo host app (a second origin).
    pub demo_listen: SocketAddr,
    /// Run the proactive refresher and re-validation in the background.
    pub background_refresh: bool,
    /// The refresher renews tokens expiring within this many seconds.
    pub refresh_window_seconds: i64,
    /// Long-lived tokens are re-validated at the identity endpoint this often.
    pub validation_interval_seconds: i64,
    /// How long a caller waits for a refresh in flight before it gets the still-valid token or
    /// `503 provider_unavailable`; the refresh itself runs on to its end.
    pub refresh_caller_wait_ms: u64,
    /// Connect attempts one user may have under way at once; one more answers
    /// `429 too_many_pending_flows`.
    pub max_pending_flows_per_user: i64,
    /// Tombstones of deleted connections are kept this many days, then purged.
    pub tombstone_retention_days: u32,
    /// Circuit breaker and incident guard thresholds.
    pub provider_health: HealthSettings,
    /// Token buckets per API key, widget user, client address and provider.
    pub rate_limits: RateLimitSettings,
    /// Request timeout and connection limits of the listener.
    pub http: HttpSettings,
    pub providers: Vec<Provider>,
}

impl Config {
    /// Reads `path` (if any) and applies environment overrides from `env`.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>, demo: bool) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                let file = toml::from_str::<FileConfig>(&text).map_err(|e| {
                    ConfigError(format!("{}: {}", path.display(), e.message().trim_end())).with_span(e.span(), &text)
                })?;
                let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
                file.relative_to(path.parent().unwrap_or(Path::new("/")))
            }
            None => FileConfig::default(),
        };
        Self::resolve(file, env, demo)
    }

    /// Builds the configuration from a parsed file and the environment.
    pub fn resolve(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
        demo_flag: bool,
    ) -> Result<Self, ConfigError> {
        let demo = demo_flag || file.demo.unwrap_or(false);
        let listen_text = env("LATCH_LISTEN").or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| ConfigError(format!("listen: {listen_text:?} is not an address such as 127.0.0.1:8080")))?;
        let public_text = env("LATCH_PUBLIC_URL").or(file.public_url);
        let public_url = match public_text {
            Some(text) => parse_public_url(&text)?,
            // The demo's host app runs on 127.0.0.1: Latch answers as localhost, another origin.
            None if demo && listen.ip().is_loopback() => {
                parse_public_url(&format!("http://localhost:{}", listen.port()))?
            }
            // Reachable from elsewhere, Latch must be told the address browsers and providers use:
            // it becomes the OAuth redirect URI and the widget tokens' issuer.
            None if !listen.ip().is_loopback() => {
                return Err(ConfigError(format!(
                    "public_url: Latch listens on {listen}, beyond this machine, so set public_url \
                     (LATCH_PUBLIC_URL) to the https address browsers and providers reach it at, \
                     e.g. https://latch.example.com"
                )));
            }
            None => {
                let host = if listen.ip().is_unspecified() { "localhost".to_owned() } else { listen.ip().to_string() };
                let host = if listen.is_ipv6() && !listen.ip().is_unspecified() { format!("[{host}]") } else { host };
                parse_public_url(&format!("http://{host}:{}", listen.port()))?
            }
        };
        let data_dir = file.data_dir;
        let database_url = env("LATCH_DATABASE_URL").or(file.database_url).unwrap_or_else(|| {
            let path = std::path::absolute(data_dir.join("latch.db")).unwrap_or_else(|_| data_dir.join("latch.db"));
            format!("sqlite://{}", path.display())
        });
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            return Err(ConfigError(
                "database_url: expected sqlite:///path/to/file.db or postgres://user@host/db".into(),
            ));
        }
        if !database_url.starts_with("sqlite:")
            && Url::parse(&database_url).is_ok_and(|u| u.path().trim_start_matches('/').is_empty())
        {
            // PostgreSQL would otherwise use the connecting user's default database.
            return Err(ConfigError(
                "database_url: name the database, e.g. postgres://latch@db.example.com/latch".into(),
            ));
        }
        let master_key = if let Some(inline) = env("LATCH_MASTER_KEY") {
            MasterKeySource::Inline(Secret::new(inline))
        } else if let Some(path) = env("LATCH_MASTER_KEY_FILE").map(PathBuf::from).or(file.master_key_file) {
            MasterKeySource::File(path)
        } else if demo {
            MasterKeySource::GenerateInto(data_dir.join("master.key"))
        } else {
            MasterKeySource::Missing
        };
        let mut previous_master_keys: Vec<MasterKeySource> = env("LATCH_PREVIOUS_MASTER_KEYS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| MasterKeySource::Inline(Secret::new(k)))
                    .collect()
            })
            .unwrap_or_default();
        previous_master_keys
            .extend(file.previous_master_key_files.unwrap_or_default().into_iter().map(MasterKeySource::File));
        let admin_listen = env("LATCH_ADMIN_LISTEN")
            .or(file.admin_listen)
            .map(|text| {
                text.parse::<SocketAddr>().map_err(|_| {
                    ConfigError(format!("admin_listen: {text:?} is not an address such as 127.0.0.1:9090"))
                })
            })
            .transpose()?;
        if admin_listen == Some(listen) && listen.port() != 0 {
            return Err(ConfigError("admin_listen: must differ from listen".into()));
        }
        let demo_text = file.demo_listen;
        let demo_listen: SocketAddr = demo_text
            .parse()
            .map_err(|_| ConfigError(format!("demo_listen: {demo_text:?} is not an address such as 127.0.0.1:8081")))?;
        let log_text = env("LATCH_LOG_FORMAT").or(file.log_format).unwrap_or_else(|| "text".to_owned());
        let log_format = log_text
            .parse()
            .map_err(|()| ConfigError(format!("log_format: {log_text:?} is neither \"text\" nor \"json\"")))?;
        let widget_dir = env("LATCH_WIDGET_DIR").map(PathBuf::from).or(file.widget_dir);
        let mut allowed_origins = file
            .allowed_origins
            .unwrap_or_default()
            .iter()
            .map(|o| normalize_origin(o).map_err(|m| ConfigError(format!("allowed_origins: {o:?} {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if demo {
            let origin = format!("http://{demo_listen}");
            if !allowed_origins.contains(&origin) {
                allowed_origins.push(origin);
            }
        }
        let skew = file.access_token_skew_seconds;
        within("access_token_skew_seconds", skew, 0, 3600)?;
        let window = file.refresh_window_seconds;
        within("refresh_window_seconds", window, 60, 86_400)?;
        let validation = file.validation_interval_seconds;
        within("validation_interval_seconds", validation, 60, 30 * 86_400)?;
        let caller_wait = file.refresh_caller_wait_ms;
        within("refresh_caller_wait_ms", caller_wait, 100, 60_000)?;
        let provider_health = file.provider_health.check()?;
        let rate_limits = file.rate_limits.check()?;
        let http = file.http.check()?;
        let max_pending = file.max_pending_flows_per_user;
        within("max_pending_flows_per_user", max_pending, 1, 1000)?;
        let retention = file.tombstone_retention_days;
        within("tombstone_retention_days", retention, 0, 36_500)?;
        let sandbox_ttl = file.sandbox_access_token_ttl_seconds;
        within("sandbox_access_token_ttl_seconds", sandbox_ttl, 5, 86_400)?;
        let providers = file
            .providers
            .into_iter()
            .map(|(key, cfg)| Provider::from_config(&key, cfg).map_err(|e| ConfigError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            listen,
            admin_listen,
            public_url,
            database_url: DatabaseUrl::new(database_url),
            master_key,
            previous_master_keys,
            allowed_origins,
            demo,
            log_format,
            data_dir,
            access_token_skew_seconds: skew,
            allow_private_webhook_targets: file.allow_private_webhook_targets.unwrap_or(demo),
            allow_orphaned_providers: file.allow_orphaned_providers,
            sandbox_access_token_ttl_seconds: sandbox_ttl,
            widget_dir,
            demo_listen,
            background_refresh: file.background_refresh,
            refresh_window_seconds: window,
            validation_interval_seconds: validation,
            refresh_caller_wait_ms: caller_wait,
            max_pending_flows_per_user: max_pending,
            tombstone_retention_days: u32::try_from(retention).unwrap_or(365),
            provider_health,
            rate_limits,
            http,
            providers,
        })
    }

    #[allow(clippy::expect_used)]
    /// A complete configuration for tests: the defaults of an empty file, on loopback port 0,
    /// the given database and an inline key; private webhook targets allowed (receivers run on
    /// loopback) and no background refresh (tests drive the rounds themselves).
    pub fn for_tests(database_url: &str, master_key_base64: &str) -> Self {
        let file = FileConfig { demo_listen: "127.0.0.1:0".into(), ..FileConfig::default() };
        let env = |var: &str| match var {
            "LATCH_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "LATCH_PUBLIC_URL" => Some("http://127.0.0.1:0".to_owned()),
            "LATCH_DATABASE_URL" => Some(database_url.to_owned()),
            "LATCH_MASTER_KEY" => Some(master_key_base64.to_owned()),
            _ => None,
        };
        // The defaults pass the same checks as any file (`tests::the_defaults_resolve`).
        let config = Self::resolve(file, env, false).expect("the defaults resolve");
        Self { allow_private_webhook_targets: true, background_refresh: false, ..config }
    }
}

impl ConfigError {
    fn with_span(self, span: Option<std::ops::Range<usize>>, text: &str) -> Self {
        // For unknown fields toml reports the enclosing table's span: find the key itself.
        let unknown = self.0.split('`').nth(1).filter(|_| self.0.contains("unknown field"));
        if let Some(key) = unknown
            && let Some(index) = text.lines().position(|l| {
                l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(['=', '.']))
            })
        {
            return ConfigError(format!("{} (line {})", self.0, index + 1));
        }
        match span {
            Some(span) => {
                let line = text.get(..span.start).map(|t| t.lines().count().max(1)).unwrap_or(1);
                ConfigError(format!("{} (line {line})", self.0))
            }
            None => self,
        }
    }
}

/// `public_url` must be https unless it is loopback (RFC 9700 §2.6).
fn parse_public_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError(format!("public_url: {text:?} is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return Err(ConfigError("public_url: must be https (plain http only on loopback)".into()));
        }
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError(
            "public_url: must be an origin without path or query, e.g. https://latch.example.com".into(),
        ));
    }
    Ok(url)
}

/// Reduces a URL to its ASCII origin (`scheme://host[:port]`), rejecting anything with a path.
pub fn normalize_origin(text: &str) -> Result<String, &'static str> {
    let url = Url::parse(text).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https");
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("must be an origin such as https://app.example.com (no path, query or credentials)");
    }
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Ok(origin.ascii_serialization()),
        url::Origin::Opaque(_) => Err("is not a valid origin"),
    }
}

/// `value` if it is within `lo..=hi`, else an error naming `key` and the range.
fn within<T: PartialOrd + fmt::Display + Copy>(key: &str, value: T, lo: T, hi: T) -> Result<T, ConfigError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!("{key}: must be between {lo} and {hi}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_work_without_anything() {
        let c = Config::resolve(FileConfig::default(), no_env, false).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(c.database_url.expose().starts_with("sqlite://"));
        assert!(matches!(c.master_key, MasterKeySource::Missing));
    }

    #[test]
    fn paths_in_the_file_are_relative_to_it() {
        let file: FileConfig = toml::from_str(
            "master_key_file = \"master.key\"\nprevious_master_key_files = [\"/keys/old.key\", \"old2.key\"]\n\
             widget_dir = \"dist\"\ndatabase_url = \"sqlite://db/latch.db?mode=rwc\"",
        )
        .unwrap();
        let c = Config::resolve(file.relative_to(Path::new("/etc/latch")), no_env, false).unwrap();
        assert!(matches!(&c.master_key, MasterKeySource::File(p) if p == Path::new("/etc/latch/master.key")));
        let previous: Vec<_> =
            c.previous_master_keys.iter().map(|k| matches!(k, MasterKeySource::File(p) if p.is_absolute())).collect();
        assert_eq!(previous, [true, true]);
        assert_eq!(c.widget_dir.as_deref(), Some(Path::new("/etc/latch/dist")));
        assert_eq!(c.database_url.expose(), "sqlite:///etc/latch/db/latch.db?mode=rwc");
        assert_eq!(c.data_dir, Path::new("/etc/latch/latch-data"));
        // Absolute paths, PostgreSQL and in-memory databases are left as they are.
        for url in ["sqlite:///var/lib/latch.db", "sqlite::memory:", "postgres://u@h/db"] {
            let file = FileConfig { database_url: Some(url.into()), ..FileConfig::default() };
            assert_eq!(file.relative_to(Path::new("/etc")).database_url.as_deref(), Some(url));
        }
    }

    #[test]
    fn the_defaults_resolve() {
        // An empty file and `FileConfig::default()` are the same defaults.
        let empty: FileConfig = toml::from_str("").unwrap();
        assert_eq!(format!("{empty:?}"), format!("{:?}", FileConfig::default()));
        let c = Config::for_tests("sqlite::memory:", "k");
        assert_eq!(
            (c.access_token_skew_seconds, c.refresh_caller_wait_ms, c.max_pending_flows_per_user),
            (60, 1500, 10)
        );
        assert!(c.allow_private_webhook_targets && !c.background_refresh);
    }

    #[test]
    fn env_overrides_file() {
        let file: FileConfig = toml::from_str(r#"listen = "127.0.0.1:1""#).unwrap();
        let c = Config::resolve(file, |k| (k == "LATCH_LISTEN").then(|| "127.0.0.1:2".to_owned()), false).unwrap();
        assert_eq!(c.listen.port(), 2);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"listen = "nope""#, "listen:"),
            (r#"public_url = "http://example.com""#, "public_url:"),
            (r#"allowed_origins = ["https://a.example/path"]"#, "allowed_origins:"),
            (r#"database_url = "mysql://x""#, "database_url:"),
            ("refresh_caller_wait_ms = 5", "refresh_caller_wait_ms: must be between 100 and 60000"),
            ("[http]\nmax_connections = 0", "http.max_connections: must be between 1 and 1000000"),
            (
                "[provider_health]\nincident_percent = 101",
                "provider_health.incident_percent: must be between 1 and 100",
            ),
        ];
        for (text, field) in cases {
            let file: FileConfig = toml::from_str(text).unwrap();
            let err = Config::resolve(file, no_env, false).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let err = toml::from_str::<FileConfig>("lissen = 1").unwrap_err();
        assert!(err.message().contains("lissen"));
    }

    #[test]
    fn addresses_beyond_this_machine_need_their_names() {
        let resolve = |toml: &str| Config::resolve(toml::from_str(toml).unwrap(), no_env, false).map_err(|e| e.0);
        let err = resolve("listen = \"0.0.0.0:8080\"").unwrap_err();
        assert!(err.starts_with("public_url:") && err.contains("LATCH_PUBLIC_URL"), "{err}");
        assert!(resolve("listen = \"0.0.0.0:8080\"\npublic_url = \"https://latch.example.com\"").is_ok());
        let err = resolve("database_url = \"postgres://latch@db.example.com\"").unwrap_err();
        assert!(err.starts_with("database_url: name the database"), "{err}");
        let err = resolve("database_url = \"postgres://latch@db.example.com/\"").unwrap_err();
        assert!(err.starts_with("database_url:"), "{err}");
        assert!(resolve("database_url = \"postgres://latch@db.example.com/latch\"").is_ok());
    }

    #[test]
    fn database_url_display_hides_password() {
        let url = DatabaseUrl::new("postgres://latch:hunter2@db/latch");
        assert_eq!(url.to_string(), "postgres://latch:***@db/latch");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(normalize_origin("HTTPS://App.Example.com:443").unwrap(), "https://app.example.com");
        assert!(normalize_origin("https://a@b.example").is_err());
        assert!(normalize_origin("javascript:alert(1)").is_err());
    }
}

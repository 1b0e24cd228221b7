//! Everything a request handler may touch, built once at start.
//!
//! Start-up order matters: the master key is checked against the database before anything is
//! served or written (migrations included), so a wrong key is a clear error instead of silent
//! corruption, and the database stays as the running version left it.

use crate::auth::api_keys::ApiKeyVerifier;
use crate::auth::widget_jwt::{SignerError, WidgetSigner};
use crate::clock::Clock;
use crate::config::{Config, MasterKeySource};
use crate::connections::Deleter;
use crate::connections::access_token::TokenPath;
use crate::events::webhooks::Webhooks;
use crate::limits::Limits;
use crate::oauth::http::PROVIDER_TIMEOUT;
use crate::oauth::provider_health::ProviderHealth;
use crate::oauth::refresh::RefreshCtx;
use crate::oauth::refresher::Refresher;
use crate::oauth::{Flows, Upstream};
use crate::providers::{ClientSecrets, Registry};
use crate::sandbox::Sandbox;
use crate::store::{Store, StoreError};
use crate::usage::UsageRecorder;
use crate::vault::{MasterKey, Sealed, Vault, VaultError};
use crate::widget::WidgetCtx;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// Shared application state; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`]: the shared pieces, and each domain's context built from them.
#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub vault: Vault,
    pub providers: Registry,
    pub signer: Arc<WidgetSigner>,
    pub api_keys: ApiKeyVerifier,
    pub clock: Clock,
    pub usage: UsageRecorder,
    /// Circuit breakers and incident guards of the providers (per replica).
    pub provider_health: Arc<ProviderHealth>,
    /// Rate limits (per replica).
    pub limits: Arc<Limits>,
    /// Requests served at once (`http.max_concurrent_requests`).
    pub request_slots: Arc<tokio::sync::Semaphore>,
    /// The built widget, read once at start.
    pub assets: crate::assets::WidgetAssets,
    /// The connect flow.
    pub flows: Flows,
    /// Refreshing tokens (single flight, leases, breakers).
    pub refresh: RefreshCtx,
    /// The fresh-token path.
    pub tokens: TokenPath,
    /// Deleting connections (with revocation at the provider).
    pub deleter: Deleter,
    /// Webhook endpoints and delivery.
    pub webhooks: Webhooks,
    /// The widget's side of the server.
    pub widget: WidgetCtx,
    /// Background upkeep (run by `serve`'s workers).
    pub refresher: Refresher,
    /// The built-in authorization server (demo mode).
    pub sandbox: Sandbox,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// Providers removed from the configuration while connections still use them.
    #[error(
        "providers with connections cannot be removed from the configuration: {0}; \
         configure the provider again, delete those connections first (`latch connections remove --provider KEY`), \
         or set allow_orphaned_providers = true to start anyway"
    )]
    OrphanedProviders(String),
}

impl AppState {
    /// Connects, migrates, checks the master key, loads signing keys and wires every domain's
    /// context. Starts nothing: background work is `serve`'s (see `workers`).
    pub async fn build(config: Config, clock: Clock) -> Result<Self, StartError> {
        let master = load_master_key(&config.master_key)?;
        let store_err = |source| StartError::Store { url: config.database_url.to_string(), source };
        let store = Store::connect(config.database_url.expose()).await.map_err(store_err)?;
        let vault = with_previous_keys(master, &config)?;
        let recorded = migrate_checked(&store, &config, Some(&vault)).await?;
        record_vault_key(&store, &vault, &recorded, clock.unix()).await?;
        let issuer = config.public_url.as_str().trim_end_matches('/').to_owned();
        let signer = Arc::new(WidgetSigner::load(store.clone(), vault.clone(), issuer, &clock).await?);
        let mut providers: Vec<_> = config.providers.clone();
        if config.demo && !providers.iter().any(|p| p.key == crate::sandbox::KEY) {
            crate::sandbox::ensure_client_secret(&store, &vault, clock.unix()).await.map_err(store_err)?;
            providers.push(crate::sandbox::provider(&config.public_url));
        }
        let providers = Registry::new(providers);
        if !config.allow_orphaned_providers {
            check_orphans(&store, &providers).await?;
        }
        let assets = crate::assets::WidgetAssets::load(config.widget_dir.as_deref());
        let http = crate::oauth::http::client(PROVIDER_TIMEOUT).map_err(|e| StartError::HttpClient(e.to_string()))?;
        let webhook_http = crate::events::targets::client(PROVIDER_TIMEOUT, config.allow_private_webhook_targets)
            .map_err(|e| StartError::HttpClient(e.to_string()))?;
        let usage = UsageRecorder::default();
        let provider_health = Arc::new(ProviderHealth::new(config.provider_health));
        let limits = Arc::new(Limits::new(&config.rate_limits));
        let upstream =
            Upstream { providers: providers.clone(), secrets: ClientSecrets::new(store.clone(), vault.clone()), http };
        let refresh = RefreshCtx {
            store: store.clone(),
            vault: vault.clone(),
            clock: clock.clone(),
            upstream: upstream.clone(),
            flights: Default::default(),
            health: provider_health.clone(),
            limits: limits.clone(),
            refresh_failed: Default::default(),
            skew_seconds: config.access_token_skew_seconds,
            caller_wait: Duration::from_millis(config.refresh_caller_wait_ms),
        };
        let deleter =
            Deleter { store: store.clone(), vault: vault.clone(), clock: clock.clone(), upstream: upstream.clone() };
        let secrets = upstream.secrets.clone();
        let state = Self(Arc::new(Inner {
            flows: Flows {
                store: store.clone(),
                vault: vault.clone(),
                clock: clock.clone(),
                upstream,
                public_url: config.public_url.clone(),
                allowed_origins: config.allowed_origins.clone(),
                max_pending_flows_per_user: config.max_pending_flows_per_user,
            },
            tokens: TokenPath {
                refresh: refresh.clone(),
                cache: Default::default(),
                usage: usage.clone(),
                signer: signer.clone(),
                public_url: config.public_url.clone(),
            },
            refresher: Refresher {
                refresh: refresh.clone(),
                window_seconds: config.refresh_window_seconds,
                validation_interval_seconds: config.validation_interval_seconds,
                per_provider_per_round: Refresher::per_provider_share(config.rate_limits.provider_per_second),
            },
            refresh,
            webhooks: Webhooks {
                store: store.clone(),
                vault: vault.clone(),
                clock: clock.clone(),
                http: webhook_http,
                deliveries: Default::default(),
                allow_private_targets: config.allow_private_webhook_targets,
            },
            widget: WidgetCtx {
                store: store.clone(),
                clock: clock.clone(),
                providers: providers.clone(),
                secrets,
                signer: signer.clone(),
                deleter: deleter.clone(),
                public_url: config.public_url.clone(),
                allowed_origins: config.allowed_origins.clone(),
            },
            deleter,
            sandbox: Sandbox {
                store: store.clone(),
                vault: vault.clone(),
                clock: clock.clone(),
                public_url: config.public_url.clone(),
                redirect_uri: crate::oauth::start::redirect_uri(&config.public_url),
                access_token_ttl_seconds: config.sandbox_access_token_ttl_seconds,
            },
            request_slots: Arc::new(tokio::sync::Semaphore::new(config.http.max_concurrent_requests as usize)),
            provider_health,
            limits,
            config,
            store,
            vault,
            providers,
            signer,
            api_keys: ApiKeyVerifier::default(),
            clock,
            usage,
            assets,
        }));
        Ok(state)
    }
}

/// Refuses to start when connections belong to a provider the configuration no longer has: their
/// tokens could be neither refreshed nor revoked, and nobody would notice.
async fn check_orphans(store: &Store, providers: &Registry) -> Result<(), StartError> {
    let store_err = |source| StartError::Store { url: "(configured)".into(), source };
    let mut unknown = std::collections::BTreeMap::<String, i64>::new();
    for (key, _status, n) in store.connections_per_status().await.map_err(store_err)? {
        if providers.get(&key).is_none() {
            *unknown.entry(key).or_default() += n;
        }
    }
    let orphans: Vec<String> =
        unknown.iter().map(|(key, n)| format!("{key} ({n} connection{})", if *n == 1 { "" } else { "s" })).collect();
    if orphans.is_empty() { Ok(()) } else { Err(StartError::OrphanedProviders(orphans.join(", "))) }
}

/// Reads the master key from its source; demo mode creates a development key file.
pub fn load_master_key(source: &MasterKeySource) -> Result<MasterKey, StartError> {
    let bad = |e: VaultError| StartError::MasterKey(e.to_string());
    match source {
        MasterKeySource::Inline(secret) => MasterKey::from_base64(secret.expose()).map_err(bad),
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::MasterKey(format!("cannot read {}: {e}", path.display())))?;
            MasterKey::from_base64(&text).map_err(bad)
        }
        MasterKeySource::GenerateInto(path) => {
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StartError::MasterKey(format!("cannot create {}: {e}", dir.display())))?;
                }
                write_private(path, &MasterKey::generate_base64())
                    .map_err(|e| StartError::MasterKey(format!("cannot write {}: {e}", path.display())))?;
                tracing::warn!(path = %path.display(), "generated a DEVELOPMENT master key; do not use it in production");
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::MasterKey(format!("cannot read {}: {e}", path.display())))?;
            MasterKey::from_base64(&text).map_err(bad)
        }
        MasterKeySource::Missing => Err(StartError::MasterKey(
            "no master key: set LATCH_MASTER_KEY (32 bytes, base64; `latch keys generate` prints one) \
             or master_key_file in latch.toml; `latch demo` generates a development key"
                .into(),
        )),
    }
}

/// Creates `path` (it must not exist) readable by its owner only, holding `contents`.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

const CHECK_PLAINTEXT: &[u8] = b"latch master key check";

/// Migrates the database once `vault`'s keys are checked against those it records, and returns
/// those: a wrong key leaves it as it was (migrated by a newer binary, it would no longer open
/// with the version that was running). `None`, for a CLI command run without a key: unchecked.
pub async fn migrate_checked(
    store: &Store,
    config: &Config,
    vault: Option<&Vault>,
) -> Result<Vec<(String, Vec<u8>)>, StartError> {
    let store_err = |source| StartError::Store { url: config.database_url.to_string(), source };
    let recorded = store.vault_keys_if_any().await.map_err(store_err)?;
    if let Some(vault) = vault {
        check_vault_keys(&recorded, vault)?;
    }
    store.migrate().await.map_err(store_err)?;
    Ok(recorded)
}

/// The configured keys, for a CLI command that needs none but must not migrate a database
/// under the wrong one: `None` when no key is configured, or only a file to generate (a command
/// that seals nothing creates no key).
pub fn configured_vault(config: &Config) -> Result<Option<Vault>, StartError> {
    let master = match &config.master_key {
        MasterKeySource::Missing => return Ok(None),
        MasterKeySource::GenerateInto(path) if !path.exists() => return Ok(None),
        source => load_master_key(source)?,
    };
    with_previous_keys(master, config).map(Some)
}

/// The vault of `master`, still opening what the configured previous keys sealed.
fn with_previous_keys(master: MasterKey, config: &Config) -> Result<Vault, StartError> {
    let previous = config.previous_master_keys.iter().map(load_master_key).collect::<Result<Vec<_>, _>>()?;
    Ok(Vault::new(master, previous))
}

/// Refuses to start when the database holds data sealed under a key we do not have, or when the
/// configured key does not match the one recorded under its id.
fn check_vault_keys(recorded: &[(String, Vec<u8>)], vault: &Vault) -> Result<(), StartError> {
    for (key_id, check) in recorded {
        if !vault.has_key(key_id) {
            return Err(StartError::MasterKey(format!(
                "the database holds secrets sealed with master key id {key_id}, but the configured key has id {}; \
                 configure the right LATCH_MASTER_KEY (nothing was written)",
                vault.active_key_id()
            )));
        }
        vault
            .open(Sealed::KeyCheck.slot(key_id), check)
            .map_err(|e| StartError::MasterKey(format!("key id {key_id} fails its check value: {e}")))?;
    }
    Ok(())
}

/// Records the active key's check value, the first time it seals data here.
async fn record_vault_key(
    store: &Store,
    vault: &Vault,
    recorded: &[(String, Vec<u8>)],
    now: i64,
) -> Result<(), StartError> {
    let active = vault.active_key_id();
    if !recorded.iter().any(|(id, _)| id == active) {
        let store_err = |source| StartError::Store { url: "(configured)".into(), source };
        let check = vault.seal(Sealed::KeyCheck.slot(active), CHECK_PLAINTEXT);
        store.record_vault_key(active, &check, now).await.map_err(store_err)?;
    }
    Ok(())
}

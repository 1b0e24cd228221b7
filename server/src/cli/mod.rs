//! The `latch` command line. Command output goes to stdout (so `KEY=$(latch api-keys create
//! --name ci)` works); hints and logs go to stderr.

use crate::auth::api_keys;
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::state::{AppState, load_master_key};
use crate::store::{Store, new_id};
use crate::vault::{MasterKey, Sealed, Vault};
use clap::{Parser, Subcommand};
use latch_shared::ConnectionStatus;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

mod activity;
mod developer;
mod init;

/// Latch: connect your users' third-party accounts without writing OAuth plumbing.
#[derive(Debug, Parser)]
#[command(name = "latch", version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("LATCH_COMMIT"), ")"))]
pub struct Cli {
    /// Path of latch.toml (every key optional).
    #[arg(long, global = true, env = "LATCH_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented latch.toml and a new master key file (both mode 0600) into a
    /// directory, and say what to do next. Never overwrites.
    Init {
        /// Where to write them (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run the server.
    Serve,
    /// Run the server in demo mode: SQLite, a generated development key, built-in sandbox.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage host API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Manage provider client secrets (stored encrypted).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Show configured providers.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Master keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The inventory of connections, read from the database.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Access tokens, as `POST /v1/access-token` serves them.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Connect one of the app's own accounts (a developer connection): prints the consent URL
    /// (and opens a browser on a desktop), waits for the flow to finish, prints the connection.
    /// The flow's callback lands on the running server at `public_url`.
    Connect {
        /// The provider's key.
        #[arg(long)]
        provider: String,
        /// Connect the app's own account, not an end user's (the only kind the CLI connects).
        #[arg(long)]
        as_developer: bool,
        /// The operator's name for the connection ("Deploy bot").
        #[arg(long)]
        label: Option<String>,
        /// Print the URL only; never open a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// The activity trail, newest first.
    Activity {
        /// Only this connection's entries.
        #[arg(long)]
        connection: Option<String>,
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only this provider's.
        #[arg(long)]
        provider: Option<String>,
        /// Only entries this recent: a number and a unit, s, m, h or d (`90m`, `1h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// table (tab-separated) or json (an array of `GET /v1/activity` entries; with
        /// `--follow`, one entry per line, JSON Lines).
        #[arg(long, default_value = "table")]
        format: String,
        /// Keep printing new entries as they are recorded (oldest first), until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
}

/// Seconds in a `--since` value such as `90m`, `1h` or `7d`.
fn parse_since(text: &str) -> Result<i64, String> {
    let bad = || format!("--since: {text:?} is not a number and a unit (s, m, h or d), such as 1h");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).filter(|s| *s >= 0).ok_or_else(bad)
}

/// `latch token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// A fresh access token's metadata (JSON), refreshing it when it is about to expire; the
    /// token itself only with `--show-token`. Recorded in the trail as the API key `cli`.
    Get {
        /// The end user whose connection it is (or `--developer`).
        #[arg(long, required_unless_present = "developer")]
        user: Option<String>,
        /// The app's own connection to the provider, not an end user's.
        #[arg(long, conflicts_with_all = ["user", "organization"])]
        developer: bool,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        organization: Option<String>,
        /// Refresh even if the stored token is still fresh.
        #[arg(long)]
        force_refresh: bool,
        /// Print the access token too (it is a secret: mind the terminal and the shell history).
        #[arg(long)]
        show_token: bool,
    },
}

/// `latch connections …`
#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List connections, filtered (every filter must hold).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only this organization's.
        #[arg(long)]
        organization: Option<String>,
        /// Only this provider's.
        #[arg(long)]
        provider: Option<String>,
        /// Only in this status: active, needs_reauthorization or deleted (tombstones).
        #[arg(long)]
        status: Option<String>,
        /// Also list the tombstones of deleted connections.
        #[arg(long)]
        include_deleted: bool,
        /// Only those granted this scope.
        #[arg(long)]
        scope: Option<String>,
        /// write: only those granted a scope that writes; read: only those that only read.
        #[arg(long)]
        access: Option<String>,
        /// Only those never used, or not used for this many days.
        #[arg(long)]
        unused_days: Option<u32>,
        /// table (tab-separated, for people), json (an array of inventory entries) or csv
        /// (RFC 4180, the columns of `GET /v1/inventory?format=csv`).
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// One connection (or the tombstone of a deleted one), as its inventory entry in JSON.
    Show {
        /// The connection's id.
        id: String,
    },
    /// Delete one connection (ID), every connection of a provider (`--provider`), or all
    /// (`--all`); asks on a terminal, and refuses without `--yes` when stdin is not one.
    Remove {
        /// The connection's id.
        id: Option<String>,
        /// Every connection of this provider (also one no longer configured).
        #[arg(long)]
        provider: Option<String>,
        /// Every connection.
        #[arg(long)]
        all: bool,
        /// Also revoke the grants at the providers.
        #[arg(long)]
        revoke: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Choose the developer connection that answers for a provider when it has several
    /// (`POST /v1/access-token` with `credential_source: developer`).
    Select {
        /// The provider's key.
        #[arg(long)]
        provider: String,
        /// The developer connection's id.
        id: String,
    },
}

/// `latch api-keys …`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it once, alone on stdout.
    Create {
        /// A name for the key, unique among live keys (e.g. the app or environment).
        #[arg(long)]
        name: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by name or id.
    Revoke {
        /// The key's name or id.
        name_or_id: String,
    },
}

/// `latch secret …`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a provider's client secret (or, with `--signing-secret`, the secret that signs the
    /// events it pushes, such as Slack's), read from stdin (on a terminal, a
    /// prompt with hidden input).
    Add {
        /// The provider key, e.g. slack.
        #[arg(long)]
        provider: String,
        /// Store the signing secret of its events instead of its client secret.
        #[arg(long)]
        signing_secret: bool,
    },
    /// Delete a provider's stored client secret: end users are no longer offered the provider
    /// (its connections stay, and are served until a refresh needs the secret).
    Remove {
        /// The provider key, e.g. slack.
        #[arg(long)]
        provider: String,
    },
}

/// `latch providers …`
#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// List configured providers: key, name, scopes, whether a client secret is there, and
    /// their connections (live, needing reauthorization), tab-separated.
    List,
}

/// `latch keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random master key (base64) for LATCH_MASTER_KEY.
    Generate,
    /// Re-seal every secret under the active master key (LATCH_MASTER_KEY), opening old ones
    /// with LATCH_PREVIOUS_MASTER_KEYS; online, resumable. Then the old keys can be dropped.
    Rotate,
    /// List the keys the database knows, tab-separated, never key material: master key ids
    /// (`active` for LATCH_MASTER_KEY, `previous` for a configured older one, `missing` when
    /// none is configured) and widget signing key ids (`signing`, or `verifying until …` for
    /// a rotated-out key).
    List,
    /// Rotate the widget signing key: a new key signs (every server picks it up within a
    /// minute); the old ones keep verifying for an overlap longer than any widget token lives,
    /// so no live token breaks. Keys past their overlap are deleted.
    RotateSigning,
}

/// Parses arguments, runs, and turns errors into a message and exit code 1 or 2.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let looked = looked_in(cli.config.as_deref());
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // A provider the configuration lacks: say where Latch looked for it.
        Err(message) if message.contains("provider_not_found") => fail(&format!("{message} ({looked})")),
        Err(message) => fail(&message),
    }
}

#[allow(clippy::print_stderr)]
fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The one place that writes command output.
#[allow(clippy::print_stdout)]
fn out(line: &str) {
    println!("{line}");
}

/// Hints for people, on stderr.
#[allow(clippy::print_stderr)]
fn hint(line: &str) {
    eprintln!("{line}");
}

/// The configuration file a command reads: `--config` or `LATCH_CONFIG`, else `./latch.toml`
/// when it exists.
fn config_path(given: Option<&std::path::Path>) -> Option<PathBuf> {
    given.map(PathBuf::from).or_else(|| {
        let local = PathBuf::from("latch.toml");
        local.is_file().then_some(local)
    })
}

/// Where a command looked for its configuration, for error messages.
fn looked_in(given: Option<&std::path::Path>) -> String {
    match config_path(given) {
        Some(path) => format!("read {}", path.display()),
        None => "no configuration file was read (no --config, no LATCH_CONFIG, no ./latch.toml)".to_owned(),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Command::Init { dir } = &cli.command {
        hint(&init::init(dir)?);
        return Ok(());
    }
    let demo = matches!(cli.command, Command::Demo);
    let path = config_path(cli.config.as_deref());
    let read = match &path {
        Some(path) => path.display().to_string(),
        None => "none (no --config, no LATCH_CONFIG, no ./latch.toml): defaults and LATCH_* variables".to_owned(),
    };
    let config = Config::load(path.as_deref(), |k| std::env::var(k).ok(), demo).map_err(|e| {
        hint(&format!("configuration: {read}"));
        e.to_string()
    })?;
    let _log_writer = crate::telemetry::init(config.log_format);
    // Said as a log event where stderr is a JSON log, so every line of it parses.
    match config.log_format {
        crate::telemetry::LogFormat::Json => tracing::info!(configuration = %read, "configuration read"),
        crate::telemetry::LogFormat::Text => hint(&format!("configuration: {read}")),
    }
    match cli.command {
        Command::Init { .. } => Ok(()),
        Command::Serve | Command::Demo => serve(config, &read).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            hint(&format!("migrated {}", config.database_url));
            Ok(())
        }
        Command::ApiKeys(cmd) => api_keys_command(&config, cmd).await,
        Command::Secret(SecretCommand::Add { provider, signing_secret }) => {
            secret_add(&config, &provider, signing_secret).await
        }
        Command::Secret(SecretCommand::Remove { provider }) => {
            let store = open_store(&config).await?;
            let removed = store.delete_client_secret(&provider).await.map_err(|e| e.to_string());
            store.close().await;
            if !removed? {
                return Err(format!("no client secret of {provider:?} is stored"));
            }
            hint(&format!("deleted the client secret of {provider}; it is no longer offered to end users"));
            Ok(())
        }
        Command::Providers(ProvidersCommand::List) => {
            let store = open_store(&config).await?;
            let secrets = store.providers_with_secret().await.map_err(|e| e.to_string())?;
            let secrets = crate::providers::SecretSources::new(secrets);
            let counts = store.connections_per_status().await.map_err(|e| e.to_string())?;
            let count = |key: &str, status: ConnectionStatus| {
                counts.iter().find(|(p, s, _)| p == key && s == status.as_str()).map_or(0, |(_, _, n)| *n)
            };
            for p in &config.providers {
                let secret = secrets.of(p);
                let live = count(&p.key, ConnectionStatus::Active);
                let stale = count(&p.key, ConnectionStatus::NeedsReauthorization);
                out(&format!(
                    "{}\t{}\t{}\t{}\t{live} live\t{stale} need reauthorization",
                    p.key,
                    p.name,
                    p.scopes.join(","),
                    secret
                ));
            }
            if config.providers.is_empty() {
                hint("no providers configured; add [providers.KEY] tables to latch.toml");
            }
            if config.providers.iter().any(|p| !secrets.of(p).is_ready()) {
                hint("a provider with no secret is not offered to end users: latch secret add --provider KEY");
            }
            Ok(())
        }
        Command::Connections(cmd) => connections_command(&config, cmd).await,
        Command::Connect { provider, as_developer, label, no_browser } => {
            if !as_developer {
                return Err("latch connect makes the app's own connections: add --as-developer \
                    (end users connect through the widget)"
                    .into());
            }
            developer::connect(&config, &provider, label.as_deref(), no_browser).await
        }
        Command::Activity { connection, user, provider, since, format, follow } => {
            if !matches!(format.as_str(), "table" | "json") {
                return Err(format!("--format: {format:?} is not table or json"));
            }
            let cutoff = since.as_deref().map(parse_since).transpose()?.map(|s| Clock::default().unix() - s);
            let store = open_store(&config).await?;
            let q = latch_shared::api::host::ActivityQuery {
                connection_id: connection,
                user_id: user,
                provider,
                limit: Some(crate::paging::MAX_LIMIT),
                cursor: None,
            };
            let result = async {
                let entries = activity::newest_first(&store, &q, cutoff).await?;
                if follow {
                    return activity::follow(&store, &q, entries, format == "json").await;
                }
                if format == "json" {
                    out(&serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?);
                } else {
                    entries.iter().for_each(|e| out(&activity::line(e)));
                }
                Ok(())
            }
            .await;
            store.close().await;
            result
        }
        Command::Token(TokenCommand::Get { user, developer, provider, organization, force_refresh, show_token }) => {
            let state = AppState::build(config, Clock::default()).await.map_err(|e| e.to_string())?;
            let caller = crate::auth::api_keys::HostIdentity { key_id: "cli".into(), key_name: "cli".into() };
            let req = latch_shared::api::host::AccessTokenRequest {
                user_id: user,
                credential_source: developer.then_some(latch_shared::CredentialSource::Developer),
                provider,
                organization_id: organization,
                account_id: None,
                connection_id: None,
                force_refresh: Some(force_refresh),
                token: None,
            };
            let answer = crate::connections::access_token::access_token(&state.tokens, &caller, &req).await;
            state.usage.flush(&state.store).await;
            state.store.close().await;
            let answer = answer.map_err(|e| e.to_string())?.into_response().map_err(|e| e.to_string())?;
            let mut answer = serde_json::to_value(answer).map_err(|e| e.to_string())?;
            if !show_token && let Some(token) = answer.get_mut("access_token") {
                *token = serde_json::Value::String("(hidden: add --show-token)".into());
            }
            out(&serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            // The tool for finding which key a database wants: it lists with the wrong key too,
            // and migrates only under the right one (or none configured, as `open_store`).
            // Each configured key is read once; one that cannot be read lists as missing.
            let master = load_master_key(&config.master_key).ok();
            let previous: Vec<MasterKey> =
                config.previous_master_keys.iter().filter_map(|k| load_master_key(k).ok()).collect();
            let store = connect(&config).await?;
            let vault = master.clone().map(|m| Vault::new(m, previous.iter().cloned()));
            match crate::state::migrate_checked(&store, &config, vault.as_ref()).await {
                Ok(_) | Err(crate::state::StartError::MasterKey(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            for (id, _) in store.vault_keys().await.map_err(|e| e.to_string())? {
                let role = if master.as_ref().is_some_and(|k| k.id() == id) {
                    "active"
                } else if previous.iter().any(|k| k.id() == id) {
                    "previous"
                } else {
                    "missing"
                };
                out(&format!("master\t{id}\t{role}"));
            }
            let now = Clock::default().unix();
            for (i, key) in store.signing_keys(now).await.map_err(|e| e.to_string())?.iter().enumerate() {
                let role = match key.retired_at {
                    Some(at) => format!("verifying until {}", rfc3339(at)),
                    None if i == 0 => "signing".to_owned(),
                    None => "verifying".to_owned(),
                };
                let created = rfc3339(key.created_at);
                out(&format!("widget-signing\t{}\t{role}\tcreated {created}", key.id));
            }
            store.close().await;
            Ok(())
        }
        Command::Keys(KeysCommand::RotateSigning) => {
            let state = AppState::build(config, Clock::default()).await.map_err(|e| e.to_string())?;
            let rotated = crate::auth::widget_jwt::rotate(&state.store, &state.vault, &state.clock).await;
            state.store.close().await;
            let (kid, retire_at) = rotated.map_err(|e| e.to_string())?;
            out(&format!("widget-signing\t{kid}\tsigning\tprevious keys verify until {}", rfc3339(retire_at)));
            hint("running servers sign with the new key within a minute; widget tokens already issued stay valid");
            Ok(())
        }
        Command::Keys(KeysCommand::Generate) => {
            out(&MasterKey::generate_base64());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            open_store(&config).await?.close().await;
            let state = AppState::build(config, Clock::default()).await.map_err(|e| e.to_string())?;
            // A progress bar on a terminal (indicatif hides it elsewhere), then the summary.
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let done = crate::vault::rotate(&state.store, &state.vault, |so_far, checked| {
                bar.set_message(format!("checked {checked} secrets, re-sealed {}", so_far.resealed));
                bar.tick();
            })
            .await;
            bar.finish_and_clear();
            let done = done.map_err(|e| e.to_string())?;
            out(&format!("re-sealed {} secrets under master key {}", done.resealed, state.vault.active_key_id()));
            for id in &done.retired {
                hint(&format!("master key {id} is no longer used: remove it from LATCH_PREVIOUS_MASTER_KEYS"));
            }
            state.store.close().await;
            Ok(())
        }
    }
}

/// `latch connections list | show`: the inventory, straight from the database (every page).
async fn connections_command(config: &Config, cmd: ConnectionsCommand) -> Result<(), String> {
    use crate::connections::inventory;
    use latch_shared::api::host::{InventoryEntry, InventoryQuery};
    match cmd {
        ConnectionsCommand::Remove { id, provider, all, revoke, yes } => {
            return remove_connections(config, id, provider, all, revoke, yes).await;
        }
        ConnectionsCommand::Select { provider, id } => return developer::select(config, &provider, &id).await,
        _ => {}
    }
    let store = open_store(config).await?;
    let providers = crate::providers::Registry::new(config.providers.clone());
    let clock = Clock::default();
    let all = |q: InventoryQuery| {
        let (store, providers, clock) = (&store, &providers, &clock);
        async move {
            let mut entries: Vec<InventoryEntry> = Vec::new();
            let mut q = InventoryQuery { limit: Some(crate::paging::MAX_LIMIT), ..q };
            loop {
                let page = inventory::list(store, providers, clock, &q).await.map_err(|e| e.to_string())?;
                entries.extend(page.data);
                match page.next_cursor {
                    Some(cursor) => q.cursor = Some(cursor),
                    None => return Ok::<_, String>(entries),
                }
            }
        }
    };
    let result = match cmd {
        ConnectionsCommand::List {
            user,
            organization,
            provider,
            status,
            include_deleted,
            scope,
            access,
            unused_days,
            format,
        } => {
            let access = access
                .map(|a| {
                    a.parse::<latch_shared::ScopeAccess>().map_err(|_| format!("--access: {a:?} is not read or write"))
                })
                .transpose()?;
            let status = status
                .map(|s| {
                    s.parse::<ConnectionStatus>()
                        .map_err(|_| format!("--status: {s:?} is not active, needs_reauthorization or deleted"))
                })
                .transpose()?;
            if !matches!(format.as_str(), "table" | "json" | "csv") {
                return Err(format!("--format: {format:?} is not table, json or csv"));
            }
            let query = InventoryQuery {
                user_id: user,
                organization_id: organization,
                provider,
                status,
                include_deleted: Some(include_deleted),
                scope,
                access,
                unused_days,
                ..InventoryQuery::default()
            };
            let entries = all(query).await?;
            match format.as_str() {
                "json" => out(&serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?),
                "csv" => {
                    let csv = inventory::to_csv(&entries).map_err(|e| e.to_string())?;
                    out(csv.strip_suffix("\r\n").unwrap_or(&csv));
                }
                _ => {
                    for e in &entries {
                        let used = e.last_used_at.map_or_else(|| "never used".to_owned(), |t| format!("used {t}"));
                        out(&format!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{used}",
                            e.id,
                            e.provider,
                            e.user_id,
                            e.account_label.as_deref().unwrap_or(&e.account_id),
                            e.status,
                            e.purpose.as_deref().unwrap_or("-"),
                        ));
                    }
                    if entries.is_empty() {
                        hint("no connection matches");
                    }
                }
            }
            Ok(())
        }
        // Answered above, before opening the store.
        ConnectionsCommand::Remove { .. } | ConnectionsCommand::Select { .. } => Ok(()),
        ConnectionsCommand::Show { id } => match store.connection_or_tombstone(&id).await.map_err(|e| e.to_string())? {
            Some(row) => {
                out(&serde_json::to_string_pretty(&inventory::entry(&providers, &row)).map_err(|e| e.to_string())?);
                Ok(())
            }
            None => Err(format!("connection_not_found: no connection {id:?}")),
        },
    };
    store.close().await;
    result
}

/// `latch connections remove`: the chosen connections deleted as the API key `cli` would, each
/// with its event and trail entry (and its revocation, with `--revoke`).
async fn remove_connections(
    config: &Config,
    id: Option<String>,
    provider: Option<String>,
    all: bool,
    revoke: bool,
    yes: bool,
) -> Result<(), String> {
    use std::io::IsTerminal as _;
    if [id.is_some(), provider.is_some(), all].iter().filter(|x| **x).count() != 1 {
        return Err("name what to remove: a connection id, --provider KEY or --all".into());
    }
    // Removing a provider's connections is how an operator un-orphans it: start regardless.
    let config = Config { allow_orphaned_providers: true, ..config.clone() };
    let state = AppState::build(config, Clock::default()).await.map_err(|e| e.to_string())?;
    let rows = match &id {
        Some(id) => match state.store.connection(id).await.map_err(|e| e.to_string())? {
            Some(row) => vec![row],
            None => return Err(format!("connection_not_found: no connection {id:?}")),
        },
        None => {
            let mut rows = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let filter = crate::store::connections::ConnectionFilter {
                    provider: provider.as_deref(),
                    after: after.as_deref(),
                    limit: i64::from(crate::paging::MAX_LIMIT),
                    ..Default::default()
                };
                let page = state.store.list_connections(&filter).await.map_err(|e| e.to_string())?;
                let more = page.len() > crate::paging::MAX_LIMIT as usize;
                rows.extend(page.into_iter().take(crate::paging::MAX_LIMIT as usize));
                after = rows.last().map(|r| r.id.clone());
                if !more {
                    break rows;
                }
            }
        }
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "refusing to delete {} connection(s) without --yes: stdin is not a terminal",
                rows.len()
            ));
        }
        hint(&format!("delete {} connection(s){}? [y/N]", rows.len(), if revoke { " and revoke them" } else { "" }));
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(|e| e.to_string())?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err("nothing deleted".into());
        }
    }
    let actor = crate::activity::Actor::cli();
    for row in &rows {
        crate::connections::delete(&state.deleter, &actor, row, revoke).await.map_err(|e| e.to_string())?;
        out(&format!("deleted\t{}\t{}\t{}", row.id, row.provider, row.user_id));
    }
    state.store.close().await;
    Ok(())
}

/// The file of a SQLite `database_url`.
fn sqlite_file(config: &Config) -> Option<&std::path::Path> {
    crate::config::sqlite_file(config.database_url.expose()).map(|(file, _)| file)
}

/// Files that hold secrets (the master key, the sealed database) readable by other users of the
/// machine are a warning at start: `chmod 600` them.
#[cfg(unix)]
fn warn_if_readable_by_others(config: &Config) {
    use std::os::unix::fs::PermissionsExt as _;
    let key = match &config.master_key {
        crate::config::MasterKeySource::File(path) | crate::config::MasterKeySource::GenerateInto(path) => Some(path),
        _ => None,
    };
    for (what, path) in [("master key file", key.map(PathBuf::as_path)), ("database", sqlite_file(config))] {
        let Some(path) = path else { continue };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the {what} can be read by other users of this machine; run chmod 600 on it");
        }
    }
}

/// The database, migrated: after the configured master key, if any, matched the one it records
/// (as `serve` checks it), so a command run with the wrong key changes nothing.
async fn open_store(config: &Config) -> Result<Store, String> {
    let vault = crate::state::configured_vault(config).map_err(|e| e.to_string())?;
    let store = connect(config).await?;
    crate::state::migrate_checked(&store, config, vault.as_ref()).await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// The database as it is (a SQLite file is created if missing), not migrated.
async fn connect(config: &Config) -> Result<Store, String> {
    create_sqlite_file(config)?;
    Store::connect(config.database_url.expose()).await.map_err(|e| format!("database {}: {e}", config.database_url))
}

/// Creates a SQLite database's directory and its file, private, when they are missing.
fn create_sqlite_file(config: &Config) -> Result<(), String> {
    if let Some(path) = sqlite_file(config) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Created here, private, so SQLite's journal files (which copy its mode) are too.
        match crate::state::write_private(path, "") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
    }
    Ok(())
}

async fn serve(config: Config, configuration: &str) -> Result<(), String> {
    // What can fail without the database is checked before it is touched (created, migrated):
    // a start that fails on a missing master key or a port in use leaves a fresh database as
    // it was. (The key is checked against an existing database's secrets in `AppState::build`.)
    for source in std::iter::once(&config.master_key).chain(&config.previous_master_keys) {
        crate::state::load_master_key(source).map_err(|e| e.to_string())?;
    }
    #[cfg(unix)]
    warn_if_readable_by_others(&config);
    let listen = config.listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = match config.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (admin_listen): {e}"))?,
        ),
        None => None,
    };
    // `AppState::build` migrates, once it has checked the master key against the database.
    create_sqlite_file(&config)?;
    let demo = config.demo.then_some(config.demo_listen);
    let state = AppState::build(config, Clock::default()).await.map_err(|e| e.to_string())?;
    let secrets = state.flows.upstream.secrets.sources().await.map_err(|e| e.to_string())?;
    log_summary(&state, configuration, &secrets);
    if let Some(demo_listen) = demo {
        start_demo(&state, demo_listen).await?;
    }
    let shutdown = stop_signal()?;
    crate::serve_split(listener, admin, state, shutdown).await.map_err(|e| e.to_string())
}

/// The start-up summary, one line an operator can check: where the configuration came from, the
/// database (never its password), the public URL, each provider's readiness and the widget's
/// source; then a warning for each provider end users are not offered.
fn log_summary(state: &AppState, configuration: &str, secrets: &crate::providers::SecretSources) {
    let c = &state.config;
    let providers: Vec<String> = state.providers.all().map(|p| format!("{} ({})", p.key, secrets.of(p))).collect();
    let providers = if providers.is_empty() { "none".to_owned() } else { providers.join(", ") };
    tracing::info!(configuration = %configuration, listen = %c.listen, admin_listen = ?c.admin_listen,
        public_url = %c.public_url, backend = %state.store.backend_name(), database = %c.database_url,
        providers = %providers, widget = %state.assets.source, "latch is listening");
    for p in state.providers.all().filter(|p| !secrets.of(p).is_ready()) {
        tracing::warn!(provider = %p.key, "{} has no client secret, so end users are not offered it: run \
            `latch secret add --provider {}`{}", p.name, p.key,
            p.client_secret_env.as_deref().map(|v| format!(" or set {v}")).unwrap_or_default());
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (systemd, `docker stop`, Kubernetes): both shut down gracefully.
fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    Ok(async move {
        let which = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(signal = which, "shutting down: no new connections; finishing the work under way");
    })
}

/// Serves the demo host app on its own origin with a fresh API key of its own.
async fn start_demo(state: &AppState, addr: std::net::SocketAddr) -> Result<(), String> {
    let now = state.clock.unix();
    // One live demo key at a time: the previous run's key is revoked.
    let _ = state.store.revoke_api_key("demo-host", now).await;
    let key = api_keys::generate();
    state.store.insert_api_key(&new_id("key"), "demo-host", &key.hash, now).await.map_err(|e| e.to_string())?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} for the demo: {e}"))?;
    let latch = state.config.public_url.as_str().trim_end_matches('/').to_owned();
    let demo = crate::demo::Demo::new(latch, format!("http://{addr}"), key.plaintext);
    tokio::spawn(async move {
        let _ = axum::serve(listener, crate::demo::router(demo)).await;
    });
    hint(&format!(
        "Demo: open http://{addr}/ (Acme Deploys, with the Latch widget; Latch itself is at {})",
        state.config.public_url
    ));
    Ok(())
}

async fn api_keys_command(config: &Config, cmd: ApiKeysCommand) -> Result<(), String> {
    let store = open_store(config).await?;
    let now = Clock::default().unix();
    match cmd {
        ApiKeysCommand::Create { name } => {
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err("--name must be 1 to 100 characters without control characters".into());
            }
            let key = api_keys::generate();
            store.insert_api_key(&new_id("key"), &name, &key.hash, now).await.map_err(|e| match e {
                crate::store::StoreError::Conflict { .. } => {
                    format!("a live key named {name:?} already exists")
                }
                other => other.to_string(),
            })?;
            out(&key.plaintext);
            hint(&format!("created API key {name:?}; it is shown once: store it now (only its hash is kept)"));
        }
        ApiKeysCommand::List => {
            for k in store.list_api_keys().await.map_err(|e| e.to_string())? {
                let fmt = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                out(&format!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}",
                    k.id,
                    k.name,
                    status,
                    rfc3339(k.created_at),
                    fmt(k.last_used_at)
                ));
            }
        }
        ApiKeysCommand::Revoke { name_or_id } => {
            match store.revoke_api_key(&name_or_id, now).await.map_err(|e| e.to_string())? {
                Some(id) => hint(&format!("revoked {id}")),
                None => return Err(format!("no live API key named or with id {name_or_id:?}")),
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn secret_add(config: &Config, provider: &str, signing: bool) -> Result<(), String> {
    if !config.providers.iter().any(|p| p.key == provider) {
        return Err(format!(
            "provider_not_found: no provider {provider:?} in the configuration; add [providers.{provider}] to latch.toml first"
        ));
    }
    let master = load_master_key(&config.master_key).map_err(|e| e.to_string())?;
    let vault = Vault::new(master, []);
    let what = if signing { "signing secret" } else { "client secret" };
    // On a terminal, a prompt and hidden input; otherwise (a pipe, a file) all of stdin.
    let secret = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        rpassword::prompt_password(format!("The {what} of {provider} (input hidden): "))
            .map_err(|e| format!("cannot read the terminal: {e}"))?
    } else {
        hint(&format!("reading the {what} of {provider} from stdin…"));
        let mut secret = String::new();
        std::io::stdin().read_to_string(&mut secret).map_err(|e| format!("cannot read stdin: {e}"))?;
        secret
    };
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err("the secret read from stdin is empty".into());
    }
    // Building the state checks the master key against the database before writing.
    let state = AppState::build(config.clone(), Clock::default()).await.map_err(|e| e.to_string())?;
    let now = Clock::default().unix();
    let stored = if signing {
        let sealed = vault.seal_str(Sealed::SigningSecret.slot(provider), secret);
        state.store.put_signing_secret(provider, &sealed, now).await
    } else {
        let sealed = vault.seal_str(Sealed::ClientSecret.slot(provider), secret);
        state.store.put_client_secret(provider, &sealed, now).await
    };
    state.store.close().await;
    stored.map_err(|e| e.to_string())?;
    hint(&format!("stored the {what} of {provider} (encrypted)"));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_reads_a_number_and_a_unit() {
        assert_eq!(super::parse_since("90m"), Ok(5400));
        assert_eq!(super::parse_since("7d"), Ok(604_800));
        for bad in ["", "h", "1w", "-1h", "1.5h", "99999999999999999d"] {
            assert!(super::parse_since(bad).is_err(), "{bad}");
        }
    }
}

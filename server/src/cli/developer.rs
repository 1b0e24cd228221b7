//! The app's own connections from the command line (Slack's `external-auth add` and
//! `select-auth`): `latch connect --as-developer` runs a flow for an operator and waits for it;
//! `latch connections select` chooses the one that answers when a provider has several.

use super::{hint, open_store, out};
use crate::activity::{Action, Actor, Entry, record};
use crate::clock::Clock;
use crate::config::Config;
use crate::connections::inventory;
use crate::oauth::start::{FLOW_TTL_SECONDS, create_developer, developer_start_url};
use crate::state::AppState;
use crate::store::flows::FlowStage;
use latch_shared::CredentialSource;
use std::time::Duration;

/// How often the command looks at the flow while it waits.
const POLL: Duration = Duration::from_millis(500);

/// `latch connect --provider KEY --as-developer [--label L] [--no-browser]`.
pub async fn connect(config: &Config, provider: &str, label: Option<&str>, no_browser: bool) -> Result<(), String> {
    if let Some(label) = label
        && (label.trim().is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control))
    {
        return Err("--label: must be 1 to 200 characters without control characters".into());
    }
    let state = AppState::build(config.clone(), Clock::default()).await.map_err(|e| e.to_string())?;
    let result = run_flow(&state, provider, label.map(str::trim), no_browser).await;
    state.store.close().await;
    result
}

async fn run_flow(state: &AppState, provider: &str, label: Option<&str>, no_browser: bool) -> Result<(), String> {
    let flow =
        create_developer(&state.flows, provider, label).await.map_err(|e| format!("{}: {}", e.code(), e.message()))?;
    let url = developer_start_url(&state.config.public_url, &flow.id)
        .ok_or_else(|| "cannot build the consent URL from public_url".to_owned())?;
    out(url.as_str());
    hint(&format!(
        "Open that URL and sign in with the account the app should use; waiting up to {} minutes (Ctrl-C stops).",
        FLOW_TTL_SECONDS / 60
    ));
    if !server_answers(&state.config.public_url).await {
        hint(&format!(
            "warning: no Latch server answers at {}: the provider sends the browser back there, so start `latch serve`",
            state.config.public_url
        ));
    }
    if !no_browser {
        open_browser(url.as_str());
    }
    let wait = async {
        // Bounded: the flow expires, and then the answer is final.
        for _ in 0..(FLOW_TTL_SECONDS as u64 * 1000 / POLL.as_millis() as u64 + 10) {
            let flow = state.store.flow(&flow.id).await.map_err(|e| e.to_string())?;
            let Some(flow) = flow else { return Err("flow_not_found: the flow disappeared".to_owned()) };
            match flow.status {
                FlowStage::Connected => return Ok(flow.connection_id),
                FlowStage::Error => {
                    let code = flow.error_code.unwrap_or_else(|| "internal_error".into());
                    return Err(format!("{code}: {}", flow.error_message.unwrap_or_default()));
                }
                _ if flow.expires_at < state.clock.unix() => {
                    return Err("oauth2_exchange_error: the connect link expired; run latch connect again".into());
                }
                _ => Clock::sleep(POLL).await,
            }
        }
        Err("oauth2_exchange_error: the connect link expired; run latch connect again".into())
    };
    let connection_id = tokio::select! {
        done = wait => done?,
        _ = tokio::signal::ctrl_c() => return Err("interrupted: nothing was connected".into()),
    };
    let id = connection_id.ok_or_else(|| "internal_error: the flow ended without a connection".to_owned())?;
    let row = state.store.connection(&id).await.map_err(|e| e.to_string())?;
    let row = row.ok_or_else(|| format!("connection_not_found: {id} was deleted meanwhile"))?;
    hint(&format!("connected {} as a developer connection of {}", row.id, row.provider));
    out(&serde_json::to_string_pretty(&inventory::entry(&state.providers, &row)).map_err(|e| e.to_string())?);
    Ok(())
}

/// Whether the server the flow's callback lands on is up (a hint for the operator only).
async fn server_answers(public_url: &url::Url) -> bool {
    let Ok(health) = public_url.join("healthz") else { return false };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build();
    match client {
        Ok(client) => client.get(health).send().await.is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

/// Opens the URL in the desktop's browser when there is one to open; never fails the command.
fn open_browser(url: &str) {
    use std::io::IsTerminal as _;
    let desktop = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = if cfg!(target_os = "macos") { Some("open") } else { desktop.then_some("xdg-open") };
    if let Some(opener) = opener.filter(|_| std::io::stdout().is_terminal()) {
        let _ = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// `latch connections select --provider KEY ID`.
pub async fn select(config: &Config, provider: &str, id: &str) -> Result<(), String> {
    let store = open_store(config).await?;
    let result = async {
        let row = store.connection(id).await.map_err(|e| e.to_string())?;
        let row = row
            .filter(|r| r.provider == provider)
            .ok_or_else(|| format!("connection_not_found: no connection {id:?} of provider {provider:?}"))?;
        if row.credential_source != CredentialSource::Developer {
            return Err(format!(
                "{id} is an end user's connection; only a developer connection (latch connect --as-developer) can be the default"
            ));
        }
        let now = Clock::default().unix();
        let actor = Actor::cli();
        store.select_developer_default(provider, id, now, actor.name()).await.map_err(|e| e.to_string())?;
        record(&store, Entry::new(now, &actor, Action::Selected).connection(&row)).await;
        out(&format!("selected\t{id}\t{provider}"));
        Ok(())
    }
    .await;
    store.close().await;
    result
}

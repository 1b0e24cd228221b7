//! One provider: its icon, name, why the app needs it, the scopes in plain words, the user's
//! connections with their status in words, and the actions (connect, reconnect, disconnect with
//! a confirmation step).

use crate::app::Start;
use crate::model::{self, Action};
use latch_shared::api::widget::Integration;
use leptos::prelude::*;
use std::sync::Arc;

/// A provider row.
#[component]
pub fn IntegrationRow(
    integration: Arc<Integration>,
    busy: RwSignal<Option<String>>,
    start: Callback<Start>,
    disconnect: Callback<(String, String, String)>,
) -> impl IntoView {
    let confirming = RwSignal::new(None::<String>);
    let key = integration.key.clone();
    let name = integration.name.clone();
    let connect_label = model::connect_label(&integration);
    let connectable = integration.connectable;
    let provider_busy = {
        let key = key.clone();
        move || busy.get().as_deref() == Some(key.as_str())
    };
    let scopes: Vec<String> = integration.scopes.iter().map(|s| model::scope_words(s)).collect();
    let title_id = format!("latch-title-{key}");
    let labelled_by = title_id.clone();
    let button_busy = provider_busy.clone();
    view! {
        <li class="latch-item" aria-labelledby=labelled_by data-provider=key.clone()>
            <div class="latch-icon" aria-hidden="true">{model::initial(&name)}</div>
            <div class="latch-body">
                <h3 class="latch-name" id=title_id>{name.clone()}</h3>
                <p class="latch-description">{integration.description.clone()}</p>
                {(!scopes.is_empty()).then(|| view! {
                    <p class="latch-scopes"><span class="latch-sr-only">"Permissions: "</span>{scopes.join(" · ")}</p>
                })}
                <ul class="latch-connections">
                    {integration.connections.iter().map(|c| {
                        let status = model::status_label(c);
                        let label = c.account_label.clone().unwrap_or_else(|| name.clone());
                        let needs = c.status == latch_shared::ConnectionStatus::NeedsReauthorization;
                        let id = c.id.clone();
                        let actions = model::actions(c, connectable);
                        let row_busy = { let id = id.clone(); move || busy.get().as_deref() == Some(id.as_str()) };
                        let confirm_id = id.clone();
                        let is_confirming = move || confirming.get().as_deref() == Some(confirm_id.as_str());
                        let (key, name, label2, id2, id3) = (key.clone(), name.clone(), label.clone(), id.clone(), id.clone());
                        view! {
                            <li class="latch-connection" data-connection=id.clone() data-status=if needs { "needs_reauthorization" } else { "active" }>
                                <span class=if needs { "latch-badge latch-badge-warn" } else { "latch-badge latch-badge-ok" }>
                                    <span aria-hidden="true">{if needs { "! " } else { "✓ " }}</span>{status}
                                </span>
                                {c.purpose.clone().map(|purpose| view! { <span class="latch-purpose">{purpose}</span> })}
                                {model::resources_label(c).map(|posts| view! { <span class="latch-resources">{posts}</span> })}
                                <Show
                                    when=is_confirming.clone()
                                    fallback={
                                        let (key, name, id) = (key.clone(), name.clone(), id2.clone());
                                        let row_busy = row_busy.clone();
                                        move || {
                                            let (key, name, id) = (key.clone(), name.clone(), id.clone());
                                            let reconnect = actions.contains(&Action::Reconnect).then(|| {
                                                let (key, name, id) = (key.clone(), name.clone(), id.clone());
                                                view! {
                                                    <button type="button" class="latch-button latch-primary" disabled=row_busy.clone()
                                                        on:click=move |_| start.run(Start { provider: key.clone(), provider_name: name.clone(), reconnect: Some(id.clone()) })>
                                                        "Reconnect"
                                                    </button>
                                                }
                                            });
                                            let id_for_confirm = id.clone();
                                            view! {
                                                {reconnect}
                                                <button type="button" class="latch-button" disabled=row_busy.clone()
                                                    on:click=move |_| confirming.set(Some(id_for_confirm.clone()))>
                                                    "Disconnect"
                                                </button>
                                            }
                                        }
                                    }
                                >
                                    {
                                        let (key, label, id) = (key.clone(), label2.clone(), id3.clone());
                                        view! {
                                            <span class="latch-confirm" role="group" aria-label="Confirm disconnect">
                                                <span>{format!("Disconnect {label}?")}</span>
                                                <button type="button" class="latch-button latch-danger"
                                                    on:click={
                                                        let (key, label, id) = (key.clone(), label.clone(), id.clone());
                                                        move |_| { confirming.set(None); disconnect.run((key.clone(), id.clone(), label.clone())); }
                                                    }>
                                                    "Yes, disconnect"
                                                </button>
                                                <button type="button" class="latch-button" on:click=move |_| confirming.set(None)>"Cancel"</button>
                                            </span>
                                        }
                                    }
                                </Show>
                            </li>
                        }
                    }).collect::<Vec<_>>()}
                </ul>
                {connectable.then(|| view! {
                    <button type="button" class="latch-button latch-primary latch-connect" disabled=button_busy
                        on:click={
                            let (key, name) = (key.clone(), name.clone());
                            move |_| start.run(Start { provider: key.clone(), provider_name: name.clone(), reconnect: None })
                        }>
                        {move || if provider_busy() { "Connecting…".to_owned() } else { connect_label.clone() }}
                    </button>
                })}
                {(!connectable).then(|| view! { <p class="latch-unavailable">"Not available to connect right now."</p> })}
            </div>
        </li>
    }
}

//! The root component: loads the integrations, runs connect / reconnect / disconnect, and keeps
//! an `aria-live` region announcing what changed.

use crate::api::{ApiError, Session};
use crate::components::integration_row::IntegrationRow;
use crate::host::{EventKind, Events};
use crate::model;
use crate::popup::{self, Outcome};
use crate::{json, wire};
use latch_shared::api::widget::{ConnectRequest, Integration};
use latch_shared::api::widget::{Disconnect, ListIntegrations, StartConnect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the list shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Loading,
    /// Shared, not copied, by every render of the list.
    Ready(Vec<Arc<Integration>>),
    Failed(ApiError),
}

/// A request to start a flow: provider, and the connection to reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub provider: String,
    pub provider_name: String,
    pub reconnect: Option<String>,
}

/// The widget.
#[component]
pub fn App(session: Session, events: Events) -> impl IntoView {
    let state = RwSignal::new(Load::Loading);
    let announce = RwSignal::new(String::new());
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<String>);

    let load = {
        let session = session.clone();
        move || {
            let session = session.clone();
            spawn_local(async move {
                let next = match session
                    .call_with::<ListIntegrations>(&[], None, |v| wire::integration_list(json::Value(v)))
                    .await
                {
                    Ok(list) => Load::Ready(list.data.into_iter().map(Arc::new).collect()),
                    Err(e) => Load::Failed(e),
                };
                state.set(next);
            });
        }
    };
    load();

    let start = {
        let (session, events, load) = (session.clone(), events.clone(), load.clone());
        Callback::new(move |s: Start| {
            // Synchronously, inside the click: popup blockers allow only this.
            let window = popup::open_blank();
            busy.set(Some(s.reconnect.clone().unwrap_or_else(|| s.provider.clone())));
            notice.set(None);
            let (session, events, load) = (session.clone(), events.clone(), load.clone());
            spawn_local(async move {
                let return_to = window.is_none().then(current_url).flatten();
                let req =
                    ConnectRequest { provider: s.provider.clone(), connection_id: s.reconnect.clone(), return_to };
                match session.call::<StartConnect>(&[], Some(&req)).await {
                    Err(e) => {
                        if let Some(w) = &window {
                            popup::close(w);
                        }
                        notice.set(Some(model::error_message(&e.problem, &e.message)));
                        events.emit(EventKind::Error, &s.provider, None, Some((e.problem.code(), &e.message)));
                    }
                    Ok(started) => match window {
                        // Popup blocked: run the flow in this page; the result page returns here.
                        None => {
                            popup::start("_self", &started.authorize_url);
                        }
                        Some(w) => {
                            popup::start(popup::POPUP_NAME, &started.authorize_url);
                            match popup::wait(&session, &w, &started.flow_id).await {
                                Outcome::Connected(id) => {
                                    let kind = if s.reconnect.is_some() {
                                        EventKind::Reconnected
                                    } else {
                                        EventKind::Connected
                                    };
                                    announce.set(format!("{} connected.", s.provider_name));
                                    events.emit(kind, &s.provider, Some(&id), None);
                                    load();
                                }
                                Outcome::Failed { problem, message } => {
                                    let text = model::error_message(&problem, &message);
                                    announce.set(format!("{} was not connected: {text}", s.provider_name));
                                    notice.set(Some(text));
                                    events.emit(EventKind::Error, &s.provider, None, Some((problem.code(), &message)));
                                }
                                Outcome::Closed => {
                                    announce.set(format!("Connecting {} was cancelled.", s.provider_name))
                                }
                            }
                        }
                    },
                }
                busy.set(None);
            });
        })
    };

    let disconnect = {
        let (session, events, load) = (session.clone(), events.clone(), load.clone());
        Callback::new(move |(provider, id, label): (String, String, String)| {
            let (session, events, load) = (session.clone(), events.clone(), load.clone());
            busy.set(Some(id.clone()));
            spawn_local(async move {
                match session.call::<Disconnect>(&[&id], None).await {
                    Ok(()) => {
                        announce.set(format!("{label} disconnected."));
                        events.emit(EventKind::Disconnected, &provider, Some(&id), None);
                        load();
                    }
                    Err(e) => {
                        notice.set(Some(model::error_message(&e.problem, &e.message)));
                        events.emit(EventKind::Error, &provider, Some(&id), Some((e.problem.code(), &e.message)));
                    }
                }
                busy.set(None);
            });
        })
    };

    let retry = load.clone();
    view! {
        <section class="latch-root" aria-label="Integrations">
            <p class="latch-sr-only" role="status" aria-live="polite">{move || announce.get()}</p>
            {move || notice.get().map(|text| view! {
                <div class="latch-notice" role="alert">
                    <span>{text}</span>
                    <button type="button" class="latch-link" on:click=move |_| notice.set(None)>"Dismiss"</button>
                </div>
            })}
            {move || match state.get() {
                Load::Loading => view! { <p class="latch-muted" aria-busy="true">"Loading integrations…"</p> }.into_any(),
                Load::Failed(e) => {
                    let retry = retry.clone();
                    view! {
                        <div class="latch-notice latch-error" role="alert">
                            <span>{model::error_message(&e.problem, &e.message)}</span>
                            <button type="button" class="latch-button" on:click=move |_| { state.set(Load::Loading); retry(); }>"Try again"</button>
                        </div>
                    }.into_any()
                }
                Load::Ready(list) if list.is_empty() => {
                    mark_first_list();
                    view! { <p class="latch-muted">"No integrations are available yet."</p> }.into_any()
                }
                Load::Ready(list) => {
                    mark_first_list();
                    view! {
                        <ul class="latch-list">
                            {list.into_iter().map(|integration| view! {
                                <IntegrationRow integration=integration busy=busy start=start disconnect=disconnect />
                            }).collect::<Vec<_>>()}
                        </ul>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The name of the Performance API mark set when the integrations list is first in the page
/// (`performance.getEntriesByName("latch-first-list")[0].startTime`: milliseconds after
/// navigation start). The browser test reads it.
pub const FIRST_LIST_MARK: &str = "latch-first-list";

/// Sets [`FIRST_LIST_MARK`], once per page.
fn mark_first_list() {
    static MARKED: AtomicBool = AtomicBool::new(false);
    if !MARKED.swap(true, Ordering::Relaxed) {
        // A task runs after the current render has put the list in the DOM.
        spawn_local(async {
            if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
                let _ = performance.mark(FIRST_LIST_MARK);
            }
        });
    }
}

fn current_url() -> Option<String> {
    web_sys::window()?.location().href().ok()
}

//! The Latch widget: the integrations page end users see inside a host app. Leptos, client-side
//! rendered, WebAssembly, built with Trunk.
//!
//! Host pages load `/widget/latch.js` from Latch and call
//! `Latch.mount("#integrations", { token, getToken, onEvent })`. The widget renders into a shadow
//! root, so the host's CSS cannot break it and its CSS cannot leak out; theming goes through CSS
//! custom properties, which do cross the shadow boundary. It never holds a provider token: it
//! only talks to the widget API with the short-lived widget token.

pub mod api;
pub mod app;
pub mod components;
pub mod host;
pub mod json;
pub mod model;
pub mod popup;
pub mod wire;

use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;

fn get(options: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(options, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Mounts the widget into the element matching `target`.
///
/// `options`: `token` (a widget JWT), `getToken` (async function returning a fresh one),
/// `onEvent` (called with `{type, provider, connection_id?, error?}`), `apiBase` (the Latch
/// origin; set by the loader), `cssUrl` (set by the loader), `theme` (`light`, `dark`, or
/// absent for the system's).
#[wasm_bindgen]
pub fn mount(target: &str, options: JsValue) -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let host = document
        .query_selector(target)?
        .ok_or_else(|| JsValue::from_str(&format!("Latch.mount: nothing matches {target}")))?;
    let token = get(&options, "token").as_string().ok_or("Latch.mount: options.token is required")?;
    let base = get(&options, "apiBase").as_string().or_else(|| window.location().origin().ok()).unwrap_or_default();
    let get_token = get(&options, "getToken").dyn_into::<js_sys::Function>().ok();
    let on_event = get(&options, "onEvent").dyn_into::<js_sys::Function>().ok();
    let shadow = match host.shadow_root() {
        Some(root) => {
            root.set_inner_html("");
            root
        }
        None => host.attach_shadow(&web_sys::ShadowRootInit::new(web_sys::ShadowRootMode::Open))?,
    };
    if let Some(css) = get(&options, "cssUrl").as_string() {
        let link = document.create_element("link")?;
        link.set_attribute("rel", "stylesheet")?;
        link.set_attribute("href", &css)?;
        shadow.append_child(&link)?;
    }
    let container: web_sys::HtmlElement = document.create_element("div")?.dyn_into()?;
    container.set_class_name("latch-host");
    if let Some(theme) = get(&options, "theme").as_string().filter(|t| t == "light" || t == "dark") {
        container.set_attribute("data-theme", &theme)?;
    }
    shadow.append_child(&container)?;
    let session = api::Session::new(base, token, get_token);
    let events = host::Events::new(on_event);
    leptos::mount::mount_to(container, move || leptos::view! { <app::App session=session events=events /> }).forget();
    Ok(())
}

//! The consent popup: opened synchronously in the click handler (so popup blockers allow it),
//! started with a form POST to Latch's authorize URL once the flow exists, and watched two ways, whichever answers
//! first: the callback page's `postMessage` (accepted only from the Latch origin, only from this
//! popup, only for this flow) and polling the flow's status (a provider page with COOP cuts
//! `window.opener`, and then the message never arrives). Bounded by the flow's 10 minutes.

use crate::api::Session;
use crate::model::Problem;
use latch_shared::ErrorCode;
use latch_shared::api::widget::{CallbackMessage, FlowState, GetFlow};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::Closure;
use web_sys::{HtmlFormElement, MessageEvent, Window};

/// How a flow ended, from the widget's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Connected(String),
    Failed {
        problem: Problem,
        message: String,
    },
    /// The user closed the popup without finishing.
    Closed,
}

/// The popup's window name, the target of the form that starts the flow.
pub const POPUP_NAME: &str = "latch_connect";

/// Opens an empty popup; `None` when the browser blocked it.
pub fn open_blank() -> Option<Window> {
    let window = web_sys::window()?;
    window.open_with_url_and_target_and_features("", POPUP_NAME, "popup=yes,width=520,height=720").ok().flatten()
}

/// Starts the flow at `authorize_url` in `target` (the popup's name, or `_self` for the
/// full-page fallback) with a form POST from this page. Latch starts a flow only from a POST
/// whose `Origin` is the widget token's origin, which the browser sets and no other page can
/// forge: a connect link forwarded to someone else attaches nothing. Returns whether the form
/// was submitted.
pub fn start(target: &str, authorize_url: &str) -> bool {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return false };
    let Some(body) = document.body() else { return false };
    let Some(form) = document.create_element("form").ok().and_then(|f| f.dyn_into::<HtmlFormElement>().ok()) else {
        return false;
    };
    form.set_method("post");
    form.set_action(authorize_url);
    form.set_target(target);
    let _ = form.set_attribute("hidden", "");
    if body.append_child(&form).is_err() {
        return false;
    }
    let submitted = form.submit().is_ok();
    form.remove();
    submitted
}

/// Closes the popup (used when starting the flow failed).
pub fn close(popup: &Window) {
    let _ = popup.close();
}

/// Waits for the flow's outcome.
pub async fn wait(session: &Session, popup: &Window, flow_id: &str) -> Outcome {
    let received: Rc<RefCell<Option<Outcome>>> = Rc::default();
    let listener = {
        let received = received.clone();
        let origin = session.origin();
        let popup: wasm_bindgen::JsValue = popup.clone().into();
        let flow_id = flow_id.to_owned();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if event.origin() != origin {
                return;
            }
            let from_popup = event.source().is_some_and(|s| js_sys::Object::is(&s.into(), &popup));
            if !from_popup {
                return;
            }
            if let Some(outcome) = parse_message(&event.data(), &flow_id) {
                *received.borrow_mut() = Some(outcome);
            }
        })
    };
    let window = web_sys::window();
    if let Some(w) = &window {
        let _ = w.add_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
    }
    let outcome = watch(session, popup, flow_id, &received).await;
    if let Some(w) = &window {
        let _ = w.remove_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
    }
    outcome
}

async fn watch(session: &Session, popup: &Window, flow_id: &str, received: &Rc<RefCell<Option<Outcome>>>) -> Outcome {
    // 10 minutes in 250 ms steps; the flow status is asked every second.
    for step in 0..2400u32 {
        if let Some(outcome) = received.borrow_mut().take() {
            return outcome;
        }
        let closed = popup.closed().unwrap_or(true);
        if step % 4 == 0 || closed {
            match session.call::<GetFlow>(&[flow_id], None).await {
                Ok(status) => match status.status {
                    FlowState::Connected => return Outcome::Connected(status.connection_id.unwrap_or_default()),
                    FlowState::Error => {
                        return match status.error {
                            Some(e) => Outcome::Failed { problem: Problem::from_code(&e.code), message: e.message },
                            None => Outcome::Failed { problem: Problem::InvalidResponse, message: String::new() },
                        };
                    }
                    FlowState::Pending if closed => return Outcome::Closed,
                    FlowState::Pending => {}
                },
                Err(e) if closed => return Outcome::Failed { problem: e.problem, message: e.message },
                Err(_) => {}
            }
        }
        sleep(250).await;
    }
    Outcome::Failed {
        problem: Problem::Latch(ErrorCode::Oauth2ExchangeError),
        message: "The connect attempt expired.".into(),
    }
}

/// Waits `ms` milliseconds (a `setTimeout` promise).
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let timer = web_sys::window().map(|w| w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms));
        if !matches!(timer, Some(Ok(_))) {
            let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Reads the callback page's message as the shared `CallbackMessage`; anything malformed or
/// for another flow is ignored.
fn parse_message(data: &wasm_bindgen::JsValue, flow_id: &str) -> Option<Outcome> {
    let message: CallbackMessage = crate::json::from_value(data.clone()).ok()?;
    if message.source != "latch" || message.flow_id != flow_id {
        return None;
    }
    match message.kind.as_str() {
        "connected" => Some(Outcome::Connected(message.connection_id?)),
        "error" => {
            let error = message.error?;
            Some(Outcome::Failed { problem: Problem::from_code(&error.code), message: error.message })
        }
        _ => None,
    }
}

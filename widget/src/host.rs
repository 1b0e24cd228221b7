//! Talking to the host page: the `onEvent` callback it passed to `Latch.mount`.

use send_wrapper::SendWrapper;
use wasm_bindgen::JsValue;

/// What the widget reports to the host page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connected,
    Reconnected,
    Disconnected,
    Error,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Reconnected => "reconnected",
            Self::Disconnected => "disconnected",
            Self::Error => "error",
        }
    }
}

/// The host page's `onEvent`, if it gave one.
#[derive(Clone)]
pub struct Events(SendWrapper<Option<js_sys::Function>>);

impl Events {
    /// Wraps the callback.
    pub fn new(callback: Option<js_sys::Function>) -> Self {
        Self(SendWrapper::new(callback))
    }

    /// Calls `onEvent({type, provider, connection_id?, error?})`; a throwing host does not break
    /// the widget.
    pub fn emit(&self, kind: EventKind, provider: &str, connection_id: Option<&str>, error: Option<(&str, &str)>) {
        let Some(callback) = self.0.as_ref() else { return };
        let event = js_sys::Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = js_sys::Reflect::set(&event, &JsValue::from_str(k), &v);
        };
        set("type", JsValue::from_str(kind.as_str()));
        set("provider", JsValue::from_str(provider));
        if let Some(id) = connection_id {
            set("connection_id", JsValue::from_str(id));
        }
        if let Some((code, message)) = error {
            let e = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&e, &"code".into(), &JsValue::from_str(code));
            let _ = js_sys::Reflect::set(&e, &"message".into(), &JsValue::from_str(message));
            set("error", e.into());
        }
        let _ = callback.call1(&JsValue::NULL, &event);
    }
}

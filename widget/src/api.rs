//! The one client of the widget API. Every call carries the widget token; a call answered
//! `widget_token_expired` asks the host page for a new token (`getToken`) once and retries, so
//! a page left open for an hour keeps working.

use crate::json;
use crate::model::Problem;
use latch_shared::ErrorCode;
use latch_shared::endpoint::{Endpoint, Method};
use send_wrapper::SendWrapper;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;

/// An API failure: the problem the widget branches on, and Latch's message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub problem: Problem,
    pub message: String,
}

impl ApiError {
    fn of(problem: Problem) -> Self {
        Self { problem, message: String::new() }
    }
}

struct Inner {
    base: String,
    token: RefCell<String>,
    get_token: Option<js_sys::Function>,
}

/// Where the API is and how to authenticate; cheap to clone and `Send` (the widget runs on the
/// browser's one thread, so the wrapper never crosses threads).
#[derive(Clone)]
pub struct Session(SendWrapper<Rc<Inner>>);

impl Session {
    /// A session against the Latch origin `base`.
    pub fn new(base: String, token: String, get_token: Option<js_sys::Function>) -> Self {
        Self(SendWrapper::new(Rc::new(Inner { base, token: RefCell::new(token), get_token })))
    }

    /// The Latch origin (for checking `postMessage` senders).
    pub fn origin(&self) -> String {
        self.0.base.clone()
    }

    /// Calls endpoint `E` with its path parameters and body (`None` for no body).
    pub async fn call<E>(&self, params: &[&str], body: Option<&E::Request>) -> Result<E::Response, ApiError>
    where
        E: Endpoint,
        E::Request: Serialize,
        E::Response: DeserializeOwned,
    {
        self.call_with::<E>(params, body, json::from_value).await
    }

    /// [`Session::call`], with the answer read by `read`.
    pub async fn call_with<E>(
        &self,
        params: &[&str],
        body: Option<&E::Request>,
        read: fn(JsValue) -> Result<E::Response, json::Error>,
    ) -> Result<E::Response, ApiError>
    where
        E: Endpoint,
        E::Request: Serialize,
    {
        let body = body.map(json::to_string).transpose().map_err(|_| ApiError::of(Problem::InvalidResponse))?;
        let value = self.request(E::METHOD, fill(E::PATH, params), body).await?;
        read(value).map_err(|_| ApiError::of(Problem::InvalidResponse))
    }

    /// The part of [`Session::call`] that does not depend on the endpoint's types, boxed so that
    /// each endpoint's future stays small instead of embedding its own copy of this one.
    fn request(
        &self,
        method: Method,
        path: String,
        body: Option<JsValue>,
    ) -> Pin<Box<dyn Future<Output = Result<JsValue, ApiError>> + '_>> {
        Box::pin(async move {
            match self.once(method, &path, body.as_ref()).await {
                Err(e) if e.problem == Problem::Latch(ErrorCode::WidgetTokenExpired) && self.renew().await => {
                    self.once(method, &path, body.as_ref()).await
                }
                other => other,
            }
        })
    }

    /// One request with the browser's `fetch`; the answer's JSON parsed by the browser (no body,
    /// as a 204 has, reads as `null`, which is what `()` is).
    async fn once(&self, method: Method, path: &str, body: Option<&JsValue>) -> Result<JsValue, ApiError> {
        let network = |_| ApiError::of(Problem::Network);
        let window = web_sys::window().ok_or(ApiError::of(Problem::Network))?;
        let headers = web_sys::Headers::new().map_err(network)?;
        headers.set("Authorization", &format!("Bearer {}", self.0.token.borrow())).map_err(network)?;
        let init = web_sys::RequestInit::new();
        init.set_method(method.as_str());
        if let Some(body) = body {
            headers.set("Content-Type", "application/json").map_err(network)?;
            init.set_body(body);
        }
        init.set_headers(&headers);
        let url = format!("{}{path}", self.0.base);
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await.map_err(network)?.unchecked_into();
        let status = response.status();
        let text = JsFuture::from(response.text().map_err(network)?).await.map_err(network)?.as_string();
        let text = text.unwrap_or_default();
        let value = if text.is_empty() { Ok(JsValue::NULL) } else { json::parse(&text) };
        if (200..300).contains(&status) {
            return value.map_err(|_| ApiError::of(Problem::InvalidResponse));
        }
        // The envelope is read with the code as text, so a code this widget does not know yet is
        // still told as it is (`Problem::from_code`).
        let error = json::get(&value.unwrap_or(JsValue::NULL), "error");
        Err(match (json::get(&error, "code").as_string(), json::get(&error, "message").as_string()) {
            (Some(code), Some(message)) => ApiError { problem: Problem::from_code(&code), message },
            _ => ApiError::of(Problem::Unknown(format!("http_{status}"))),
        })
    }

    /// Asks the host page for a fresh token; true if one arrived.
    async fn renew(&self) -> bool {
        let Some(get_token) = &self.0.get_token else { return false };
        let Ok(result) = get_token.call0(&JsValue::NULL) else { return false };
        let value = match result.dyn_into::<js_sys::Promise>() {
            Ok(promise) => JsFuture::from(promise).await.ok(),
            Err(result) => Some(result),
        };
        match value.and_then(|v| v.as_string()).filter(|t| !t.is_empty()) {
            Some(token) => {
                *self.0.token.borrow_mut() = token;
                true
            }
            None => false,
        }
    }
}

/// `Endpoint::path`: the contract's path template with its parameters filled in, each
/// percent-encoded as one segment. Written here without string slicing or `format!`, whose
/// panic and formatting code would add about 4 KB gzipped to the widget; the test checks it
/// against `Endpoint::path`.
fn fill(template: &str, params: &[&str]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(template.len());
    let mut params = params.iter();
    let mut parts = template.split('{');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        // `name}rest`: the parameter's value, then the rest of the template.
        for byte in params.next().copied().unwrap_or_default().bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
        out.push_str(part.split_once('}').map_or("", |(_, rest)| rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fill;
    use latch_shared::api::widget::{Disconnect, GetFlow, ListIntegrations, StartConnect};
    use latch_shared::endpoint::Endpoint;

    #[test]
    fn paths_are_the_contracts() {
        fn check<E: Endpoint>() {
            for params in [&[][..], &["flow_1"], &["a/b c"], &["ü%é?#~._-"], &["x", "y"]] {
                assert_eq!(fill(E::PATH, params), E::path(params), "{} {params:?}", E::PATH);
            }
        }
        check::<ListIntegrations>();
        check::<StartConnect>();
        check::<GetFlow>();
        check::<Disconnect>();
    }
}

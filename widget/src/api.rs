//! The one client of the widget API. Every call carries the widget token; a call answered
//! `widget_token_expired` asks the host page for a new token (`getToken`) once and retries, so
//! a page left open for an hour keeps working.

use crate::model::Problem;
use gloo_net::http::{Request, RequestBuilder};
use latch_shared::ErrorCode;
use latch_shared::endpoint::{Endpoint, Method};
use send_wrapper::SendWrapper;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;

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
        let body = body.map(serde_json::to_string).transpose().map_err(|_| ApiError::of(Problem::InvalidResponse))?;
        let path = E::path(params);
        let text = match self.once(E::METHOD, &path, body.clone()).await {
            Err(e) if e.problem == Problem::Latch(ErrorCode::WidgetTokenExpired) && self.renew().await => {
                self.once(E::METHOD, &path, body).await
            }
            other => other,
        }?;
        // No body (204) reads as `null`, which is what `()` is.
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).map_err(|_| ApiError::of(Problem::InvalidResponse))
    }

    async fn once(&self, method: Method, path: &str, body: Option<String>) -> Result<String, ApiError> {
        let url = format!("{}{path}", self.0.base);
        let builder: RequestBuilder = match method {
            Method::Post => Request::post(&url),
            Method::Patch => Request::patch(&url),
            Method::Delete => Request::delete(&url),
            Method::Get => Request::get(&url),
        };
        let builder = builder.header("Authorization", &format!("Bearer {}", self.0.token.borrow()));
        let request = match body {
            Some(body) => builder.header("Content-Type", "application/json").body(body),
            None => builder.build(),
        }
        .map_err(|_| ApiError::of(Problem::Network))?;
        let response = request.send().await.map_err(|_| ApiError::of(Problem::Network))?;
        let status = response.status();
        let text = response.text().await.map_err(|_| ApiError::of(Problem::Network))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        // The envelope is read with the code as text, so a code this widget does not know yet is
        // still told as it is (`Problem::from_code`).
        let envelope = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| {
            let error = v.get("error")?;
            Some((error.get("code")?.as_str()?.to_owned(), error.get("message")?.as_str()?.to_owned()))
        });
        Err(match envelope {
            Some((code, message)) => ApiError { problem: Problem::from_code(&code), message },
            None => ApiError::of(Problem::Unknown(format!("http_{status}"))),
        })
    }

    /// Asks the host page for a fresh token; true if one arrived.
    async fn renew(&self) -> bool {
        let Some(get_token) = &self.0.get_token else { return false };
        let Ok(result) = get_token.call0(&JsValue::NULL) else { return false };
        let value = match result.clone().dyn_into_promise() {
            Some(promise) => wasm_bindgen_futures::JsFuture::from(promise).await.ok(),
            None => Some(result),
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

trait DynIntoPromise {
    fn dyn_into_promise(self) -> Option<js_sys::Promise>;
}

impl DynIntoPromise for JsValue {
    fn dyn_into_promise(self) -> Option<js_sys::Promise> {
        use wasm_bindgen::JsCast as _;
        self.dyn_into::<js_sys::Promise>().ok()
    }
}

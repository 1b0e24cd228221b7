//! The one client of the widget API. Every call carries the widget token; a call answered
//! `widget_token_expired` asks the host page for a new token (`getToken`) once and retries, so
//! a page left open for an hour keeps working.

use gloo_net::http::{Request, RequestBuilder};
use latch_shared::ErrorBody;
use latch_shared::api::widget::{ConnectRequest, ConnectStarted, FlowStatus, IntegrationList};
use send_wrapper::SendWrapper;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;

/// An API failure, with the stable code the widget branches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn network() -> Self {
        Self { code: "network".into(), message: String::new() }
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

    /// `GET /widget/v1/integrations`.
    pub async fn integrations(&self) -> Result<IntegrationList, ApiError> {
        self.call("GET", "/widget/v1/integrations", None).await
    }

    /// `POST /widget/v1/connect`.
    pub async fn connect(&self, req: &ConnectRequest) -> Result<ConnectStarted, ApiError> {
        let body = serde_json::to_string(req).map_err(|_| ApiError::network())?;
        self.call("POST", "/widget/v1/connect", Some(body)).await
    }

    /// `GET /widget/v1/flows/{id}`.
    pub async fn flow(&self, id: &str) -> Result<FlowStatus, ApiError> {
        self.call("GET", &format!("/widget/v1/flows/{id}"), None).await
    }

    /// `DELETE /widget/v1/connections/{id}`.
    pub async fn disconnect(&self, id: &str) -> Result<(), ApiError> {
        self.send("DELETE", &format!("/widget/v1/connections/{id}"), None).await.map(|_| ())
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<String>) -> Result<T, ApiError> {
        let text = self.send(method, path, body).await?;
        serde_json::from_str(&text).map_err(|_| ApiError { code: "invalid_response".into(), message: String::new() })
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>) -> Result<String, ApiError> {
        match self.once(method, path, body.clone()).await {
            Err(e) if e.code == "widget_token_expired" && self.renew().await => self.once(method, path, body).await,
            other => other,
        }
    }

    async fn once(&self, method: &str, path: &str, body: Option<String>) -> Result<String, ApiError> {
        let url = format!("{}{path}", self.0.base);
        let builder: RequestBuilder = match method {
            "POST" => Request::post(&url),
            "DELETE" => Request::delete(&url),
            _ => Request::get(&url),
        };
        let builder = builder.header("Authorization", &format!("Bearer {}", self.0.token.borrow()));
        let request = match body {
            Some(body) => builder.header("Content-Type", "application/json").body(body),
            None => builder.build(),
        }
        .map_err(|_| ApiError::network())?;
        let response = request.send().await.map_err(|_| ApiError::network())?;
        let status = response.status();
        let text = response.text().await.map_err(|_| ApiError::network())?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ApiError { code: body.error.code.as_str().to_owned(), message: body.error.message },
            Err(_) => ApiError { code: format!("http_{status}"), message: String::new() },
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

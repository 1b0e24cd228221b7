//! The one outbound HTTP client: no redirects (a token endpoint that redirects would re-post the
//! client secret elsewhere), connect and total timeouts, and capped response bodies.

use std::future::Future;
use std::time::Duration;

/// Timeout of every provider call; the refresh lease outlives it (see `oauth::refresh`).
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider response body read; bigger answers are refused, not buffered.
pub const MAX_BODY: usize = 1024 * 1024;

/// Builds the client used for every provider call. A failure is a start-up error: falling
/// back to a default client would follow redirects and have no timeout.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("latch/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads at most [`MAX_BODY`] bytes; `None` if the body is larger or the stream fails.
pub async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            body.clear();
            body.shrink_to_fit();
            return Ok(Vec::new());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Which endpoint a [`ProviderCall`] talks to, so its answer is read the right way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revocation,
}

/// Why a provider call produced no answer for the `oauth2` crate to read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The request could not be built or sent, or the answer not read; the reason names no URL.
    #[error("{0}")]
    Transport(String),
    /// The answer was refused before the crate read it (see `quirks`).
    #[error(transparent)]
    Refused(#[from] super::quirks::Refusal),
}

/// The `oauth2` crate's HTTP client: our client (no redirects, timeouts, capped bodies), a
/// deadline per call, the `Authorization` header marked sensitive, and each answer passed
/// through `quirks` first. Remembers the status the provider sent, for the trail.
#[derive(Debug)]
pub struct ProviderCall<'a> {
    http: &'a reqwest::Client,
    timeout: Duration,
    /// The provider's key, for the metrics.
    provider: &'a str,
    dialect: crate::providers::Dialect,
    endpoint: Endpoint,
    /// Where the request goes instead of the URL the crate put in it (see `protocol`).
    send_to: Option<url::Url>,
    status: std::sync::atomic::AtomicU16,
}

impl<'a> ProviderCall<'a> {
    /// A call to `endpoint` of `provider`, within `timeout`.
    pub fn new(
        http: &'a reqwest::Client,
        timeout: Duration,
        provider: &'a crate::providers::Provider,
        endpoint: Endpoint,
    ) -> Self {
        let (dialect, provider) = (provider.dialect, provider.key.as_str());
        Self { http, timeout, provider, dialect, endpoint, send_to: None, status: Default::default() }
    }

    /// Sends to `url`, the endpoint as configured, whatever URL the crate built.
    pub fn sending_to(mut self, url: url::Url) -> Self {
        self.send_to = Some(url);
        self
    }

    /// The HTTP status of the provider's last answer (0 before one).
    pub fn status(&self) -> u16 {
        self.status.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn send(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, CallError> {
        let mut request = outbound(request, self.timeout)?;
        if let Some(url) = &self.send_to {
            *request.url_mut() = url.clone();
        }
        let started = std::time::Instant::now();
        let endpoint = match self.endpoint {
            Endpoint::Token => "token",
            Endpoint::Revocation => "revocation",
        };
        let response = self.http.execute(request).await.map_err(|e| {
            crate::metrics::provider_call(self.provider, endpoint, 0, started.elapsed());
            CallError::Transport(super::token::describe_transport(&e))
        })?;
        let status = response.status().as_u16();
        crate::metrics::provider_call(self.provider, endpoint, status, started.elapsed());
        self.status.store(status, std::sync::atomic::Ordering::Relaxed);
        let retry_after = response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
        if let Some(retry_after) = super::quirks::retry_after(status, retry_after) {
            return Err(super::quirks::Refusal::RateLimited { retry_after }.into());
        }
        let is_form = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded") || v.starts_with("text/plain"));
        let body =
            read_capped(response).await.map_err(|e| CallError::Transport(super::token::describe_transport(&e)))?;
        let (status, body) = match self.endpoint {
            Endpoint::Token => super::quirks::token_answer(self.dialect, status, is_form, &body)?,
            Endpoint::Revocation => super::quirks::revocation_answer(status, &body),
        };
        json_answer(status, body)
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for ProviderCall<'_> {
    type Error = CallError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// An answer `quirks` made standard, as the crate reads it: `status` and a JSON body.
pub fn json_answer(status: u16, body: Vec<u8>) -> Result<oauth2::HttpResponse, CallError> {
    oauth2::http::Response::builder()
        .status(status)
        .header(oauth2::http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|_| CallError::Transport("unreadable answer".into()))
}

/// The crate's request as ours: with the call's deadline, and the client credentials in
/// `Authorization` marked sensitive, so no debug output or HTTP/2 header table ever shows them.
pub fn outbound(request: oauth2::HttpRequest, timeout: Duration) -> Result<reqwest::Request, CallError> {
    let mut request = reqwest::Request::try_from(request)
        .map_err(|_| CallError::Transport("the request could not be built".into()))?;
    *request.timeout_mut() = Some(timeout);
    if let Some(value) = request.headers_mut().get_mut(reqwest::header::AUTHORIZATION) {
        value.set_sensitive(true);
    }
    Ok(request)
}

//! The one outbound HTTP client: no redirects (a token endpoint that redirects would re-post the
//! client secret elsewhere), connect and total timeouts, and capped response bodies.

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

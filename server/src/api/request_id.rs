//! Request ids: every response carries `x-request-id`, and the request's log lines name it, so
//! an operator can find a caller's request in the log. A proxy's id in front of Latch is kept
//! when it is a short token; anything else a caller sends is replaced, so no one can write
//! arbitrary text into the log through it.

use axum::http::{HeaderName, HeaderValue, Request};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_http::request_id::{MakeRequestId, RequestId};

/// The header, in both directions.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id kept from a caller.
const MAX_LEN: usize = 64;

/// New ids: this process's random prefix and a counter (unique without a system call per
/// request).
#[derive(Clone, Copy, Default)]
pub struct RequestIds;

static PREFIX: LazyLock<String> =
    LazyLock::new(|| crate::random::bytes::<6>().iter().map(|b| format!("{b:02x}")).collect());
static NEXT: AtomicU64 = AtomicU64::new(1);

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", *PREFIX)).ok().map(RequestId::new)
    }
}

/// Whether a caller's id is kept: 1 to 64 letters, digits, `-`, `_`, `.`.
pub fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Drops a caller's id that is not [`acceptable`], so a new one is made.
pub async fn drop_unacceptable(mut request: axum::extract::Request) -> axum::extract::Request {
    if request.headers().get(X_REQUEST_ID).is_some_and(|v| !acceptable(v)) {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_tokens_are_kept() {
        for kept in ["abc", "0f1e-2d3c", "proxy_id.42", &"a".repeat(64)] {
            assert!(acceptable(&HeaderValue::from_str(kept).unwrap()), "{kept}");
        }
        for dropped in ["", "a b", "id\"}", "x=1;y", &"a".repeat(65)] {
            assert!(!acceptable(&HeaderValue::from_str(dropped).unwrap()), "{dropped}");
        }
    }
}

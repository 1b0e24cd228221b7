//! Work that must run to its end whatever happens to the request that started it.
//!
//! When an HTTP client gives up (a timeout, a reset connection, an HTTP/2 stream reset), hyper
//! drops the handler's future at its next `.await`. For most handlers that is harmless; for a
//! code exchange, a refresh or a revocation it is not: the provider has acted (a code spent, a
//! refresh token rotated) and what it answered must be stored. Such work runs in a task of its
//! own, which the handler merely awaits.

use std::future::Future;

/// Runs `work` in its own task and waits for it; `None` only if the task panicked.
pub async fn run_to_end<T, F>(work: F) -> Option<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = %e, "detached work ended abnormally");
            None
        }
    }
}

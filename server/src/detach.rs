//! Work that must run to its end whatever happens to the request that started it.
//!
//! When an HTTP client gives up (a timeout, a reset connection, an HTTP/2 stream reset), hyper
//! drops the handler's future at its next `.await`. For most handlers that is harmless; for a
//! code exchange, a refresh or a revocation it is not: the provider has acted (a code spent, a
//! refresh token rotated) and what it answered must be stored. Such work runs in a task of its
//! own, which the handler merely awaits. A shutdown waits for these tasks too ([`finish`]):
//! a SIGTERM must not cut a refresh between the provider's answer and its write.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Every detached task of this process.
static TASKS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Runs `work` in a task of its own that a shutdown waits for.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TASKS.spawn(work)
}

/// Waits up to `grace` for the detached work under way (a shutdown, once no request is left to
/// start more); false if some was still running.
pub async fn finish(grace: Duration) -> bool {
    TASKS.close();
    let done = tokio::time::timeout(grace, TASKS.wait()).await.is_ok();
    // Tasks spawned later (another server in this process, as in tests) are tracked again.
    TASKS.reopen();
    done
}

/// Runs `work` in its own task and waits for it; `None` only if the task panicked.
pub async fn run_to_end<T, F>(work: F) -> Option<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match spawn(work).await {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = %e, "detached work ended abnormally");
            None
        }
    }
}

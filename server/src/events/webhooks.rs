//! Webhook endpoints and delivery, signed the way the Standard Webhooks spec says, so receivers
//! verify with that spec's libraries: headers `webhook-id` (the event id, stable across retries,
//! for deduplication), `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` under the `whsec_` secret (during a rotation, the old secret signs too).
//!
//! Each endpoint is delivered in event order from its cursor: the event at the cursor is retried
//! with back-off for 24 hours before the next one is sent, then kept as failed (listable,
//! re-sendable). So a receiver that was down gets every event, in order, once it is back. A
//! lease on the endpoint row makes one replica at a time deliver it.

use super::targets::{self, TargetError};
use crate::clock::{Clock, from_unix};
use crate::store::Store;
use crate::store::StoreError;
use crate::store::events::{EndpointRow, EventRow, FailureRow};
use crate::store::new_id;
use crate::vault::{Sealed, Secret, Vault};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use latch_shared::api::host::{CreateWebhookEndpoint, Event, WebhookEndpoint, WebhookFailure};
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How long a failing event is retried before it is given up.
pub const GIVE_UP_AFTER: i64 = 24 * 3600;
/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: i64 = 24 * 3600;
const LEASE: i64 = 60;

/// What webhook management and delivery work with, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub store: Store,
    pub vault: Vault,
    pub clock: Clock,
    /// For deliveries only: no redirects, timeouts, names resolved and checked once.
    pub http: reqwest::Client,
    /// Endpoints this process is delivering.
    pub deliveries: Arc<Deliveries>,
    /// `allow_private_webhook_targets`.
    pub allow_private_targets: bool,
}

/// A webhook-management failure, mapped to HTTP once in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no such webhook endpoint")]
    EndpointNotFound,
    /// No such event; the message says which.
    #[error("{0}")]
    EventNotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A re-sent event the endpoint did not accept.
    #[error("the endpoint did not accept it: {0}")]
    NotAccepted(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new signing secret: `whsec_` and 32 random bytes, base64.
pub fn new_secret() -> String {
    format!("whsec_{}", STANDARD.encode(crate::random::bytes::<32>()))
}

/// The Standard Webhooks signature of one message: `v1,<base64>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Checks a new endpoint's URL and resolves its host once, so a target that is refused (see
/// `targets`) fails at creation with a clear message; deliveries check again when connecting.
pub async fn check_target(url: &str, allow_private: bool) -> Result<Url, WebhookError> {
    let invalid = |e: TargetError| WebhookError::Invalid { field: "url", message: e.to_string() };
    let parsed = targets::check_url(url, allow_private).map_err(invalid)?;
    let host = parsed.host_str().ok_or(TargetError::NoHost).map_err(invalid)?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    targets::resolve_checked(&host, port, allow_private).await.map_err(invalid)?;
    Ok(parsed)
}

fn view(row: &EndpointRow, secret: Option<String>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: row.id.clone(),
        url: row.url.clone(),
        events: row.events.split(' ').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        secret,
        created_at: from_unix(row.created_at),
        failing_attempts: row.attempts,
        last_error: row.last_error.clone(),
    }
}

fn not_found() -> WebhookError {
    WebhookError::EndpointNotFound
}

/// `POST /v1/webhook-endpoints`.
pub async fn create(hooks: &Webhooks, req: &CreateWebhookEndpoint) -> Result<WebhookEndpoint, WebhookError> {
    let url = check_target(&req.url, hooks.allow_private_targets).await?;
    let events = req.events.clone().unwrap_or_default();
    if let Some(unknown) = events.iter().find(|e| !super::ALL.contains(&e.as_str())) {
        return Err(WebhookError::Invalid { field: "events", message: format!("unknown event type {unknown:?}") });
    }
    let id = new_id("whe");
    let secret = new_secret();
    let sealed = hooks.vault.seal_str(Sealed::WebhookSecret.slot(&id), &secret);
    hooks.store.insert_endpoint(&id, url.as_str(), &events.join(" "), &sealed, hooks.clock.unix()).await?;
    let row = hooks.store.endpoint(&id).await?.ok_or_else(not_found)?;
    Ok(view(&row, Some(secret)))
}

/// `GET /v1/webhook-endpoints`.
pub async fn list(hooks: &Webhooks) -> Result<Vec<WebhookEndpoint>, WebhookError> {
    Ok(hooks.store.endpoints().await?.iter().map(|r| view(r, None)).collect())
}

/// `DELETE /v1/webhook-endpoints/{id}`.
pub async fn delete(hooks: &Webhooks, id: &str) -> Result<(), WebhookError> {
    if hooks.store.delete_endpoint(id).await? { Ok(()) } else { Err(not_found()) }
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`: a new secret; the old one keeps signing for
/// 24 hours, so receivers can switch without losing a delivery.
pub async fn rotate(hooks: &Webhooks, id: &str) -> Result<WebhookEndpoint, WebhookError> {
    let row = hooks.store.endpoint(id).await?.ok_or_else(not_found)?;
    // The current secret moves to the `previous_secret` column: re-seal it for its new slot.
    let current = open_secret(hooks, &row.id, Sealed::WebhookSecret, &row.secret)
        .ok_or_else(|| WebhookError::Internal("secret does not decrypt".into()))?;
    let secret = new_secret();
    let sealed_new = hooks.vault.seal_str(Sealed::WebhookSecret.slot(id), &secret);
    let sealed_old = hooks.vault.seal_str(Sealed::PreviousWebhookSecret.slot(id), current.expose());
    hooks.store.rotate_endpoint_secret(id, &sealed_new, &sealed_old, hooks.clock.unix() + ROTATION_OVERLAP).await?;
    let row = hooks.store.endpoint(id).await?.ok_or_else(not_found)?;
    Ok(view(&row, Some(secret)))
}

/// `GET /v1/webhook-endpoints/{id}/failures`.
pub async fn failures(hooks: &Webhooks, id: &str) -> Result<Vec<WebhookFailure>, WebhookError> {
    hooks.store.endpoint(id).await?.ok_or_else(not_found)?;
    Ok(hooks
        .store
        .failures(id)
        .await?
        .into_iter()
        .map(|f| WebhookFailure {
            id: f.id,
            event_id: f.event_id,
            attempts: f.attempts,
            last_error: f.last_error,
            failed_at: from_unix(f.failed_at),
            resent_at: f.resent_at.map(from_unix),
        })
        .collect())
}

/// `POST /v1/webhook-endpoints/{id}/failures/{failure_id}/resend`: one immediate attempt.
pub async fn resend(hooks: &Webhooks, id: &str, failure_id: &str) -> Result<(), WebhookError> {
    let endpoint = hooks.store.endpoint(id).await?.ok_or_else(not_found)?;
    let failure = hooks.store.failures(id).await?.into_iter().find(|f| f.id == failure_id).ok_or_else(not_found)?;
    let event = hooks.store.event(&failure.event_id).await?.ok_or(WebhookError::EventNotFound("The event is gone."))?;
    deliver(hooks, &endpoint, &event).await.map_err(WebhookError::NotAccepted)?;
    hooks.store.failure_resent(failure_id, hooks.clock.unix()).await?;
    Ok(())
}

/// The public form of an event (polling and deliveries).
pub fn event_view(e: &EventRow) -> Event {
    Event {
        id: e.id.clone(),
        kind: e.kind.clone(),
        created_at: from_unix(e.created_at),
        data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
    }
}

fn open_secret(hooks: &Webhooks, id: &str, column: Sealed, sealed: &[u8]) -> Option<Secret> {
    hooks.vault.open_secret(column.slot(id), sealed).ok()
}

/// POSTs one event to one endpoint; `Err` carries a short reason.
async fn deliver(hooks: &Webhooks, endpoint: &EndpointRow, event: &EventRow) -> Result<(), String> {
    let result = deliver_once(hooks, endpoint, event).await;
    crate::metrics::delivery(result.is_ok());
    result
}

async fn deliver_once(hooks: &Webhooks, endpoint: &EndpointRow, event: &EventRow) -> Result<(), String> {
    // A name is resolved and checked by the delivery client's own resolver, once, when it
    // connects; an IP literal is checked here.
    let target = targets::check_url(&endpoint.url, hooks.allow_private_targets).map_err(|e| e.to_string())?;
    let now = hooks.clock.unix();
    let body = serde_json::json!({
        "type": event.kind,
        "timestamp": from_unix(event.created_at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "data": serde_json::from_str::<serde_json::Value>(&event.data).unwrap_or(serde_json::Value::Null),
    })
    .to_string();
    let mut signatures = Vec::new();
    if let Some(secret) = open_secret(hooks, &endpoint.id, Sealed::WebhookSecret, &endpoint.secret) {
        signatures.extend(sign(secret.expose(), &event.id, now, &body));
    }
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
        && until > now
        && let Some(secret) = open_secret(hooks, &endpoint.id, Sealed::PreviousWebhookSecret, previous)
    {
        signatures.extend(sign(secret.expose(), &event.id, now, &body));
    }
    if signatures.is_empty() {
        return Err("signing secret unavailable".into());
    }
    let response = hooks
        .http
        .post(target)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(body)
        .send()
        .await
        .map_err(|e| crate::oauth::token::describe_transport(&e))?;
    if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status().as_u16())) }
}

/// Back-off after the `attempts`-th failure: 5 s, 30 s, 2 min, 10 min, 30 min, then hourly.
fn backoff(attempts: i64) -> i64 {
    match attempts {
        ..=1 => 5,
        2 => 30,
        3 => 120,
        4 => 600,
        5 => 1800,
        _ => 3600,
    }
}

/// Endpoints this process is delivering, and how many it may deliver at once, so a slow or
/// dead endpoint delays nobody else.
#[derive(Debug)]
pub struct Deliveries {
    busy: Mutex<HashSet<String>>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Endpoints delivered at the same time by one process, at most.
const CONCURRENT_ENDPOINTS: usize = 8;

impl Default for Deliveries {
    fn default() -> Self {
        Self { busy: Mutex::default(), slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ENDPOINTS)) }
    }
}

impl Deliveries {
    fn claim(&self, id: &str) -> bool {
        self.busy.lock().map(|mut busy| busy.insert(id.to_owned())).unwrap_or(false)
    }
    fn done(&self, id: &str) {
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(id);
        }
    }
}

/// Starts a delivery for every due endpoint that this process is not delivering already and
/// that it can lease, each in a task of its own that runs on after this returns (at most
/// [`CONCURRENT_ENDPOINTS`] at once).
pub async fn deliver_due(hooks: &Webhooks) -> Result<(), StoreError> {
    for endpoint in hooks.store.due_endpoints(hooks.clock.unix()).await? {
        let Ok(slot) = hooks.deliveries.slots.clone().try_acquire_owned() else { break };
        if !hooks.deliveries.claim(&endpoint.id) {
            continue;
        }
        let now = hooks.clock.unix();
        let owner = new_id("whl");
        match hooks.store.lease_endpoint(&endpoint.id, &owner, now, now + LEASE).await {
            Ok(true) => {}
            other => {
                hooks.deliveries.done(&endpoint.id);
                other?;
                continue;
            }
        }
        let hooks = hooks.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = drain(&hooks, &endpoint, &owner).await {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "webhook delivery stopped");
            }
            if let Err(e) = hooks.store.release_endpoint(&endpoint.id, &owner).await {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "could not release a webhook lease");
            }
            hooks.deliveries.done(&endpoint.id);
        });
    }
    Ok(())
}

/// Sends events in order from the cursor until one fails, the lease is nearly over, or another
/// worker turns out to hold the endpoint (every write is fenced by `owner`).
async fn drain(hooks: &Webhooks, endpoint: &EndpointRow, owner: &str) -> Result<(), StoreError> {
    let started = hooks.clock.unix();
    let subscribed: Vec<&str> = endpoint.events.split(' ').filter(|e| !e.is_empty()).collect();
    let mut cursor = endpoint.cursor();
    let mut attempts = endpoint.attempts;
    let mut first_failed_at = endpoint.first_failed_at;
    // A delivery takes at most the HTTP timeout: none starts that could outlive the lease.
    let last_start = started + LEASE - 2 * crate::oauth::http::PROVIDER_TIMEOUT.as_secs() as i64;
    loop {
        let batch = hooks.store.events_after(cursor, 50).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for event in batch {
            if hooks.clock.unix() >= last_start {
                return Ok(());
            }
            let wanted = subscribed.is_empty() || subscribed.contains(&event.kind.as_str());
            let delivered = if wanted { deliver(hooks, endpoint, &event).await } else { Ok(()) };
            match delivered {
                Ok(()) => {
                    if !hooks.store.advance_endpoint(&endpoint.id, owner, event.position()).await? {
                        return Ok(()); // our lease is gone: the next holder carries on
                    }
                    cursor = event.position();
                    attempts = 0;
                    first_failed_at = None;
                }
                Err(reason) => {
                    let now = hooks.clock.unix();
                    attempts += 1;
                    let first = first_failed_at.unwrap_or(now);
                    tracing::warn!(endpoint = %endpoint.id, event = %event.id, attempts, %reason, "webhook delivery failed");
                    if now - first >= GIVE_UP_AFTER {
                        let failure = FailureRow {
                            id: new_id("whf"),
                            endpoint_id: endpoint.id.clone(),
                            event_id: event.id.clone(),
                            attempts,
                            last_error: Some(reason),
                            failed_at: now,
                            resent_at: None,
                        };
                        hooks.store.give_up_event(&failure, owner, event.position()).await?;
                    } else {
                        hooks
                            .store
                            .endpoint_attempt_failed(
                                &endpoint.id,
                                owner,
                                attempts,
                                first,
                                now + backoff(attempts),
                                &reason,
                            )
                            .await?;
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// Looks for due endpoints every half second until `stop` is cancelled; deliveries run on in
/// their own tasks meanwhile (started by `serve`, never by a one-shot command).
pub async fn run(hooks: Webhooks, stop: CancellationToken) {
    loop {
        let round = async {
            if let Err(e) = deliver_due(&hooks).await {
                tracing::warn!(error = %e, "webhook delivery round failed");
            }
            Clock::sleep(Duration::from_millis(500)).await;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = round => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}

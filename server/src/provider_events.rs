//! Events providers push to Latch. Slack's Events API arrives at
//! `POST /providers/{key}/events`: each request is signed (`X-Slack-Signature` = `v0=` + hex
//! HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's signing secret,
//! compared in constant time, within five minutes of now), so a forged or replayed one changes
//! nothing. `url_verification` answers its challenge; `app_uninstalled` deletes (tombstones)
//! every connection of that workspace or enterprise at once; `tokens_revoked` marks the
//! connections holding a listed bot user's or installing user's token `needs_reauthorization`.
//! Anything else is acknowledged.

use crate::activity::{Action, Actor, Entry, record};
use crate::connections::{ConnectionError, Deleter};
use crate::providers::Dialect;
use crate::store::StoreError;
use crate::store::connections::ConnectionRow;
use crate::vault::Sealed;
use hmac::{Hmac, Mac as _};
use latch_shared::ConnectionStatus;
use serde::Deserialize;
use sha2::Sha256;

/// How far a request's timestamp may be from now (Slack's own advice).
const WINDOW_SECONDS: i64 = 300;

/// Who acts on connections when a provider says they are gone.
const ACTOR: &str = "provider_events";

/// Why an event was not taken.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// No such provider, or one that pushes no events.
    #[error("no provider {0} receives events")]
    NoReceiver(String),
    /// The operator has not stored the provider's signing secret.
    #[error("no signing secret is stored for {0}")]
    NoSigningSecret(String),
    /// Unsigned, badly signed, or outside the time window.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// Signed, but not an event body.
    #[error("not an event: {0}")]
    Malformed(String),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to answer the provider.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `url_verification`: echo the challenge.
    Challenge(String),
    /// Taken (acted on, or nothing to do).
    Accepted,
}

/// The signed parts of a pushed request.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    enterprise_id: Option<String>,
    #[serde(default)]
    event: Option<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    tokens: Option<Tokens>,
}

/// `tokens_revoked`'s lists: the users whose user tokens (`oauth`) and the bot users whose bot
/// tokens (`bot`) were revoked.
#[derive(Deserialize, Default)]
struct Tokens {
    #[serde(default)]
    oauth: Vec<String>,
    #[serde(default)]
    bot: Vec<String>,
}

/// Receives one pushed request for provider `key`.
pub async fn receive(d: &Deleter, key: &str, signed: Signed<'_>) -> Result<Answer, EventError> {
    let provider = d
        .upstream
        .providers
        .get(key)
        .filter(|p| p.dialect == Dialect::Slack)
        .ok_or_else(|| EventError::NoReceiver(key.to_owned()))?;
    let sealed = d.store.signing_secret(&provider.key).await?;
    let sealed = sealed.ok_or_else(|| EventError::NoSigningSecret(provider.key.clone()))?;
    let secret = d
        .vault
        .open_secret(Sealed::SigningSecret.slot(&provider.key), &sealed)
        .map_err(|_| EventError::NoSigningSecret(provider.key.clone()))?;
    verify(secret.expose().as_bytes(), signed, d.clock.unix()).inspect_err(|e| {
        tracing::warn!(provider = %provider.key, reason = %e, "refused a pushed event");
    })?;
    let envelope: Envelope = serde_json::from_slice(signed.body).map_err(|e| EventError::Malformed(e.to_string()))?;
    match (envelope.kind.as_str(), &envelope.event) {
        ("url_verification", _) => Ok(Answer::Challenge(envelope.challenge.unwrap_or_default())),
        ("event_callback", Some(event)) => {
            let accounts: Vec<&str> =
                [envelope.team_id.as_deref(), envelope.enterprise_id.as_deref()].into_iter().flatten().collect();
            match event.kind.as_str() {
                "app_uninstalled" => uninstalled(d, &provider.key, &accounts).await?,
                "tokens_revoked" => {
                    if let Some(tokens) = &event.tokens {
                        tokens_revoked(d, &provider.key, &accounts, tokens).await?;
                    }
                }
                _ => {}
            }
            Ok(Answer::Accepted)
        }
        _ => Ok(Answer::Accepted),
    }
}

/// Checks Slack's request signature and time window.
pub fn verify(secret: &[u8], signed: Signed<'_>, now: i64) -> Result<(), EventError> {
    let timestamp = signed.timestamp.ok_or(EventError::Refused("no X-Slack-Request-Timestamp"))?;
    let at: i64 = timestamp.parse().map_err(|_| EventError::Refused("a timestamp that is not a number"))?;
    if (now - at).abs() > WINDOW_SECONDS {
        return Err(EventError::Refused("a timestamp more than five minutes away (stale or replayed)"));
    }
    let given = signed
        .signature
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(hex_decode)
        .ok_or(EventError::Refused("no v0 signature"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| EventError::Refused("unusable secret"))?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(signed.body);
    mac.verify_slice(&given).map_err(|_| EventError::Refused("a signature that does not match"))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// The app was uninstalled from these accounts: their connections are gone at Slack, so they
/// are deleted here (tombstones), with their events and trail entries.
async fn uninstalled(d: &Deleter, provider: &str, accounts: &[&str]) -> Result<(), EventError> {
    let actor = Actor::System(ACTOR);
    for row in d.store.connections_of_accounts(provider, accounts).await? {
        let entry = Entry::new(d.clock.unix(), &actor, Action::ProviderRevoked)
            .connection(&row)
            .detail("the provider reported app_uninstalled for this workspace");
        record(&d.store, entry).await;
        match crate::connections::delete(d, &actor, &row, false).await {
            Ok(()) | Err(ConnectionError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Which token of `row` a `tokens_revoked` event names, if any: its bot (by bot user id), or
/// its installing user's (by user id). A connection made before Latch kept the bot user's id is
/// matched by its bot token when any bot token of the workspace was revoked.
fn revoked_token(row: &ConnectionRow, tokens: &Tokens) -> Option<&'static str> {
    let install = &row.installation.0;
    let named = |list: &[String], id: &Option<String>| id.as_ref().is_some_and(|id| list.contains(id));
    let holds_user_token = row.user_access_token.is_some() || row.token_type == "user";
    if named(&tokens.bot, &install.bot_user_id) {
        Some("bot")
    } else if holds_user_token && named(&tokens.oauth, &install.authed_user_id) {
        Some("user")
    } else if install.bot_user_id.is_none() && row.token_type == "bot" && !tokens.bot.is_empty() {
        Some("bot")
    } else {
        None
    }
}

/// Tokens were revoked (a user removed the app's access, an admin revoked the bot): the
/// connections holding them need a new install.
async fn tokens_revoked(d: &Deleter, provider: &str, accounts: &[&str], tokens: &Tokens) -> Result<(), EventError> {
    let now = d.clock.unix();
    for row in d.store.connections_of_accounts(provider, accounts).await? {
        let Some(which) = revoked_token(&row, tokens) else { continue };
        if row.status != ConnectionStatus::Active {
            continue;
        }
        let event = crate::events::needs_reauthorization(&row, now);
        let flipped = d
            .store
            .set_connection_status(
                &row.id,
                row.version,
                None,
                ConnectionStatus::NeedsReauthorization,
                now,
                Some(&event),
            )
            .await?;
        if flipped {
            let entry = Entry::new(now, &Actor::System(ACTOR), Action::ProviderRevoked)
                .connection(&row)
                .failed("needs_reauthorization")
                .detail(format!("the provider reported tokens_revoked for this connection's {which} token"));
            record(&d.store, entry).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example: secret, timestamp, body and signature.
    #[test]
    fn slacks_documented_example_verifies() {
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signed = Signed {
            timestamp: Some("1531420618"),
            signature: Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            body,
        };
        assert!(verify(secret, signed, 1_531_420_618).is_ok());
        assert!(verify(secret, signed, 1_531_420_618 + 301).is_err(), "stale");
        let forged = Signed { body: b"token=other", ..signed };
        assert!(verify(secret, forged, 1_531_420_618).is_err(), "another body");
        for bad in [None, Some("a2114d57"), Some("v0=zz"), Some("v0=")] {
            assert!(verify(secret, Signed { signature: bad, ..signed }, 1_531_420_618).is_err(), "{bad:?}");
        }
    }
}

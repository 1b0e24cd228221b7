//! Whether a provider still honours a token: Slack's `auth.test` read by its `ok` and `error`
//! (Slack answers HTTP 200 either way), or the identity endpoint read by its HTTP status. Used by
//! re-validation and by a forced refresh that would otherwise be held back.

use crate::providers::Identity;
use crate::vault::Secret;

/// How a provider tells whether a token still works.
#[derive(Debug, Clone, Copy)]
pub enum Check<'a> {
    /// Slack's `auth.test`, read by `ok`/`error` (Slack answers HTTP 200 either way).
    SlackAuthTest(&'a url::Url),
    /// The identity endpoint, read by HTTP status (401: no longer accepted).
    Identity(&'a Identity),
}

impl<'a> Check<'a> {
    pub fn of(provider: &'a crate::providers::Provider) -> Option<Self> {
        match (&provider.validation_url, &provider.identity) {
            (Some(url), _) if provider.dialect == crate::providers::Dialect::Slack => Some(Check::SlackAuthTest(url)),
            (_, Some(identity)) => Some(Check::Identity(identity)),
            _ => None,
        }
    }
}

/// Whether the provider still honours `token`: `None` when it could not tell.
pub async fn honoured(http: &reqwest::Client, check: Check<'_>, token: &Secret) -> Option<bool> {
    match check {
        Check::Identity(identity) => {
            let status = super::identity::request(http, identity, token).send().await.ok()?.status().as_u16();
            match status {
                200..=299 => Some(true),
                401 => Some(false),
                _ => None,
            }
        }
        Check::SlackAuthTest(url) => {
            let response = http.post(url.clone()).bearer_auth(token.expose()).send().await.ok()?;
            let status = response.status().as_u16();
            let body = super::http::read_capped(response).await.ok()?;
            super::quirks::slack_auth_test(status, &body)
        }
    }
}

//! The provider registry: which OAuth2 providers this deployment offers, as data.
//!
//! A provider is defined like Slack's `DefineOAuth2Provider`: URLs, client id, scopes, identity
//! lookup. Built-in templates (`providers.toml`) carry each provider's quirks as fields so that
//! a deployment only adds its client id. Client secrets never live here: they are sealed in the
//! store (`latch secret add`) or named by an environment variable.

use crate::store::{Store, StoreError};
use crate::vault::{Sealed, Secret, Vault};
use latch_shared::{ScopeAccess, ScopeDetail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use url::Url;

/// The built-in templates, validated when a deployment uses one.
const CATALOG: &str = include_str!("../../providers.toml");

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

/// Response conventions of a provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// RFC 6749: errors are 4xx with `{"error": …}`.
    #[default]
    Standard,
    /// Slack: HTTP 200 with `{"ok": false, "error": …}`; team as the account; `auth.revoke`.
    Slack,
}

/// How to find out which account the user connected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Endpoint called with the new access token.
    pub url: Url,
    /// JSONPath of the stable account id in its answer, e.g. `$.sub`.
    pub account_identifier: String,
    /// JSONPath of a readable label, e.g. `$.email`.
    #[serde(default)]
    pub account_label: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub key: String,
    pub name: String,
    pub description: String,
    pub authorization_url: Url,
    pub token_url: Url,
    pub client_id: String,
    /// Scopes requested, and required, at connect time.
    pub scopes: Vec<String>,
    /// Each of `scopes`, with what it means and whether it reads or writes.
    pub scope_details: Vec<ScopeDetail>,
    /// Scopes requested, and required, for the installing user's token besides the bot's
    /// (Slack's `user_scope`), joined like `scopes`.
    pub user_scopes: Vec<String>,
    /// How scopes are joined in the authorize URL (`" "` by the RFC, `","` at Slack).
    pub scope_separator: String,
    pub authorization_url_extras: BTreeMap<String, String>,
    pub identity: Option<Identity>,
    pub revocation_url: Option<Url>,
    /// Slack's `auth.test`: where re-validation asks whether a token still works (the answer
    /// is read by its `ok` and `error`, not its HTTP status).
    pub validation_url: Option<Url>,
    /// Expected `iss` on the callback (RFC 9207).
    pub issuer: Option<String>,
    pub token_auth_method: TokenAuthMethod,
    pub pkce: bool,
    /// Environment variable holding the client secret, if not stored sealed.
    pub client_secret_env: Option<String>,
    pub dialect: Dialect,
    /// A forced refresh within this many seconds of the token's issue is held back unless the
    /// provider says the token is dead (Slack keeps only two live access tokens per chain).
    pub min_refresh_interval_seconds: i64,
}

/// One `[providers.KEY]` table of latch.toml, or one template: every field optional so that
/// tables can be layered; unknown fields are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub template: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    /// Refused with a clear message: secrets never sit in the config file in plain text.
    pub client_secret: Option<toml::Value>,
    pub client_secret_env: Option<String>,
    /// Names, or tables `{ name, description, access = "read" | "write" }`.
    pub scopes: Option<Vec<ScopeEntry>>,
    /// Slack's `user_scope`: scopes of the installing user's token, besides the bot's.
    pub user_scopes: Option<Vec<String>>,
    pub scope_separator: Option<String>,
    pub authorization_url_extras: Option<BTreeMap<String, String>>,
    pub identity: Option<Identity>,
    pub revocation_url: Option<String>,
    pub validation_url: Option<String>,
    pub issuer: Option<String>,
    pub token_auth_method: Option<TokenAuthMethod>,
    pub pkce: Option<bool>,
    pub dialect: Option<Dialect>,
    pub min_refresh_interval_seconds: Option<i64>,
}

impl ProviderConfig {
    /// `self` with every unset field taken from `base`.
    fn over(self, base: ProviderConfig) -> ProviderConfig {
        ProviderConfig {
            template: self.template.or(base.template),
            name: self.name.or(base.name),
            description: self.description.or(base.description),
            authorization_url: self.authorization_url.or(base.authorization_url),
            token_url: self.token_url.or(base.token_url),
            client_id: self.client_id.or(base.client_id),
            client_secret: self.client_secret.or(base.client_secret),
            client_secret_env: self.client_secret_env.or(base.client_secret_env),
            scopes: merge_scopes(self.scopes, base.scopes),
            user_scopes: self.user_scopes.or(base.user_scopes),
            scope_separator: self.scope_separator.or(base.scope_separator),
            authorization_url_extras: self.authorization_url_extras.or(base.authorization_url_extras),
            identity: self.identity.or(base.identity),
            revocation_url: self.revocation_url.or(base.revocation_url),
            validation_url: self.validation_url.or(base.validation_url),
            issuer: self.issuer.or(base.issuer),
            token_auth_method: self.token_auth_method.or(base.token_auth_method),
            pkce: self.pkce.or(base.pkce),
            dialect: self.dialect.or(base.dialect),
            min_refresh_interval_seconds: self.min_refresh_interval_seconds.or(base.min_refresh_interval_seconds),
        }
    }
}

/// One entry of a provider's `scopes`: its name, or a table saying what it means.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ScopeEntry {
    Name(String),
    Described(DescribedScope),
}

/// A scope with what it means.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribedScope {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub access: Option<ScopeAccess>,
}

impl ScopeEntry {
    fn name(self) -> String {
        match self {
            ScopeEntry::Name(name) | ScopeEntry::Described(DescribedScope { name, .. }) => name,
        }
    }

    fn detail(&self) -> ScopeDetail {
        match self {
            ScopeEntry::Name(name) => ScopeDetail { name: name.clone(), description: None, access: None },
            ScopeEntry::Described(d) => {
                ScopeDetail { name: d.name.clone(), description: d.description.clone(), access: d.access }
            }
        }
    }
}

/// A table's `scopes` over its template's: a scope named without a meaning keeps the one the
/// template gives it.
fn merge_scopes(mine: Option<Vec<ScopeEntry>>, base: Option<Vec<ScopeEntry>>) -> Option<Vec<ScopeEntry>> {
    let Some(mine) = mine else { return base };
    let known = base.unwrap_or_default();
    Some(
        mine.into_iter()
            .map(|entry| match entry {
                ScopeEntry::Name(name) => known
                    .iter()
                    .find(|k| matches!(k, ScopeEntry::Described(d) if d.name == name))
                    .cloned()
                    .unwrap_or(ScopeEntry::Name(name)),
                described => described,
            })
            .collect(),
    )
}

/// A provider definition that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("providers.{key}.{field}: {message}")]
pub struct ProviderConfigError {
    pub key: String,
    pub field: String,
    pub message: String,
}

fn templates() -> Result<BTreeMap<String, ProviderConfig>, ProviderConfigError> {
    toml::from_str(CATALOG).map_err(|e| ProviderConfigError {
        key: "<built-in>".into(),
        field: "catalog".into(),
        message: e.message().to_owned(),
    })
}

/// Names of the built-in templates.
pub fn template_names() -> Vec<String> {
    templates().map(|t| t.into_keys().collect()).unwrap_or_default()
}

impl Provider {
    /// Resolves a latch.toml table against its template and validates it.
    /// `allow_http` permits plain-http URLs on any host (tests); loopback is always allowed.
    pub fn from_config(key: &str, config: ProviderConfig) -> Result<Self, ProviderConfigError> {
        let err = |field: &str, message: &str| ProviderConfigError {
            key: key.to_owned(),
            field: field.to_owned(),
            message: message.to_owned(),
        };
        if !is_valid_key(key) {
            return Err(err("key", "use lowercase letters, digits, '-' and '_' (at most 64)"));
        }
        if config.client_secret.is_some() {
            return Err(err(
                "client_secret",
                "client secrets are never read from latch.toml; run `latch secret add --provider KEY` \
                 (reads stdin, stores it encrypted) or set client_secret_env = \"VAR\"",
            ));
        }
        let templates = templates()?;
        let template_name = config.template.clone().or_else(|| templates.contains_key(key).then(|| key.to_owned()));
        let config = match template_name {
            Some(name) => {
                let base = templates
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| err("template", &format!("no built-in template named {name:?}")))?;
                config.over(base)
            }
            None => config,
        };
        let url = |field: &str, value: Option<String>| -> Result<Url, ProviderConfigError> {
            let value = value.ok_or_else(|| err(field, "missing"))?;
            parse_provider_url(&value).map_err(|m| err(field, &m))
        };
        let opt_url = |field: &str, value: Option<String>| {
            value.map(|v| parse_provider_url(&v).map_err(|m| err(field, &m))).transpose()
        };
        let identity = match config.identity {
            Some(identity) => {
                parse_provider_url(identity.url.as_str()).map_err(|m| err("identity.url", &m))?;
                if !identity.account_identifier.starts_with('$') {
                    return Err(err("identity.account_identifier", "must be a JSONPath such as $.email"));
                }
                Some(identity)
            }
            None => None,
        };
        let dialect = config.dialect.unwrap_or_default();
        let name = config.name.unwrap_or_else(|| key.to_owned());
        let provider = Provider {
            key: key.to_owned(),
            description: config.description.unwrap_or_else(|| format!("Connect your {name} account.")),
            name,
            authorization_url: url("authorization_url", config.authorization_url)?,
            token_url: url("token_url", config.token_url)?,
            client_id: config.client_id.filter(|c| !c.is_empty()).ok_or_else(|| err("client_id", "missing"))?,
            scope_details: config.scopes.iter().flatten().map(ScopeEntry::detail).collect(),
            scopes: config.scopes.unwrap_or_default().into_iter().map(ScopeEntry::name).collect(),
            user_scopes: config.user_scopes.unwrap_or_default(),
            scope_separator: config.scope_separator.unwrap_or_else(|| " ".into()),
            authorization_url_extras: config.authorization_url_extras.unwrap_or_default(),
            identity,
            revocation_url: opt_url("revocation_url", config.revocation_url)?,
            validation_url: opt_url("validation_url", config.validation_url)?,
            issuer: config.issuer,
            token_auth_method: config.token_auth_method.unwrap_or(TokenAuthMethod::Basic),
            pkce: config.pkce.unwrap_or(true),
            client_secret_env: config.client_secret_env,
            dialect,
            min_refresh_interval_seconds: match config.min_refresh_interval_seconds.unwrap_or(0) {
                seconds @ 0..=3600 => seconds,
                _ => return Err(err("min_refresh_interval_seconds", "must be between 0 and 3600")),
            },
        };
        if !provider.user_scopes.is_empty() && provider.dialect != Dialect::Slack {
            return Err(err("user_scopes", "only Slack grants a user token besides the bot's (dialect = \"slack\")"));
        }
        if provider.identity.is_none() && provider.dialect != Dialect::Slack {
            return Err(err(
                "identity",
                "missing: set identity = { url = \"…\", account_identifier = \"$.sub\" } so Latch can tell which account was connected",
            ));
        }
        Ok(provider)
    }
}

fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Provider endpoints must be https, except on loopback (tests, the sandbox).
pub fn parse_provider_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err("must be an https URL (plain http only on loopback)".into()),
    }
}

/// Whether a URL points at this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The configured providers, by key; cheap to clone (read-only once built).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: Arc<BTreeMap<String, Provider>>,
}

impl Registry {
    /// A registry of these providers.
    pub fn new(providers: impl IntoIterator<Item = Provider>) -> Self {
        Self { providers: Arc::new(providers.into_iter().map(|p| (p.key.clone(), p)).collect()) }
    }

    /// The provider with this key.
    pub fn get(&self, key: &str) -> Option<&Provider> {
        self.providers.get(key)
    }

    /// Every provider, sorted by key.
    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }
}

/// The app's client secrets: stored sealed (`latch secret add`), else read from the provider's
/// environment variable.
#[derive(Debug, Clone)]
pub struct ClientSecrets {
    store: Store,
    vault: Vault,
}

impl ClientSecrets {
    /// Secrets kept in `store`, opened with `vault`.
    pub fn new(store: Store, vault: Vault) -> Self {
        Self { store, vault }
    }

    /// Where every provider's secret comes from, with one query: what the widget offers, what
    /// `GET /v1/providers`, `latch providers list` and the start-up summary say.
    pub async fn sources(&self) -> Result<SecretSources, StoreError> {
        Ok(SecretSources::new(self.store.providers_with_secret().await?))
    }

    /// Where `provider`'s secret comes from.
    pub async fn source(&self, provider: &Provider) -> Result<SecretSource, StoreError> {
        let stored = self.store.has_client_secret(&provider.key).await?.then(|| provider.key.clone());
        Ok(SecretSources::new(stored.into_iter().collect()).of(provider))
    }

    /// The client secret of `provider`, if one is configured.
    pub async fn get(&self, provider: &Provider) -> Result<Option<Secret>, StoreError> {
        if let Some(sealed) = self.store.client_secret(&provider.key).await? {
            return match self.vault.open_secret(Sealed::ClientSecret.slot(&provider.key), &sealed) {
                Ok(secret) => Ok(Some(secret)),
                Err(e) => {
                    tracing::error!(provider = %provider.key, error = %e, "stored client secret does not decrypt");
                    Ok(None)
                }
            };
        }
        Ok(env_secret(provider).map(|(_, value)| Secret::new(value)))
    }
}

/// Where a provider's client secret comes from. Without one, a code exchange cannot succeed, so
/// end users are not offered the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Sealed in the database (`latch secret add`).
    Stored,
    /// Read from this environment variable (`client_secret_env`), set and not empty.
    Env(String),
    /// Neither; `client_secret_env` names the variable that is unset or empty, if any.
    Missing(Option<String>),
}

impl SecretSource {
    /// A code exchange can be attempted.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Self::Missing(_))
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored => f.write_str("secret stored"),
            Self::Env(var) => write!(f, "secret from env {var}"),
            Self::Missing(_) => f.write_str("no secret"),
        }
    }
}

/// The providers with a stored secret, read once, to tell each provider's [`SecretSource`].
#[derive(Debug, Clone)]
pub struct SecretSources {
    stored: Vec<String>,
}

impl SecretSources {
    /// From the keys of the providers whose secret is stored.
    pub fn new(stored: Vec<String>) -> Self {
        Self { stored }
    }

    /// Where `provider`'s secret comes from.
    pub fn of(&self, provider: &Provider) -> SecretSource {
        if self.stored.contains(&provider.key) {
            return SecretSource::Stored;
        }
        match env_secret(provider) {
            Some((var, _)) => SecretSource::Env(var.to_owned()),
            None => SecretSource::Missing(provider.client_secret_env.clone()),
        }
    }
}

/// The provider's `client_secret_env` variable and its value, when it is set and not empty: the
/// one rule for a secret from the environment, whether it is used or only reported.
fn env_secret(provider: &Provider) -> Option<(&str, String)> {
    let var = provider.client_secret_env.as_deref()?;
    std::env::var(var).ok().filter(|value| !value.is_empty()).map(|value| (var, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_in_and_config_overrides() {
        let cfg: ProviderConfig = toml::from_str(
            r#"client_id = "123"
               token_url = "http://127.0.0.1:9/token""#,
        )
        .unwrap();
        let p = Provider::from_config("slack", cfg).unwrap();
        assert_eq!(p.dialect, Dialect::Slack);
        assert_eq!(p.scope_separator, ",");
        assert_eq!(p.token_url.as_str(), "http://127.0.0.1:9/token");
        assert_eq!(p.authorization_url.as_str(), "https://slack.com/oauth/v2/authorize");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Provider::from_config("custom", ProviderConfig::default()).unwrap_err();
        assert_eq!(e.to_string(), "providers.custom.authorization_url: missing");
        let cfg: ProviderConfig = toml::from_str(
            r#"client_id = "x"
            authorization_url = "http://evil.example/a"
            token_url = "https://x.example/t""#,
        )
        .unwrap();
        let e = Provider::from_config("custom", cfg).unwrap_err();
        assert!(e.to_string().starts_with("providers.custom.authorization_url: must be an https URL"));
        let cfg: ProviderConfig = toml::from_str(r#"client_secret = "s3cret""#).unwrap();
        let e = Provider::from_config("slack", cfg).unwrap_err();
        assert!(e.to_string().starts_with("providers.slack.client_secret:"));
        assert!(!e.to_string().contains("s3cret"));
        assert!(toml::from_str::<ProviderConfig>("colour = 1").is_err());
    }

    #[test]
    fn scopes_carry_their_meaning_and_overrides_keep_the_templates() {
        let slack = |extra: &str| {
            let cfg: ProviderConfig = toml::from_str(&format!("client_id = \"x\"\n{extra}")).unwrap();
            Provider::from_config("slack", cfg)
        };
        let p = slack("").unwrap();
        assert_eq!(p.scope_details[0].access, Some(ScopeAccess::Write));
        assert_eq!(p.scope_details[1].access, Some(ScopeAccess::Read));
        let p = slack(r#"scopes = ["chat:write", { name = "users:read", access = "read" }, "files:write"]"#).unwrap();
        assert_eq!(p.scopes, ["chat:write", "users:read", "files:write"]);
        assert_eq!(
            p.scope_details[0].description.as_deref(),
            Some("Post messages as the app"),
            "kept from the template"
        );
        assert_eq!(p.scope_details[1].access, Some(ScopeAccess::Read));
        assert_eq!((p.scope_details[2].description.as_deref(), p.scope_details[2].access), (None, None));
        assert!(toml::from_str::<ProviderConfig>(r#"scopes = [{ name = "a", acess = "read" }]"#).is_err());
        assert!(toml::from_str::<ProviderConfig>(r#"scopes = [{ name = "a", access = "admin" }]"#).is_err());
    }

    #[test]
    fn every_template_parses() {
        for name in template_names() {
            let cfg: ProviderConfig = toml::from_str(r#"client_id = "x""#).unwrap();
            Provider::from_config(&name, cfg).unwrap();
        }
    }
}

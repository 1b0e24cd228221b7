//! What an install grants beyond a token: the resources the grant is limited to (Slack's
//! incoming-webhook channel), who installed it where (Slack's team, enterprise, bot and user),
//! and which of a connection's tokens a host asks for.

use serde::{Deserialize, Serialize};

/// A resource the provider granted access to, e.g. the channel an incoming webhook posts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resource {
    /// What it is: `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The provider's id for it (`C0123…`).
    pub id: String,
    /// Its readable name (`#deploys`), when the provider said.
    #[serde(default)]
    pub name: Option<String>,
}

impl Resource {
    /// How a person reads it: a channel with its `#`.
    pub fn display(&self) -> String {
        match (&self.name, self.kind.as_str()) {
            (Some(name), "channel") if !name.starts_with('#') => format!("#{name}"),
            (Some(name), _) => name.clone(),
            (None, _) => self.id.clone(),
        }
    }
}

/// A workspace or enterprise at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountRef {
    /// The provider's id (`T0123…`, `E0123…`).
    pub id: String,
    /// Its name, when the provider said.
    #[serde(default)]
    pub name: Option<String>,
}

/// Who installed the app where, as the provider's install answer said (Slack). Every field is
/// optional: other providers leave it empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Installation {
    /// The workspace; `null` for an org-wide Enterprise Grid install.
    #[serde(default)]
    pub team: Option<AccountRef>,
    /// The Enterprise Grid organization, if any.
    #[serde(default)]
    pub enterprise: Option<AccountRef>,
    /// Installed across the whole enterprise (then the enterprise is the account).
    #[serde(default)]
    pub is_enterprise_install: bool,
    /// The app's bot user, when a bot token was granted.
    #[serde(default)]
    pub bot_user_id: Option<String>,
    /// The provider's id of the app.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The user who installed it (Slack's `authed_user.id`).
    #[serde(default)]
    pub authed_user_id: Option<String>,
}

impl Installation {
    /// Whether the answer said nothing of this kind.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

crate::text_enum! {
    /// Which of a connection's tokens `POST /v1/access-token` serves.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum TokenKind {
        /// The app's bot token (Slack `scope`); the default where there is one.
        Bot = "bot",
        /// The installing user's token (Slack `user_scope`, `authed_user`).
        User = "user",
    }
}

/// The installing user's token of a connection that holds one besides its bot token; never
/// the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserTokenInfo {
    /// Scopes granted to it.
    pub scopes: Vec<String>,
    /// When it expires; `null` for tokens that do not expire.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_read_as_people_read_them() {
        let channel =
            |name: Option<&str>| Resource { kind: "channel".into(), id: "C1".into(), name: name.map(Into::into) };
        assert_eq!(channel(Some("#deploys")).display(), "#deploys");
        assert_eq!(channel(Some("deploys")).display(), "#deploys");
        assert_eq!(channel(None).display(), "C1");
        let json = serde_json::to_value(channel(Some("#deploys"))).unwrap();
        assert_eq!(json, serde_json::json!({"type": "channel", "id": "C1", "name": "#deploys"}));
    }

    #[test]
    fn token_kinds_are_texts() {
        assert_eq!(serde_json::to_value(TokenKind::User).unwrap(), "user");
        assert_eq!(TokenKind::User.as_str(), "user");
    }
}

//! The widget's pure presentation logic: what a status reads as, which actions a row offers,
//! scopes in plain words, error codes in human words. No browser types, so it is unit-tested
//! natively (in the browser, only `initial`'s Unicode lookups go to the browser's tables).

use latch_shared::api::widget::{Integration, WidgetConnection};
use latch_shared::{ConnectionStatus, ErrorCode};

/// What the user can do with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Disconnect (after a confirmation).
    Disconnect,
    /// Run the flow again for this connection.
    Reconnect,
}

/// The status line of a connection: never colour alone, always words.
pub fn status_label(c: &WidgetConnection) -> String {
    match c.status {
        ConnectionStatus::Active => match &c.account_label {
            Some(label) => format!("Connected as {label}"),
            None => "Connected".to_owned(),
        },
        ConnectionStatus::NeedsReauthorization => match &c.account_label {
            Some(label) => format!("Needs reconnect ({label})"),
            None => "Needs reconnect".to_owned(),
        },
        // The widget lists live connections only.
        ConnectionStatus::Deleted => "Disconnected".to_owned(),
    }
}

/// Where the grant is limited to, in words ("Posts to #deploys"), when the provider granted
/// specific resources (Slack's incoming-webhook channel).
pub fn resources_label(c: &WidgetConnection) -> Option<String> {
    let channels: Vec<String> = c.resources.iter().filter(|r| r.kind == "channel").map(|r| r.display()).collect();
    (!channels.is_empty()).then(|| format!("Posts to {}", channels.join(", ")))
}

/// The actions of a connection, primary first; no reconnect while its provider is not
/// `connectable` (the app has no client secret for it).
pub fn actions(c: &WidgetConnection, connectable: bool) -> &'static [Action] {
    match c.status {
        ConnectionStatus::NeedsReauthorization if connectable => &[Action::Reconnect, Action::Disconnect],
        ConnectionStatus::Active | ConnectionStatus::NeedsReauthorization => &[Action::Disconnect],
        ConnectionStatus::Deleted => &[],
    }
}

/// The label of the provider-level connect button.
pub fn connect_label(i: &Integration) -> String {
    if i.connections.is_empty() { format!("Connect {}", i.name) } else { "Connect another account".to_owned() }
}

/// One letter for the provider's icon: its first letter or digit, in upper case.
pub fn initial(name: &str) -> String {
    name.chars().find(|c| unicode::is_alphanumeric(*c)).map(unicode::to_uppercase).unwrap_or_else(|| "?".into())
}

/// Unicode's letters, digits and upper case. In the browser they come from the browser's own
/// Unicode tables: Rust's would add about 8 KB gzipped to the widget for one letter. Natively
/// (the unit tests) they are Rust's. Both follow the Unicode standard (`Alphabetic` or `N*`,
/// and the full upper-case mapping).
mod unicode {
    #[cfg(target_arch = "wasm32")]
    pub fn is_alphanumeric(c: char) -> bool {
        c.is_ascii_alphanumeric()
            || (!c.is_ascii() && js_sys::RegExp::new(r"^[\p{Alphabetic}\p{N}]$", "u").test(c.encode_utf8(&mut [0; 4])))
    }

    #[cfg(target_arch = "wasm32")]
    pub fn to_uppercase(c: char) -> String {
        js_sys::JsString::from(&*c.encode_utf8(&mut [0; 4])).to_upper_case().into()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn is_alphanumeric(c: char) -> bool {
        c.is_alphanumeric()
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_uppercase(c: char) -> String {
        c.to_uppercase().collect()
    }
}

/// A scope in plain words, for the well-known ones; the scope itself otherwise.
pub fn scope_words(scope: &str) -> String {
    let known = match scope {
        "chat:write" => "Send messages as the app",
        "channels:read" => "See the list of public channels",
        "messages:write" => "Post messages",
        "profile" => "See your name",
        "openid" => "Know who you are",
        "email" => "See your email address",
        "offline_access" => "Stay connected when you are away",
        "repo" => "Read and write your repositories",
        "read:user" => "Read your profile",
        "https://www.googleapis.com/auth/calendar.readonly" => "See your calendars",
        _ => return scope.to_owned(),
    };
    known.to_owned()
}

/// A message for an error code from the API or a flow.
pub fn error_message(problem: &Problem, fallback: &str) -> String {
    use ErrorCode as C;
    let or_fallback = |default: &str| if fallback.is_empty() { default.to_owned() } else { fallback.to_owned() };
    let known = match problem {
        Problem::Latch(C::WidgetTokenExpired) => "Your session expired. Reload the page to continue.",
        Problem::Latch(C::InvalidWidgetToken | C::Unauthorized) => {
            "This page is not authorized to manage integrations. Reload the page."
        }
        Problem::Latch(C::OriginNotAllowed) => "This page is not allowed to manage integrations.",
        Problem::Latch(C::ProviderNotAllowed | C::ProviderNotFound) => "This integration is not available here.",
        Problem::Latch(C::ConnectionNotFound) => "That connection no longer exists.",
        Problem::Latch(C::Oauth2CallbackError) => return or_fallback("The provider did not grant access."),
        Problem::Latch(C::ScopeMismatchError) => {
            "Some permissions were not granted. Connect again and allow everything that is asked."
        }
        Problem::Latch(C::AccountMismatch) => "You signed in to a different account than the one being reconnected.",
        Problem::Latch(C::DatabaseUnavailable | C::ProviderUnavailable) => {
            "The service is busy right now. Try again in a moment."
        }
        Problem::Network => "Could not reach the server. Check your connection and try again.",
        _ => return or_fallback("Something went wrong. Try again."),
    };
    known.to_owned()
}

/// What went wrong, as the widget tells it: a code from Latch's shared contract, or a failure
/// of the widget's own (the network, an answer it could not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Latch answered with this code.
    Latch(ErrorCode),
    /// Latch answered with a code this widget does not know (a newer server), or none.
    Unknown(String),
    /// The server could not be reached.
    Network,
    /// An answer that does not follow the contract.
    InvalidResponse,
}

impl Problem {
    /// The problem a wire code names.
    pub fn from_code(code: &str) -> Self {
        match ErrorCode::ALL.iter().find(|c| c.as_str() == code) {
            Some(code) => Problem::Latch(*code),
            None => Problem::Unknown(code.to_owned()),
        }
    }

    /// The code told to the host page (`onEvent`).
    pub fn code(&self) -> &str {
        match self {
            Problem::Latch(code) => code.as_str(),
            Problem::Unknown(code) => code,
            Problem::Network => "network",
            Problem::InvalidResponse => "invalid_response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn conn(status: ConnectionStatus, label: Option<&str>) -> WidgetConnection {
        WidgetConnection {
            id: "conn_1".into(),
            account_label: label.map(str::to_owned),
            status,
            scopes: vec![],
            purpose: None,
            connected_at: OffsetDateTime::UNIX_EPOCH,
            resources: vec![],
        }
    }

    #[test]
    fn granted_channels_read_as_where_it_posts() {
        let mut c = conn(ConnectionStatus::Active, Some("Acme"));
        assert_eq!(resources_label(&c), None);
        c.resources =
            vec![latch_shared::Resource { kind: "channel".into(), id: "C1".into(), name: Some("#deploys".into()) }];
        assert_eq!(resources_label(&c).as_deref(), Some("Posts to #deploys"));
    }

    #[test]
    fn statuses_read_as_words() {
        assert_eq!(status_label(&conn(ConnectionStatus::Active, Some("Acme"))), "Connected as Acme");
        assert_eq!(status_label(&conn(ConnectionStatus::Active, None)), "Connected");
        assert_eq!(status_label(&conn(ConnectionStatus::NeedsReauthorization, Some("Acme"))), "Needs reconnect (Acme)");
    }

    #[test]
    fn reconnect_only_when_needed() {
        assert_eq!(actions(&conn(ConnectionStatus::Active, None), true), &[Action::Disconnect]);
        assert_eq!(actions(&conn(ConnectionStatus::NeedsReauthorization, None), true)[0], Action::Reconnect);
        // Without a client secret the provider cannot be reconnected; the row can still be removed.
        assert_eq!(actions(&conn(ConnectionStatus::NeedsReauthorization, None), false), &[Action::Disconnect]);
    }

    #[test]
    fn labels_and_words() {
        let mut i = Integration {
            key: "slack".into(),
            name: "Slack".into(),
            description: String::new(),
            scopes: vec![],
            connections: vec![],
            connectable: true,
        };
        assert_eq!(connect_label(&i), "Connect Slack");
        i.connections.push(conn(ConnectionStatus::Active, None));
        assert_eq!(connect_label(&i), "Connect another account");
        assert_eq!(initial("  slack"), "S");
        assert_eq!(initial(""), "?");
        assert_eq!(initial("· élan"), "É");
        assert_eq!(initial("ßtraße"), "SS");
        assert_eq!(scope_words("chat:write"), "Send messages as the app");
        assert_eq!(scope_words("weird:scope"), "weird:scope");
        assert!(error_message(&Problem::from_code("scope_mismatch_error"), "").contains("permissions"));
        assert_eq!(error_message(&Problem::from_code("unknown_code"), "Provider said no."), "Provider said no.");
        assert_eq!(Problem::from_code("widget_token_expired"), Problem::Latch(ErrorCode::WidgetTokenExpired));
        assert_eq!(Problem::from_code("brand_new_code").code(), "brand_new_code");
    }
}

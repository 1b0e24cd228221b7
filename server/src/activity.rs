//! The audit trail's vocabulary: who (actor), what (action), to which connection, and how it went.
//! Entries never carry a token or a provider's raw answer, only codes and short safe details.

use crate::store::Store;
use crate::store::activity::ActivityRow;
use crate::store::connections::{ConnectionRow, Owner};
use crate::store::new_id;
pub use latch_shared::activity::Action;

/// Who caused an entry.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A host app, by API key name.
    ApiKey(String),
    /// An end user, through the widget.
    User(String),
    /// Latch itself (refresher, flows).
    System(&'static str),
}

impl Actor {
    /// An operator at the command line: the CLI acts as the API key `cli`.
    pub fn cli() -> Self {
        Actor::ApiKey("cli".to_owned())
    }

    /// Who, without the kind: an API key's name, a user's id, a part of Latch.
    pub fn name(&self) -> &str {
        self.parts().1
    }

    fn parts(&self) -> (&'static str, &str) {
        match self {
            Actor::ApiKey(name) => ("api_key", name),
            Actor::User(id) => ("user", id),
            Actor::System(what) => ("system", what),
        }
    }
}

/// A connection by its id and owner: what an entry about a connection names.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub id: &'a str,
    pub owner: Owner<'a>,
}

impl<'a> About<'a> {
    pub fn of(c: &'a ConnectionRow) -> Self {
        let owner = Owner {
            provider: &c.provider,
            user_id: &c.user_id,
            organization_id: &c.organization_id,
            account_id: &c.account_id,
        };
        About { id: &c.id, owner }
    }
}

/// Builds an entry.
#[derive(Debug, Clone)]
pub struct Entry(ActivityRow);

impl Entry {
    /// A successful `action` by `actor` at `now`.
    pub fn new(now: i64, actor: &Actor, action: Action) -> Self {
        let (kind, name) = actor.parts();
        Self(ActivityRow {
            id: new_id("act"),
            at: now,
            actor_kind: kind.to_owned(),
            actor_name: name.to_owned(),
            action,
            connection_id: None,
            user_id: None,
            organization_id: None,
            provider: None,
            outcome: "success".to_owned(),
            error_code: None,
            detail: None,
        })
    }

    /// About this connection (and its owner and provider).
    pub fn connection(self, c: &ConnectionRow) -> Self {
        self.about(About::of(c))
    }

    /// About a connection named by its parts.
    pub fn about(mut self, c: About<'_>) -> Self {
        let Owner { provider, user_id, organization_id, .. } = c.owner;
        self.0.connection_id = Some(c.id.to_owned());
        self.0.user_id = Some(user_id.to_owned());
        self.0.organization_id = (!organization_id.is_empty()).then(|| organization_id.to_owned());
        self.0.provider = Some(provider.to_owned());
        self
    }

    /// About this owner (a flow's user, before any connection exists).
    pub fn owner(mut self, user_id: &str, organization_id: &str) -> Self {
        self.0.user_id = Some(user_id.to_owned());
        self.0.organization_id = (!organization_id.is_empty()).then(|| organization_id.to_owned());
        self
    }

    /// About this provider only (provider-level events such as bad client credentials).
    pub fn provider(mut self, key: &str) -> Self {
        self.0.provider = Some(key.to_owned());
        self
    }

    /// Marks the entry failed with a stable code.
    pub fn failed(mut self, code: &str) -> Self {
        self.0.outcome = "failure".to_owned();
        self.0.error_code = Some(code.to_owned());
        self
    }

    /// A short safe explanation.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// The row to store.
    pub fn into_row(self) -> ActivityRow {
        self.0
    }
}

/// Writes an activity entry; a failure to audit is logged, not fatal to the operation.
pub async fn record(store: &Store, entry: Entry) {
    if let Err(e) = store.insert_activity(&[entry.into_row()]).await {
        tracing::error!(error = %e, "could not write activity entry");
    }
}

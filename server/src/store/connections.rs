//! Rows of `connections`: the owner, the external account, the sealed tokens and the refresh
//! bookkeeping (`version`, lease) that makes concurrent refreshes safe.

use super::activity::{ActivityRow, insert_activity};
use super::changes::ChangeNotice;
use super::events::{NewEvent, insert_event};
use super::{Store, StoreError, StoreResult, run};
use crate::scopes::Scopes;
use crate::vault::{Sealed, Vault};
use latch_shared::{ConnectionStatus, CredentialSource, Installation, Resource, Revocation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::LazyLock;

/// Runs one write statement on one row (`… RETURNING user_id, organization_id, provider`) and,
/// when it changed the row, its event and its [`ChangeNotice`], in one transaction (the outbox
/// rule: an event or a notice exists if and only if its change was committed). Yields the
/// changed row's owner, for [`Store::changed_if`] once committed.
macro_rules! write_with_event {
    ($store:expr, $id:expr, $event:expr, $statement:expr) => {
        run!($store, pool => {
            let mut tx = pool.begin().await?;
            let owner: Option<RowOwner> = $statement.fetch_optional(&mut *tx).await?;
            announce!($store, &mut *tx, $id, &owner, $event);
            tx.commit().await?;
            owner
        })
    };
}

/// In the writing transaction `$tx`, when the write returned the changed row's owner
/// (`&Option<RowOwner>`): its event, if any, and its [`ChangeNotice`].
macro_rules! announce {
    ($store:expr, $tx:expr, $id:expr, $owner:expr, $event:expr) => {
        if let Some((user_id, organization_id, provider)) = $owner {
            if let Some(event) = $event {
                insert_event!($tx, event).await?;
            }
            ChangeNotice::notice(&$store.origin, $id, (user_id, organization_id, provider)).execute($tx).await?;
        }
    };
}

/// Binds the columns an install grants beyond its primary token (the user's token, the incoming
/// webhook, resources, installation), in that order: one list for inserts and reconnects.
macro_rules! bind_grant {
    ($query:expr, $row:expr) => {
        $query
            .bind(&$row.user_access_token)
            .bind(&$row.user_refresh_token)
            .bind($row.user_token_expires_at)
            .bind($row.user_token_refreshed_at)
            .bind($row.user_scopes.stored())
            .bind(&$row.incoming_webhook_url)
            .bind($row.resources.stored())
            .bind($row.installation.stored())
    };
}

/// What a one-row write returns: the owner of the row it changed ([`RowOwner`]). A macro, so
/// that statements written as literals can `concat!` it too.
macro_rules! returning_owner {
    () => {
        "RETURNING user_id, organization_id, provider"
    };
}
const RETURNING_OWNER: &str = returning_owner!();

/// The owner of a row a write changed: (user id, organization id, provider).
type RowOwner = (String, String, String);

/// A connection row as stored; token columns are vault envelopes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub provider: String,
    pub user_id: String,
    /// `''` when the host has no organizations.
    pub organization_id: String,
    pub account_id: String,
    pub account_label: Option<String>,
    /// The operator's name for a developer connection.
    pub label: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    #[sqlx(try_from = "String")]
    pub scopes: Scopes,
    #[sqlx(try_from = "String")]
    pub missing_scopes: Scopes,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub token_type: String,
    pub access_token_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_refreshed_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_validated_at: Option<i64>,
    /// Bumped by every token or status write; writers compare-and-swap on it.
    pub version: i64,
    pub lease_until: Option<i64>,
    pub refresh_attempt: Option<String>,
    /// What it is for (the provider's description when made, or the host's words).
    pub purpose: Option<String>,
    /// The widget user who made it.
    pub created_by: Option<String>,
    /// The API key that last fetched its token.
    pub last_used_by: Option<String>,
    #[sqlx(try_from = "String")]
    pub credential_source: CredentialSource,
    /// The installing user's token besides the bot's (Slack `user_scope`), sealed, with its
    /// own refresh chain.
    pub user_access_token: Option<Vec<u8>>,
    pub user_refresh_token: Option<Vec<u8>>,
    pub user_token_expires_at: Option<i64>,
    pub user_token_refreshed_at: Option<i64>,
    #[sqlx(try_from = "String")]
    pub user_scopes: Scopes,
    /// Slack's incoming webhook URL (a credential), sealed.
    pub incoming_webhook_url: Option<Vec<u8>>,
    /// What the grant is limited to (Slack: the incoming webhook's channel).
    #[sqlx(try_from = "String")]
    pub resources: Json<Vec<Resource>>,
    /// Who installed it where (Slack: team, enterprise, bot user, app, installing user).
    #[sqlx(try_from = "String")]
    pub installation: Json<Installation>,
    /// Tombstones only: when and by whom it was deleted, and what became of its grant.
    #[sqlx(default)]
    pub deleted_at: Option<i64>,
    #[sqlx(default)]
    pub deleted_by: Option<String>,
    #[sqlx(default)]
    pub revocation: Option<String>,
}

/// A JSON column: a value stored as its JSON text (`resources`, `installation`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> TryFrom<String> for Json<T> {
    type Error = serde_json::Error;
    fn try_from(stored: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&stored).map(Json)
    }
}

impl<T: Serialize> Json<T> {
    /// The stored form.
    pub fn stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "null".to_owned())
    }
}

/// Which of a connection's token chains: the one every connection has (`access_token`,
/// `refresh_token`: a bot token, a user-only install's user token, a bearer token), or the
/// installing user's held besides a bot token (Slack `user_scope`). Each refreshes on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    Primary,
    User,
}

impl Chain {
    /// The sealed columns of its access and refresh tokens.
    pub fn sealed(self) -> (Sealed, Sealed) {
        match self {
            Chain::Primary => (Sealed::AccessToken, Sealed::RefreshToken),
            Chain::User => (Sealed::UserAccessToken, Sealed::UserRefreshToken),
        }
    }
}

impl ConnectionRow {
    /// The sealed access token of `chain`.
    pub fn access(&self, chain: Chain) -> Option<&[u8]> {
        match chain {
            Chain::Primary => self.access_token.as_deref(),
            Chain::User => self.user_access_token.as_deref(),
        }
    }

    /// The sealed refresh token of `chain`.
    pub fn refresh(&self, chain: Chain) -> Option<&[u8]> {
        match chain {
            Chain::Primary => self.refresh_token.as_deref(),
            Chain::User => self.user_refresh_token.as_deref(),
        }
    }

    /// When the access token of `chain` expires.
    pub fn expires_at(&self, chain: Chain) -> Option<i64> {
        match chain {
            Chain::Primary => self.access_token_expires_at,
            Chain::User => self.user_token_expires_at,
        }
    }

    /// When the access token of `chain` was issued (its last refresh, or the grant).
    pub fn issued_at(&self, chain: Chain) -> i64 {
        match chain {
            Chain::Primary => self.last_refreshed_at.unwrap_or(self.updated_at),
            Chain::User => self.user_token_refreshed_at.or(self.last_refreshed_at).unwrap_or(self.updated_at),
        }
    }

    /// Its owner as a write announces it: (user id, organization id, provider).
    fn owner(&self) -> (&str, &str, &str) {
        (&self.user_id, &self.organization_id, &self.provider)
    }
}

/// A developer connection and whether it is its provider's default.
#[derive(sqlx::FromRow)]
struct Candidate {
    #[sqlx(flatten)]
    row: ConnectionRow,
    selected: bool,
}

/// Who a new connection belongs to and which external account it is.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub provider: &'a str,
    pub user_id: &'a str,
    /// `""` when the host has no organizations.
    pub organization_id: &'a str,
    pub account_id: &'a str,
}

impl ConnectionRow {
    /// A new active connection created at `now`, with bearer tokens to be set: the one place a
    /// row's starting values are written (the connect flow, the tests' seeds and the benchmark
    /// all build on it).
    pub fn new(id: String, owner: Owner<'_>, now: i64) -> Self {
        Self {
            id,
            provider: owner.provider.to_owned(),
            user_id: owner.user_id.to_owned(),
            organization_id: owner.organization_id.to_owned(),
            account_id: owner.account_id.to_owned(),
            account_label: None,
            label: None,
            status: ConnectionStatus::Active,
            scopes: Scopes::default(),
            missing_scopes: Scopes::default(),
            access_token: None,
            refresh_token: None,
            token_type: "bearer".to_owned(),
            access_token_expires_at: None,
            created_at: now,
            updated_at: now,
            last_refreshed_at: None,
            last_used_at: None,
            last_validated_at: None,
            version: 0,
            lease_until: None,
            refresh_attempt: None,
            purpose: None,
            created_by: None,
            last_used_by: None,
            credential_source: CredentialSource::EndUser,
            user_access_token: None,
            user_refresh_token: None,
            user_token_expires_at: None,
            user_token_refreshed_at: None,
            user_scopes: Scopes::default(),
            incoming_webhook_url: None,
            resources: Json::default(),
            installation: Json::default(),
            deleted_at: None,
            deleted_by: None,
            revocation: None,
        }
    }

    /// Seals `access` (and `refresh`) into this row's token columns.
    pub fn with_tokens(mut self, vault: &Vault, access: &str, refresh: Option<&str>) -> Self {
        self.access_token = Some(vault.seal_str(Sealed::AccessToken.slot(&self.id), access));
        self.refresh_token = refresh.map(|rt| vault.seal_str(Sealed::RefreshToken.slot(&self.id), rt));
        self
    }
}

const COLUMNS: &str = "id, provider, user_id, organization_id, account_id, account_label, label, status, \
    scopes, missing_scopes, access_token, refresh_token, token_type, access_token_expires_at, \
    created_at, updated_at, last_refreshed_at, last_used_at, last_validated_at, version, \
    lease_until, refresh_attempt, purpose, created_by, last_used_by, credential_source, user_access_token, \
    user_refresh_token, user_token_expires_at, user_token_refreshed_at, user_scopes, incoming_webhook_url, \
    resources, installation";

/// [`COLUMNS`] as a write on `connections` returns them (`UPDATE … RETURNING`): the usage
/// columns, which live in `connection_usage`, read beside it.
static RETURNED_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    COLUMNS
        .replace(
            "last_used_at,",
            "(SELECT last_used_at FROM connection_usage WHERE connection_id = connections.id) AS last_used_at,",
        )
        .replace(
            "last_used_by,",
            "(SELECT last_used_by FROM connection_usage WHERE connection_id = connections.id) AS last_used_by,",
        )
});

/// Where live rows are read from: `connections`, with each row's usage beside it (`last_used_at`
/// and `last_used_by` live in their own narrow table, which the usage recorder rewrites all day;
/// migration 0014 says why).
const CONNECTIONS: &str = "connections LEFT JOIN connection_usage ON connection_id = id";

/// A tombstone read as a row: the live columns, with no secret, no lease and status `deleted`.
const TOMBSTONE_COLUMNS: &str = "id, provider, user_id, organization_id, account_id, account_label, label, \
    'deleted' AS status, scopes, missing_scopes, NULL AS access_token, NULL AS refresh_token, token_type, \
    access_token_expires_at, created_at, updated_at, last_refreshed_at, last_used_at, last_validated_at, \
    CAST(0 AS BIGINT) AS version, NULL AS lease_until, NULL AS refresh_attempt, purpose, created_by, last_used_by, \
    credential_source, NULL AS user_access_token, NULL AS user_refresh_token, NULL AS user_token_expires_at, \
    NULL AS user_token_refreshed_at, user_scopes, NULL AS incoming_webhook_url, resources, installation, \
    deleted_at, deleted_by, revocation";

/// The columns a tombstone keeps, as copied from the live row.
const KEPT_COLUMNS: &str = "id, provider, user_id, organization_id, account_id, account_label, label, scopes, \
    missing_scopes, token_type, access_token_expires_at, created_at, updated_at, last_refreshed_at, \
    last_used_at, last_validated_at, purpose, created_by, last_used_by, credential_source, user_scopes, \
    resources, installation";

/// The refresher's "which tokens of `chain` are due" (`$1` now, `$2` the window, `$3` a limit),
/// served by the partial indexes `connections_refresh_due` and `connections_user_refresh_due`
/// (migration 0015), whose expressions these must keep matching.
fn expiring_sql(chain: Chain) -> String {
    let (refresh, expires, issued) = match chain {
        Chain::Primary => ("refresh_token", "access_token_expires_at", "COALESCE(last_refreshed_at, updated_at)"),
        Chain::User => (
            "user_refresh_token",
            "user_token_expires_at",
            "COALESCE(user_token_refreshed_at, last_refreshed_at, updated_at)",
        ),
    };
    format!(
        "SELECT {COLUMNS} FROM {CONNECTIONS} WHERE status = 'active' AND {refresh} IS NOT NULL \
           AND {expires} IS NOT NULL AND {expires} <= $1 + $2 \
           AND ({expires} - $1) * 4 <= {expires} - {issued} \
           AND (lease_until IS NULL OR lease_until < $1) ORDER BY {expires} LIMIT $3"
    )
}

/// Re-validation's "which connections were not looked at since `$1`" (`$2` a limit), served by
/// the partial index `connections_validation_due` (migration 0015).
fn validation_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM {CONNECTIONS} WHERE status = 'active' \
           AND COALESCE(validation_checked_at, last_validated_at, created_at) < $1 \
         ORDER BY COALESCE(validation_checked_at, last_validated_at, created_at), id LIMIT $2"
    )
}

/// Whether a listing shows tombstones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tombstones {
    /// Live connections only.
    #[default]
    Exclude,
    /// Live connections and tombstones, in one id order.
    Include,
    /// Tombstones only.
    Only,
}

/// Filters of a connection listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter<'a> {
    pub user_id: Option<&'a str>,
    /// `Some("")` selects connections without an organization.
    pub organization_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub status: Option<ConnectionStatus>,
    /// Only connections granted this scope.
    pub scope: Option<&'a str>,
    pub credential_source: Option<CredentialSource>,
    /// Only connections never used, or last used before this time.
    pub unused_since: Option<i64>,
    pub tombstones: Tombstones,
    /// Only ids after this one.
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// `value` as a LIKE pattern that matches it literally (`\` escapes).
fn like_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// What a tombstone records of a deletion.
#[derive(Debug, Clone, Copy)]
pub struct Tombstone<'a> {
    pub at: i64,
    /// The actor's name: an API key, a widget user, a part of Latch.
    pub by: &'a str,
    pub revocation: Revocation,
}

/// How the access-token path picks a connection.
#[derive(Debug, Clone, Copy)]
pub struct TokenLookup<'a> {
    pub user_id: &'a str,
    pub organization_id: &'a str,
    pub provider: &'a str,
    pub account_id: Option<&'a str>,
    pub connection_id: Option<&'a str>,
}

/// New tokens to store after a refresh.
#[derive(Debug, Clone)]
pub struct RefreshedTokens {
    pub access_token: Vec<u8>,
    /// `None` keeps the stored refresh token (providers that do not rotate).
    pub refresh_token: Option<Vec<u8>>,
    pub token_type: String,
    pub expires_at: Option<i64>,
    /// `None` keeps the stored scopes.
    pub scopes: Option<Scopes>,
}

impl Store {
    /// Tells this process's caches that a connection of this owner changed, when a committed
    /// write returned its owner (it changed a row; the other processes heard through its
    /// [`ChangeNotice`]).
    fn changed_if(&self, owner: &Option<RowOwner>) {
        if let Some((user_id, organization_id, provider)) = owner {
            self.connection_changed(user_id, organization_id, provider);
        }
    }

    /// Inserts a connection row as given, with its event in the same transaction. A new
    /// connection has not been used: its usage is the usage recorder's to write.
    pub async fn insert_connection(&self, row: &ConnectionRow, event: Option<&NewEvent>) -> StoreResult<()> {
        let insert = format!(
            "INSERT INTO connections (id, provider, user_id, organization_id, account_id, account_label, \
                 status, scopes, missing_scopes, access_token, refresh_token, token_type, access_token_expires_at, \
                 created_at, updated_at, last_refreshed_at, last_validated_at, version, \
                 purpose, created_by, credential_source, label, user_access_token, user_refresh_token, \
                 user_token_expires_at, user_token_refreshed_at, user_scopes, incoming_webhook_url, resources, \
                 installation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30) {RETURNING_OWNER}"
        );
        let owner = write_with_event!(
            self,
            &row.id,
            event,
            bind_grant!(
                sqlx::query_as(&insert)
                    .bind(&row.id)
                    .bind(&row.provider)
                    .bind(&row.user_id)
                    .bind(&row.organization_id)
                    .bind(&row.account_id)
                    .bind(&row.account_label)
                    .bind(row.status.as_str())
                    .bind(row.scopes.stored())
                    .bind(row.missing_scopes.stored())
                    .bind(&row.access_token)
                    .bind(&row.refresh_token)
                    .bind(&row.token_type)
                    .bind(row.access_token_expires_at)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .bind(row.last_refreshed_at)
                    .bind(row.last_validated_at)
                    .bind(row.version)
                    .bind(&row.purpose)
                    .bind(&row.created_by)
                    .bind(row.credential_source.as_str())
                    .bind(&row.label),
                row
            )
        );
        self.changed_if(&owner);
        Ok(())
    }

    /// One connection by id.
    pub async fn connection(&self, id: &str) -> StoreResult<Option<ConnectionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM {CONNECTIONS} WHERE id = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// One connection by id, or the tombstone it left (for the inventory and the CLI; never for
    /// serving tokens).
    pub async fn connection_or_tombstone(&self, id: &str) -> StoreResult<Option<ConnectionRow>> {
        if let Some(row) = self.connection(id).await? {
            return Ok(Some(row));
        }
        let sql = format!("SELECT {TOMBSTONE_COLUMNS} FROM connection_tombstones WHERE id = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The connection that answers an access-token request: the owner's, for this provider,
    /// narrowed by account or id; an active one wins over one needing reauthorization, then the
    /// most recently updated.
    pub async fn connection_for_token(&self, q: &TokenLookup<'_>) -> StoreResult<Option<ConnectionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {CONNECTIONS} \
             WHERE user_id = $1 AND organization_id = $2 AND provider = $3 \
               AND ($4 IS NULL OR account_id = $4) AND ($5 IS NULL OR id = $5) \
             ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, updated_at DESC, id DESC LIMIT 1"
        );
        Ok(run!(self, pool => sqlx::query_as(&sql)
            .bind(q.user_id).bind(q.organization_id).bind(q.provider).bind(q.account_id).bind(q.connection_id)
            .fetch_optional(pool).await)?)
    }

    /// The app's own connections to `provider` that a developer access-token request matches
    /// (narrowed by account or id), each with whether it is the provider's selected default; at
    /// most `limit`, in id order.
    pub async fn developer_candidates(
        &self,
        provider: &str,
        account_id: Option<&str>,
        connection_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(ConnectionRow, bool)>> {
        let sql = format!(
            "SELECT {COLUMNS}, EXISTS (SELECT 1 FROM developer_defaults d WHERE d.provider = c.provider AND d.connection_id = c.id) AS selected \
             FROM connections c LEFT JOIN connection_usage ON connection_id = c.id WHERE user_id = '' AND organization_id = '' AND provider = $1 AND credential_source = 'developer' \
               AND ($2 IS NULL OR account_id = $2) AND ($3 IS NULL OR id = $3) ORDER BY id LIMIT $4"
        );
        let rows: Vec<Candidate> = run!(self, pool => sqlx::query_as(&sql)
            .bind(provider).bind(account_id).bind(connection_id).bind(limit).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|c| (c.row, c.selected)).collect())
    }

    /// Makes `connection_id` the developer connection that answers for `provider`.
    pub async fn select_developer_default(
        &self,
        provider: &str,
        connection_id: &str,
        now: i64,
        by: &str,
    ) -> StoreResult<()> {
        // Developer connections belong to no user ('' and '').
        let owner = ("", "", provider);
        run!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO developer_defaults (provider, connection_id, selected_at, selected_by) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (provider) DO UPDATE SET connection_id = excluded.connection_id, \
                   selected_at = excluded.selected_at, selected_by = excluded.selected_by")
                .bind(provider).bind(connection_id).bind(now).bind(by).execute(&mut *tx).await?;
            ChangeNotice::notice(&self.origin, connection_id, owner).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        self.connection_changed(owner.0, owner.1, owner.2);
        Ok(())
    }

    /// A page of connections (and tombstones, when asked) in id (creation) order; fetches
    /// `limit + 1` so the caller knows whether there is a next page.
    pub async fn list_connections(&self, f: &ConnectionFilter<'_>) -> StoreResult<Vec<ConnectionRow>> {
        let live =
            format!("SELECT {COLUMNS}, NULL AS deleted_at, NULL AS deleted_by, NULL AS revocation FROM {CONNECTIONS}");
        let dead = format!("SELECT {TOMBSTONE_COLUMNS} FROM connection_tombstones");
        let source = match f.tombstones {
            Tombstones::Exclude => live,
            Tombstones::Include => format!("{live} UNION ALL {dead}"),
            Tombstones::Only => dead,
        };
        let sql = format!(
            "SELECT * FROM ({source}) c \
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR organization_id = $2) \
               AND ($3 IS NULL OR provider = $3) AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR id > $5) \
               AND ($7 IS NULL OR (' ' || scopes || ' ') LIKE $7 ESCAPE '\\') \
               AND ($8 IS NULL OR credential_source = $8) \
               AND ($9 IS NULL OR last_used_at IS NULL OR last_used_at < $9) \
             ORDER BY id LIMIT $6"
        );
        // Scopes are stored space-separated: a granted scope is a whole word of ` scopes `.
        let scope = f.scope.map(|s| format!("% {} %", like_literal(s)));
        Ok(run!(self, pool => sqlx::query_as(&sql)
            .bind(f.user_id).bind(f.organization_id).bind(f.provider).bind(f.status.map(ConnectionStatus::as_str)).bind(f.after)
            .bind(f.limit + 1)
            .bind(&scope).bind(f.credential_source.map(CredentialSource::as_str)).bind(f.unused_since)
            .fetch_all(pool).await)?)
    }

    /// Connections per provider key and status.
    pub async fn connections_per_status(&self) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT provider, status, COUNT(*) FROM connections GROUP BY provider, status ORDER BY provider, status")
            .fetch_all(pool).await)?)
    }

    /// Every connection of `provider` to one of these external accounts (a Slack workspace or
    /// enterprise), whoever owns it.
    pub async fn connections_of_accounts(&self, provider: &str, accounts: &[&str]) -> StoreResult<Vec<ConnectionRow>> {
        let mut rows = Vec::new();
        for account in accounts {
            let sql =
                format!("SELECT {COLUMNS} FROM {CONNECTIONS} WHERE provider = $1 AND account_id = $2 ORDER BY id");
            let found: Vec<ConnectionRow> =
                run!(self, pool => sqlx::query_as(&sql).bind(provider).bind(account).fetch_all(pool).await)?;
            rows.extend(found);
        }
        Ok(rows)
    }

    /// Tombstones per provider key.
    pub async fn tombstones_per_provider(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT provider, COUNT(*) FROM connection_tombstones GROUP BY provider ORDER BY provider")
            .fetch_all(pool).await)?)
    }

    /// The user's connections to any of `providers` (for the widget).
    pub async fn connections_of_user(&self, user_id: &str, organization_id: &str) -> StoreResult<Vec<ConnectionRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM {CONNECTIONS} WHERE user_id = $1 AND organization_id = $2 ORDER BY id");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(user_id).bind(organization_id).fetch_all(pool).await)?)
    }

    /// Deletes a connection, leaving its tombstone: the row without its secrets is copied to
    /// `connection_tombstones` and the live row (every sealed column with it) deleted, with its
    /// event, in one transaction. Returns whether it existed.
    pub async fn delete_connection(
        &self,
        id: &str,
        tombstone: &Tombstone<'_>,
        event: Option<&NewEvent>,
    ) -> StoreResult<bool> {
        let copy = format!(
            "INSERT INTO connection_tombstones ({KEPT_COLUMNS}, deleted_at, deleted_by, revocation) \
             SELECT {KEPT_COLUMNS}, $2, $3, $4 FROM {CONNECTIONS} WHERE id = $1"
        );
        let done = run!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&copy).bind(id).bind(tombstone.at).bind(tombstone.by).bind(tombstone.revocation.as_str())
                .execute(&mut *tx).await?;
            let owner: Option<RowOwner> =
                sqlx::query_as(concat!("DELETE FROM connections WHERE id = $1 ", returning_owner!()))
                    .bind(id).fetch_optional(&mut *tx).await?;
            sqlx::query("DELETE FROM developer_defaults WHERE connection_id = $1").bind(id).execute(&mut *tx).await?;
            announce!(self, &mut *tx, id, &owner, event);
            tx.commit().await?;
            owner
        });
        self.changed_if(&done);
        if let super::Backend::Sqlite(pool) = &self.backend {
            // secure_delete zeroed the row's old cells; the WAL still holds the frames that
            // wrote them until a checkpoint copies the zeroed pages back and truncates it.
            let (busy, _, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(pool).await.map_err(StoreError::from)?;
            if busy != 0 {
                tracing::warn!(
                    "the WAL could not be truncated after a delete (readers active); the next checkpoint will"
                );
            }
        }
        Ok(done.is_some())
    }

    /// Purges the tombstones of connections deleted before `before`; returns how many.
    pub async fn purge_tombstones(&self, before: i64) -> StoreResult<u64> {
        Ok(run!(self, pool => sqlx::query("DELETE FROM connection_tombstones WHERE deleted_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Takes the refresh lease if nobody holds a live one and the row is still at `version`.
    /// The committed lease is also the "refresh in flight" marker that survives a crash.
    pub async fn take_refresh_lease(
        &self,
        id: &str,
        version: i64,
        attempt: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE connections SET lease_until = $1, refresh_attempt = $2 \
             WHERE id = $3 AND version = $4 AND (lease_until IS NULL OR lease_until < $5)")
            .bind(until).bind(attempt).bind(id).bind(version).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Releases a lease without changing tokens (transient failure).
    pub async fn release_refresh_lease(&self, id: &str, attempt: &str) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "UPDATE connections SET lease_until = NULL, refresh_attempt = NULL WHERE id = $1 AND refresh_attempt = $2")
            .bind(id).bind(attempt).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Stores the refreshed tokens of `chain` if the row is still at `version` and the lease is
    /// still `attempt`'s (compare-and-swap, fenced); bumps the version and clears the lease.
    /// Returns the row as written, or `None` if the write lost: the caller needs no second read.
    /// The `trail` entry and the change's notice commit with it: a refresh is never on record
    /// without its tokens, nor stored without its record (one commit, where three cost SQLite
    /// three fsyncs).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_refreshed_tokens(
        &self,
        id: &str,
        chain: Chain,
        version: i64,
        attempt: &str,
        tokens: &RefreshedTokens,
        now: i64,
        trail: &ActivityRow,
    ) -> StoreResult<Option<ConnectionRow>> {
        // $1 access, $2 refresh (NULL keeps), $3 expiry, $4 scopes (NULL keeps), $5 now, $6 id,
        // $7 version, $8 attempt; the primary chain also stores its token type ($9).
        static PRIMARY: LazyLock<String> = LazyLock::new(|| {
            format!(
                "UPDATE connections SET access_token = $1, refresh_token = COALESCE($2, refresh_token), \
                   access_token_expires_at = $3, scopes = COALESCE($4, scopes), token_type = $9, \
                   last_refreshed_at = $5, last_validated_at = $5, updated_at = $5, version = version + 1, \
                   lease_until = NULL, refresh_attempt = NULL, status = 'active' \
                 WHERE id = $6 AND version = $7 AND refresh_attempt = $8 RETURNING {}",
                *RETURNED_COLUMNS
            )
        });
        static USER: LazyLock<String> = LazyLock::new(|| {
            format!(
                "UPDATE connections SET user_access_token = $1, user_refresh_token = COALESCE($2, user_refresh_token), \
                   user_token_expires_at = $3, user_scopes = COALESCE($4, user_scopes), user_token_refreshed_at = $5, \
                   last_validated_at = $5, updated_at = $5, version = version + 1, \
                   lease_until = NULL, refresh_attempt = NULL, status = 'active' \
                 WHERE id = $6 AND version = $7 AND refresh_attempt = $8 RETURNING {}",
                *RETURNED_COLUMNS
            )
        });
        let sql = match chain {
            Chain::Primary => PRIMARY.as_str(),
            Chain::User => USER.as_str(),
        };
        let written: Option<ConnectionRow> = run!(self, pool => {
            let mut tx = pool.begin().await?;
            let query = sqlx::query_as(sql)
                .bind(&tokens.access_token).bind(&tokens.refresh_token).bind(tokens.expires_at)
                .bind(tokens.scopes.as_ref().map(Scopes::stored)).bind(now).bind(id).bind(version).bind(attempt);
            let query = if chain == Chain::Primary { query.bind(&tokens.token_type) } else { query };
            let written: Option<ConnectionRow> = query.fetch_optional(&mut *tx).await?;
            let owner = written.as_ref().map(ConnectionRow::owner);
            announce!(self, &mut *tx, id, &owner, None::<&NewEvent>);
            if owner.is_some() {
                insert_activity!(&mut *tx, std::slice::from_ref(trail));
            }
            tx.commit().await?;
            written
        });
        if let Some(row) = &written {
            self.connection_changed(&row.user_id, &row.organization_id, &row.provider);
        }
        Ok(written)
    }

    /// Sets the status if the row is still at `version` and, when `attempt` is given, the lease
    /// is still that attempt's (fenced); with its event; bumps the version and clears the lease.
    pub async fn set_connection_status(
        &self,
        id: &str,
        version: i64,
        attempt: Option<&str>,
        status: ConnectionStatus,
        now: i64,
        event: Option<&NewEvent>,
    ) -> StoreResult<bool> {
        let update = format!(
            "UPDATE connections SET status = $1, updated_at = $2, version = version + 1, \
               lease_until = NULL, refresh_attempt = NULL \
             WHERE id = $3 AND version = $4 AND ($5 IS NULL OR refresh_attempt = $5) {RETURNING_OWNER}"
        );
        let owner = write_with_event!(
            self,
            id,
            event,
            sqlx::query_as(&update).bind(status.as_str()).bind(now).bind(id).bind(version).bind(attempt)
        );
        self.changed_if(&owner);
        Ok(owner.is_some())
    }

    /// Sets what a connection is for; false when there is no such connection. (Not a change of
    /// tokens or status: `updated_at` and `version` stay.)
    pub async fn set_purpose(&self, id: &str, purpose: &str) -> StoreResult<bool> {
        let changed = run!(self, pool => sqlx::query("UPDATE connections SET purpose = $1 WHERE id = $2")
            .bind(purpose).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(changed > 0)
    }

    /// The owner's connection to this external account, if any.
    pub async fn connection_by_account(
        &self,
        user_id: &str,
        organization_id: &str,
        provider: &str,
        account_id: &str,
    ) -> StoreResult<Option<ConnectionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {CONNECTIONS} WHERE user_id = $1 AND organization_id = $2 AND provider = $3 AND account_id = $4"
        );
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(user_id).bind(organization_id).bind(provider).bind(account_id)
            .fetch_optional(pool).await)?)
    }

    /// Replaces a connection's grant after the user connected the same account again: new tokens
    /// (the old refresh token is not kept), scopes, label; active; version bumped; lease cleared.
    pub async fn replace_grant(&self, row: &ConnectionRow, event: Option<&NewEvent>) -> StoreResult<()> {
        let update = format!(
            "UPDATE connections SET access_token = $1, refresh_token = $2, token_type = $3, access_token_expires_at = $4, \
               scopes = $5, missing_scopes = $6, account_label = $7, status = 'active', updated_at = $8, \
               last_refreshed_at = $8, last_validated_at = $8, version = version + 1, lease_until = NULL, refresh_attempt = NULL, \
               user_access_token = $10, user_refresh_token = $11, user_token_expires_at = $12, user_token_refreshed_at = $13, \
               user_scopes = $14, incoming_webhook_url = $15, resources = $16, installation = $17 \
             WHERE id = $9 {RETURNING_OWNER}"
        );
        let owner = write_with_event!(
            self,
            &row.id,
            event,
            bind_grant!(
                sqlx::query_as(&update)
                    .bind(&row.access_token)
                    .bind(&row.refresh_token)
                    .bind(&row.token_type)
                    .bind(row.access_token_expires_at)
                    .bind(row.scopes.stored())
                    .bind(row.missing_scopes.stored())
                    .bind(&row.account_label)
                    .bind(row.updated_at)
                    .bind(&row.id),
                row
            )
        );
        self.changed_if(&owner);
        Ok(())
    }

    /// Active connections whose `chain` is due for a proactive refresh at `now`, soonest first:
    /// its token expires within `window` seconds and has less than a quarter of its lifetime
    /// left (so each is renewed once per lifetime, however short), and nobody is refreshing them.
    pub async fn connections_expiring(
        &self,
        chain: Chain,
        now: i64,
        window: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionRow>> {
        let sql = expiring_sql(chain);
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(now).bind(window).bind(limit).fetch_all(pool).await)?)
    }

    /// Active connections that re-validation has not looked at since `before`, least recently
    /// looked at first.
    pub async fn connections_to_validate(&self, before: i64, limit: i64) -> StoreResult<Vec<ConnectionRow>> {
        let sql = validation_sql();
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(before).bind(limit).fetch_all(pool).await)?)
    }

    /// Records that re-validation looked at a connection (whether or not it could check it).
    pub async fn mark_validation_checked(&self, id: &str, now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query("UPDATE connections SET validation_checked_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Records that the provider still honours the connection's token.
    pub async fn mark_validated(&self, id: &str, now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query("UPDATE connections SET last_validated_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite's planner will do with `sql` (its `EXPLAIN QUERY PLAN` details, one a line).
    async fn plan(store: &Store, sql: &str, binds: &[i64]) -> String {
        let crate::store::Backend::Sqlite(pool) = &store.backend else { unreachable!("a SQLite store") };
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query.fetch_all(pool).await.unwrap();
        rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn the_upkeep_reads_its_indexes_not_every_connection() {
        // Each refresher round asks these; with a scan each cost 24 ms at 100,000 connections
        // and grew with them. A changed expression (here or in migration 0015) silently brings
        // the scan back: this says so.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite:{}", dir.path().join("plan.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        for (sql, binds, index) in [
            (expiring_sql(Chain::Primary), &[0, 600, 500][..], "connections_refresh_due"),
            (expiring_sql(Chain::User), &[0, 600, 500][..], "connections_user_refresh_due"),
            (validation_sql(), &[0, 50][..], "connections_validation_due"),
        ] {
            let plan = plan(&store, &sql, binds).await;
            assert!(plan.contains(&format!("SEARCH connections USING INDEX {index}")), "{index}:\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: the index gives the order\n{plan}");
        }
    }
}

//! Persistence. The only module with SQL.
//!
//! One [`Store`] over SQLite (the default: one file, no server) or PostgreSQL (several replicas),
//! chosen from the database URL at start. Queries are written once with `$N` placeholders, which
//! both drivers bind by position; [`run!`] expands each query for both pools so the compiler checks
//! it against both. Backend differences (connect options, pragmas) live in [`connect`].

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub mod activity;
pub mod api_keys;
pub mod changes;
pub mod connections;
pub mod events;
pub mod flows;
pub mod keys;
pub mod sandbox;

/// Runs `$body` with `$pool` bound to whichever pool the store has.
macro_rules! run {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use run;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Which owners' connections changed (tokens, status, existence), so in-process caches drop
    /// exactly what a write made stale; on PostgreSQL each change is also `NOTIFY`ed.
    changes: Arc<changes::Changes>,
    /// This process, as the `origin` of the changes it logs (SQLite).
    origin: Arc<str>,
    /// When this process last swept expired flows (Unix seconds).
    last_flow_sweep: Arc<std::sync::atomic::AtomicI64>,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What went wrong in the store, in terms callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint (or a description of it).
        constraint: String,
    },
    /// The database is unreachable or overloaded; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or a broken schema.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is not a supported database URL.
    #[error("unsupported database URL (expected sqlite:… or postgres://…)")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict { constraint: db.constraint().unwrap_or("unique").to_owned() }
            }
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5") | Some("6") | Some("517")) => {
                // SQLITE_BUSY / SQLITE_LOCKED / SQLITE_BUSY_SNAPSHOT after busy_timeout.
                StoreError::Unavailable(err)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(err),
            _ => StoreError::Other(err),
        }
    }
}

impl StoreError {
    /// Whether a foreign key refused the write: the row it names was deleted meanwhile.
    pub fn is_dangling_reference(&self) -> bool {
        matches!(self, StoreError::Other(sqlx::Error::Database(db)) if db.is_foreign_key_violation())
    }
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`), creating a SQLite file if missing.
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets readers proceed during a write; busy_timeout makes writers queue instead
                // of failing; FULL sync so a rotated refresh token survives power loss.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                // Freed space is zeroed: a deleted connection's or replaced token's ciphertext
                // does not linger in the file's free pages.
                .pragma("secure_delete", "on")
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                // No ping before each use: an embedded file's connection cannot go stale, and
                // the ping was a round trip to the connection's worker thread on every acquire.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?.application_name("latch");
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let origin = uuid::Uuid::new_v4().simple().to_string().into();
        Ok(Self { backend, changes: Arc::default(), origin, last_flow_sweep: Arc::default() })
    }

    /// Applies pending migrations. Safe to run from several replicas at once: sqlx takes an
    /// advisory lock on PostgreSQL, and SQLite serializes writers.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// What changed in connection data, as this process knows it.
    pub fn changes(&self) -> &changes::Changes {
        &self.changes
    }

    /// Records that a connection of this owner changed, once the transaction that changed it
    /// (and sent its [`changes::ChangeNotice`]) committed: this process's caches drop the
    /// owner's rows.
    pub(crate) fn connection_changed(&self, user_id: &str, organization_id: &str, provider: &str) {
        self.changes.owner_changed(changes::owner_key(user_id, organization_id, provider));
    }

    /// SQLite: the owners other processes logged as changed after `after` (a sequence number),
    /// and the last sequence number read; `after = None` starts at the end of the log.
    pub async fn changes_by_others(&self, after: Option<i64>) -> StoreResult<(Vec<String>, i64)> {
        let Backend::Sqlite(pool) = &self.backend else { return Ok((Vec::new(), after.unwrap_or(0))) };
        let Some(after) = after else {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM connection_changes").fetch_one(pool).await?;
            return Ok((Vec::new(), last.unwrap_or(0)));
        };
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, origin, user_id, organization_id, provider FROM connection_changes \
             WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(after)
        .fetch_all(pool)
        .await?;
        let last = rows.last().map_or(after, |r| r.0);
        let owners = rows
            .into_iter()
            .filter(|r| *r.1 != *self.origin)
            .map(|(_, _, user, organization, provider)| changes::owner_key(&user, &organization, &provider))
            .collect();
        Ok((owners, last))
    }

    /// Prunes the change log (SQLite) of entries older than ten minutes, by the database's clock.
    pub async fn prune_changes(&self) -> StoreResult<()> {
        if let Backend::Sqlite(pool) = &self.backend {
            sqlx::query("DELETE FROM connection_changes WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - 600")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Whether other processes' changes arrive by `NOTIFY` (PostgreSQL) rather than by polling.
    pub fn notifies(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Tells the other replicas (PostgreSQL) that API key `id` was revoked.
    pub(crate) async fn api_key_revoked(&self, id: &str) {
        if let Backend::Postgres(pool) = &self.backend {
            let sent =
                sqlx::query("SELECT pg_notify($1, $2)").bind(changes::API_KEYS_CHANNEL).bind(id).execute(pool).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not notify the other replicas of an API key revocation");
            }
        }
    }

    /// A listener of other replicas' changes (PostgreSQL only; `None` on SQLite, where one
    /// process serves).
    pub async fn listener(&self) -> StoreResult<Option<sqlx::postgres::PgListener>> {
        let Backend::Postgres(pool) = &self.backend else { return Ok(None) };
        #[cfg(feature = "failpoints")]
        {
            // A slow listener connection (tests): `return(MILLISECONDS)`.
            let delay = || -> Option<u64> {
                fail::fail_point!("changes.listen_delay", |ms| ms.and_then(|ms| ms.parse().ok()));
                None
            };
            if let Some(ms) = delay() {
                crate::clock::Clock::sleep(std::time::Duration::from_millis(ms)).await;
            }
        }
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen_all([changes::CONNECTIONS_CHANNEL, changes::API_KEYS_CHANNEL]).await?;
        Ok(Some(listener))
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        run!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every pooled connection (so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        run!(self, pool => pool.close().await);
    }
}

/// Builds a prefixed, time-ordered id such as `conn_0190f3…`: sorting ids sorts by creation.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

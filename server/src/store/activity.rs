//! Rows of `activity`, the audit trail. Entries are appended, never updated.

use super::{Backend, Store, StoreError, StoreResult, run};
use latch_shared::activity::Action;

/// One audit entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: String,
    pub at: i64,
    pub actor_kind: String,
    pub actor_name: String,
    #[sqlx(try_from = "String")]
    pub action: Action,
    pub connection_id: Option<String>,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub provider: Option<String>,
    pub outcome: String,
    pub error_code: Option<String>,
    pub detail: Option<String>,
}

/// Rows a multi-row statement carries: 200 entries are 2 400 parameters, far under SQLite's
/// 32 766 and PostgreSQL's 65 535.
pub(crate) const CHUNK: usize = 200;

/// The statement that writes a batch of uses, read from `rows` (a row source named `v` with
/// columns `id`, `at`, `used_by`; each backend has its own way to pass a whole batch as one
/// parameter or a few).
fn usage_upsert(rows: &str) -> String {
    // A connection deleted meanwhile has no usage to keep. The order is said, not left to the
    // plan: a merge join sorts the list its own way. (Ids are `prefix_hex`: the same order
    // under every collation as byte for byte.)
    format!(
        "INSERT INTO connection_usage (connection_id, last_used_at, last_used_by) \
         SELECT v.id, v.at, v.used_by FROM {rows} \
         WHERE EXISTS (SELECT 1 FROM connections WHERE connections.id = v.id) ORDER BY v.id \
         ON CONFLICT (connection_id) DO UPDATE \
         SET last_used_at = excluded.last_used_at, last_used_by = excluded.last_used_by \
         WHERE connection_usage.last_used_at <= excluded.last_used_at"
    )
}

/// Filters of an activity listing.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter<'a> {
    pub connection_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    /// Only entries older than this id (newest first paging).
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// Appends trail entries (`&[ActivityRow]`) with `executor` (a transaction's), [`CHUNK`] rows a
/// statement; a macro, so that it runs on either backend's transaction.
macro_rules! insert_activity {
    ($executor:expr, $rows:expr) => {
        for chunk in $rows.chunks($crate::store::activity::CHUNK) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO activity (id, at, actor_kind, actor_name, action, connection_id, user_id, \
                 organization_id, provider, outcome, error_code, detail) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id.as_str())
                    .push_bind(r.at)
                    .push_bind(r.actor_kind.as_str())
                    .push_bind(r.actor_name.as_str())
                    .push_bind(r.action.as_str())
                    .push_bind(r.connection_id.as_deref())
                    .push_bind(r.user_id.as_deref())
                    .push_bind(r.organization_id.as_deref())
                    .push_bind(r.provider.as_deref())
                    .push_bind(r.outcome.as_str())
                    .push_bind(r.error_code.as_deref())
                    .push_bind(r.detail.as_deref());
            });
            // Full chunks share one prepared statement; a remainder's size is one-off.
            q.build().persistent(chunk.len() == $crate::store::activity::CHUNK).execute($executor).await?;
        }
    };
}
pub(crate) use insert_activity;

impl Store {
    /// Appends entries, in one transaction.
    pub async fn insert_activity(&self, rows: &[ActivityRow]) -> StoreResult<()> {
        self.write_usage(rows, &[]).await
    }

    /// Appends trail entries and records connections' use (`(id, at, API key name)`) in one
    /// transaction: the entries [`CHUNK`] rows a statement, the uses in one statement of the
    /// whole batch. The usage recorder writes thousands a second at 100 000 connections in use,
    /// and a statement per row (a round trip to PostgreSQL, or to sqlx's SQLite worker thread)
    /// cost the requests a core's share. The trail goes first: whoever sees `last_used_at` can
    /// also see why.
    pub async fn write_usage(&self, rows: &[ActivityRow], uses: &[(&str, i64, &str)]) -> StoreResult<()> {
        if rows.is_empty() && uses.is_empty() {
            return Ok(());
        }
        // In connection order: replicas' batches of the same connections then lock their usage
        // rows in the same order (in their own orders, each could hold a row the other waits
        // for: a deadlock, and one batch's window of usage lost), and SQLite walks the narrow
        // table's pages once, in order, instead of one page per row at random.
        let mut uses = uses.to_vec();
        uses.sort_unstable_by_key(|u| u.0);
        let mut attempts = 1;
        loop {
            match self.write_usage_once(rows, &uses).await {
                // PostgreSQL: a connection deleted while the batch was written fails its usage
                // row's key check (which waited for the delete to commit), and with it the whole
                // batch. Written again, the batch no longer sees that connection. (SQLite has one
                // writer at a time: there the delete is done before the batch looks.)
                Err(e) if e.is_dangling_reference() && attempts < 3 => attempts += 1,
                done => return done,
            }
        }
    }

    async fn write_usage_once(&self, rows: &[ActivityRow], uses: &[(&str, i64, &str)]) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                // The whole batch as one JSON array of `[id, at, key]`, read by `json_each`: one
                // statement of one parameter. As VALUES lists of 200 rows (three parameters a
                // row, each a string copied for sqlx's worker thread and freed there), the
                // batches cost the requests about 5 % of the core at 100 000 connections in use
                // (README, Performance).
                let mut tx = pool.begin().await?;
                insert_activity!(&mut *tx, rows);
                if !uses.is_empty() {
                    let batch =
                        serde_json::to_string(uses).map_err(|e| StoreError::Other(sqlx::Error::Encode(e.into())))?;
                    let sql = usage_upsert(
                        "(SELECT j.value ->> 0 AS id, j.value ->> 1 AS at, j.value ->> 2 AS used_by \
                         FROM json_each($1) AS j) AS v",
                    );
                    sqlx::query(&sql).bind(batch).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Backend::Postgres(pool) => {
                // The whole batch as three arrays: one statement of three parameters, where
                // VALUES lists of 200 rows cost PostgreSQL a parse and plan of 600 parameters
                // each, on a core it may share with the server.
                let mut tx = pool.begin().await?;
                insert_activity!(&mut *tx, rows);
                if !uses.is_empty() {
                    let ids: Vec<&str> = uses.iter().map(|u| u.0).collect();
                    let ats: Vec<i64> = uses.iter().map(|u| u.1).collect();
                    let keys: Vec<&str> = uses.iter().map(|u| u.2).collect();
                    let sql = usage_upsert("unnest($1::text[], $2::bigint[], $3::text[]) AS v (id, at, used_by)");
                    sqlx::query(&sql).bind(&ids).bind(&ats).bind(&keys).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// A page of entries, newest first; fetches `limit + 1`.
    pub async fn list_activity(&self, f: &ActivityFilter<'_>) -> StoreResult<Vec<ActivityRow>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT id, at, actor_kind, actor_name, action, connection_id, user_id, organization_id, provider, \
             outcome, error_code, detail FROM activity \
             WHERE ($1 IS NULL OR connection_id = $1) AND ($2 IS NULL OR user_id = $2) \
               AND ($3 IS NULL OR provider = $3) AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5")
            .bind(f.connection_id).bind(f.user_id).bind(f.provider).bind(f.before).bind(f.limit + 1)
            .fetch_all(pool).await)?)
    }
}

//! Rows of `activity`, the audit trail. Entries are appended, never updated.

use super::{Store, StoreResult, run};
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

impl Store {
    /// Appends entries (one statement each, in one transaction).
    pub async fn insert_activity(&self, rows: &[ActivityRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        run!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO activity (id, at, actor_kind, actor_name, action, connection_id, user_id, \
                     organization_id, provider, outcome, error_code, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                    .bind(&r.id).bind(r.at).bind(&r.actor_kind).bind(&r.actor_name).bind(r.action.as_str())
                    .bind(&r.connection_id).bind(&r.user_id).bind(&r.organization_id).bind(&r.provider)
                    .bind(&r.outcome).bind(&r.error_code).bind(&r.detail)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
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

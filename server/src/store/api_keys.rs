//! Rows of `api_keys`. Keys are looked up by the SHA-256 of the presented key.

use super::{Store, StoreResult, run};

/// A stored API key (never the key itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// `key_…`.
    pub id: String,
    /// Human name, unique among live keys.
    pub name: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
    /// Unix seconds; set once revoked.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, key_hash, created_at, last_used_at, revoked_at";

impl Store {
    /// Inserts a new key.
    pub async fn insert_api_key(&self, id: &str, name: &str, hash: &[u8], now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id).bind(name).bind(hash).bind(now)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The live key with this hash.
    pub async fn find_api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(hash).fetch_optional(pool).await)?)
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY id");
        Ok(run!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// Revokes the live key whose id or name is `name_or_id`; returns its id.
    pub async fn revoke_api_key(&self, name_or_id: &str, now: i64) -> StoreResult<Option<String>> {
        let revoked: Option<String> = run!(self, pool => sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL RETURNING id")
            .bind(now).bind(name_or_id)
            .fetch_optional(pool).await)?;
        if let Some(id) = &revoked {
            self.api_key_revoked(id).await;
        }
        Ok(revoked)
    }

    /// Records use of keys (batched by the usage recorder, off the hot path).
    pub async fn touch_api_keys(&self, ids: &[String], now: i64) -> StoreResult<()> {
        for id in ids {
            run!(self, pool => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now).bind(id).execute(pool).await.map(|_| ()))?;
        }
        Ok(())
    }
}

//! Key material the server keeps in the database: master-key check values, widget signing keys
//! and provider client secrets. Everything secret here is a vault envelope.

use super::{Backend, Store, StoreResult, run};
use crate::vault::Sealed;

/// A widget-JWT signing key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// The `kid`.
    pub id: String,
    /// Sealed PKCS#8 document.
    pub private_key: Vec<u8>,
    /// Raw Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// When a rotated-out key stops verifying (`None`: it is current).
    pub retired_at: Option<i64>,
}

impl Store {
    /// `(key_id, check_value)` of every master key that has sealed data here.
    pub async fn vault_keys(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        Ok(run!(self, pool => sqlx::query_as("SELECT key_id, check_value FROM vault_keys ORDER BY created_at")
            .fetch_all(pool).await)?)
    }

    /// [`Store::vault_keys`], or none on a database not migrated that far (a fresh one): what a
    /// start checks its master key against before it migrates anything.
    pub async fn vault_keys_if_any(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let exists: bool = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_keys')",
                )
                .fetch_one(pool)
                .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT to_regclass('vault_keys') IS NOT NULL").fetch_one(pool).await?
            }
        };
        if exists { self.vault_keys().await } else { Ok(Vec::new()) }
    }

    /// Records that `key_id` seals data here (idempotent).
    pub async fn record_vault_key(&self, key_id: &str, check_value: &[u8], now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO vault_keys (key_id, check_value, created_at) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING")
            .bind(key_id).bind(check_value).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Signing keys that still verify at `now`, the current ones first (newest first): the
    /// first signs.
    pub async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKeyRow>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT id, private_key, public_key, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC")
            .bind(now).fetch_all(pool).await)?)
    }

    /// Rotates the signing key in one transaction: the current keys retire at `retire_at` (they
    /// verify until then), `row` becomes the one that signs, and keys retired by `now` are
    /// deleted.
    pub async fn rotate_signing_key(&self, row: &SigningKeyRow, retire_at: i64, now: i64) -> StoreResult<()> {
        run!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL").bind(retire_at).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO signing_keys (id, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&row.id).bind(&row.private_key).bind(&row.public_key).bind(row.created_at)
                .execute(&mut *tx).await?;
            sqlx::query("DELETE FROM signing_keys WHERE retired_at <= $1").bind(now).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Stores a new signing key.
    pub async fn insert_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO signing_keys (id, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&row.id).bind(&row.private_key).bind(&row.public_key).bind(row.created_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Stores (or replaces) a provider's sealed client secret.
    pub async fn put_client_secret(&self, provider: &str, sealed: &[u8], now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO provider_secrets (provider, client_secret, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (provider) DO UPDATE SET client_secret = excluded.client_secret, updated_at = excluded.updated_at")
            .bind(provider).bind(sealed).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Deletes a provider's client secret; false if none was stored.
    pub async fn delete_client_secret(&self, provider: &str) -> StoreResult<bool> {
        let deleted = run!(self, pool => sqlx::query("DELETE FROM provider_secrets WHERE provider = $1")
            .bind(provider).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }

    /// Stores (or replaces) a provider's sealed signing secret (for events it pushes).
    pub async fn put_signing_secret(&self, provider: &str, sealed: &[u8], now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO provider_signing_secrets (provider, signing_secret, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (provider) DO UPDATE SET signing_secret = excluded.signing_secret, updated_at = excluded.updated_at")
            .bind(provider).bind(sealed).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A provider's sealed signing secret.
    pub async fn signing_secret(&self, provider: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            run!(self, pool => sqlx::query_scalar("SELECT signing_secret FROM provider_signing_secrets WHERE provider = $1")
            .bind(provider).fetch_optional(pool).await)?,
        )
    }

    /// A provider's sealed client secret.
    pub async fn client_secret(&self, provider: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(run!(self, pool => sqlx::query_scalar("SELECT client_secret FROM provider_secrets WHERE provider = $1")
            .bind(provider).fetch_optional(pool).await)?)
    }

    /// Whether `provider` has a stored secret (without reading it).
    pub async fn has_client_secret(&self, provider: &str) -> StoreResult<bool> {
        Ok(run!(self, pool => sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM provider_secrets WHERE provider = $1)")
            .bind(provider).fetch_one(pool).await)?)
    }

    /// Providers that have a stored secret.
    pub async fn providers_with_secret(&self) -> StoreResult<Vec<String>> {
        Ok(run!(self, pool => sqlx::query_scalar("SELECT provider FROM provider_secrets")
            .fetch_all(pool).await)?)
    }
}

impl Store {
    /// A page of `(row id, envelope)` of one sealed column, by id. (Column names cannot be bound as parameters;
    /// they come from [`Sealed::location`].)
    pub async fn sealed_page(&self, column: Sealed, after: &str, limit: i64) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let (table, id, col) = column.location();
        let sql =
            format!("SELECT {id}, {col} FROM {table} WHERE {col} IS NOT NULL AND {id} > $1 ORDER BY {id} LIMIT $2");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(pool).await)?)
    }

    /// Replaces one envelope if it is still exactly `old` (a concurrent write, such as a refresh,
    /// wins and is left alone: it was sealed under the active key anyway).
    pub async fn reseal(&self, column: Sealed, row: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let (table, id, col) = column.location();
        let sql = format!("UPDATE {table} SET {col} = $1 WHERE {id} = $2 AND {col} = $3");
        let n = run!(self, pool => sqlx::query(&sql).bind(new).bind(row).bind(old).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Forgets a master key id that no envelope references any more.
    pub async fn forget_vault_key(&self, key_id: &str) -> StoreResult<()> {
        run!(self, pool => sqlx::query("DELETE FROM vault_keys WHERE key_id = $1").bind(key_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

//! Rows of the sandbox authorization server (demo mode): grants, hashed tokens, messages.

use super::{Store, StoreResult, run};

/// A code or token of the sandbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SandboxToken {
    pub grant_id: String,
    pub kind: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub challenge: Option<String>,
    pub redirect_uri: Option<String>,
    /// From the grant.
    pub account: String,
    pub scopes: String,
    pub revoked_at: Option<i64>,
}

/// A message posted through the sandbox API.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SandboxMessage {
    pub id: String,
    pub account: String,
    pub text: String,
    pub created_at: i64,
}

impl Store {
    /// Creates a grant.
    pub async fn sandbox_insert_grant(&self, id: &str, account: &str, scopes: &str, now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query("INSERT INTO sandbox_grants (id, account, scopes, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id).bind(account).bind(scopes).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Stores a token hash.
    #[allow(clippy::too_many_arguments)]
    pub async fn sandbox_insert_token(
        &self,
        hash: &[u8],
        grant_id: &str,
        kind: &str,
        expires_at: i64,
        challenge: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO sandbox_tokens (hash, grant_id, kind, expires_at, challenge, redirect_uri) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(hash).bind(grant_id).bind(kind).bind(expires_at).bind(challenge).bind(redirect_uri)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A token by hash, with its grant.
    pub async fn sandbox_token(&self, hash: &[u8]) -> StoreResult<Option<SandboxToken>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT t.grant_id, t.kind, t.expires_at, t.used_at, t.challenge, t.redirect_uri, g.account, g.scopes, g.revoked_at \
             FROM sandbox_tokens t JOIN sandbox_grants g ON g.id = t.grant_id WHERE t.hash = $1")
            .bind(hash).fetch_optional(pool).await)?)
    }

    /// Marks a single-use token used; false if it already was (a replay).
    pub async fn sandbox_use_token(&self, hash: &[u8], now: i64) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query("UPDATE sandbox_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(now).bind(hash).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Revokes a grant (and so every token of it).
    pub async fn sandbox_revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query("UPDATE sandbox_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now).bind(grant_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Revokes every grant of a sandbox account ("remove the app's access" at the provider).
    pub async fn sandbox_revoke_account(&self, account: &str, now: i64) -> StoreResult<u64> {
        Ok(
            run!(self, pool => sqlx::query("UPDATE sandbox_grants SET revoked_at = $1 WHERE account = $2 AND revoked_at IS NULL")
            .bind(now).bind(account).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Stores a message.
    pub async fn sandbox_insert_message(&self, m: &SandboxMessage) -> StoreResult<()> {
        run!(self, pool => sqlx::query("INSERT INTO sandbox_messages (id, account, text, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&m.id).bind(&m.account).bind(&m.text).bind(m.created_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The latest messages, newest first.
    pub async fn sandbox_messages(&self, limit: i64) -> StoreResult<Vec<SandboxMessage>> {
        Ok(
            run!(self, pool => sqlx::query_as("SELECT id, account, text, created_at FROM sandbox_messages ORDER BY id DESC LIMIT $1")
            .bind(limit).fetch_all(pool).await)?,
        )
    }
}

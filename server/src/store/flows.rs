//! Rows of `flows`: connect attempts, from the widget's click to the provider's callback.
//! Every transition is one conditional UPDATE, so a flow is started once and consumed once even
//! when requests race (replayed callbacks, double clicks, several replicas).

use super::{Store, StoreResult, run};
use latch_shared::CredentialSource;

latch_shared::text_enum! {
    /// Where a flow is: `created` → `started` → `exchanging` → `connected` | `error`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FlowStage {
        /// Created by the widget, not opened yet.
        Created = "created",
        /// Sent to the provider.
        Started = "started",
        /// Its callback arrived: the code is being exchanged.
        Exchanging = "exchanging",
        /// The connection is stored.
        Connected = "connected",
        /// It failed; `error_code` says why.
        Error = "error",
    }
}

/// A connect flow.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowRow {
    pub id: String,
    pub provider: String,
    pub user_id: String,
    pub organization_id: String,
    pub allowed_origin: Option<String>,
    pub return_to: Option<String>,
    pub reconnect_connection_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: FlowStage,
    pub state_hash: Option<Vec<u8>>,
    pub browser_hash: Option<Vec<u8>>,
    pub pkce_verifier: Option<Vec<u8>>,
    pub connection_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// The host's label for the user, from the widget token.
    pub user_label: Option<String>,
    /// What the connection will be for, from the widget token.
    pub purpose: Option<String>,
    /// An end user's flow, or an operator's for the app's own account (whose `user_label` is
    /// the connection's `label`).
    #[sqlx(try_from = "String")]
    pub credential_source: CredentialSource,
}

impl FlowRow {
    /// A new flow (status `created`, nothing started yet) for `user_id` at `provider`, from
    /// `allowed_origin`, living `ttl_seconds` from `now`; the one place a flow's starting values
    /// are written (the widget's flows and the operator's developer flows build on it).
    pub fn created(
        id: String,
        provider: &str,
        (user_id, organization_id): (&str, &str),
        allowed_origin: Option<String>,
        credential_source: CredentialSource,
        now: i64,
        ttl_seconds: i64,
    ) -> Self {
        Self {
            id,
            provider: provider.to_owned(),
            user_id: user_id.to_owned(),
            organization_id: organization_id.to_owned(),
            allowed_origin,
            return_to: None,
            reconnect_connection_id: None,
            status: FlowStage::Created,
            state_hash: None,
            browser_hash: None,
            pkce_verifier: None,
            connection_id: None,
            error_code: None,
            error_message: None,
            created_at: now,
            expires_at: now + ttl_seconds,
            started_at: None,
            completed_at: None,
            user_label: None,
            purpose: None,
            credential_source,
        }
    }
}

const COLUMNS: &str = "id, provider, user_id, organization_id, allowed_origin, return_to, \
    reconnect_connection_id, status, state_hash, browser_hash, pkce_verifier, connection_id, \
    error_code, error_message, created_at, expires_at, started_at, completed_at, user_label, purpose, \
    credential_source";

/// Expired flows are swept at most this often per process.
const SWEEP_EVERY: i64 = 60;

impl Store {
    /// Stores a new flow (status `created`); at most once a minute, also forgets flows that ended
    /// over a day ago.
    pub async fn insert_flow(&self, f: &FlowRow) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO flows (id, provider, user_id, organization_id, allowed_origin, return_to, \
             reconnect_connection_id, status, created_at, expires_at, user_label, purpose, credential_source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
            .bind(&f.id).bind(&f.provider).bind(&f.user_id).bind(&f.organization_id).bind(&f.allowed_origin)
            .bind(&f.return_to).bind(&f.reconnect_connection_id).bind(f.status.as_str()).bind(f.created_at).bind(f.expires_at)
            .bind(&f.user_label).bind(&f.purpose).bind(f.credential_source.as_str())
            .execute(pool).await.map(|_| ()))?;
        let last = self.last_flow_sweep.load(std::sync::atomic::Ordering::Relaxed);
        let due = f.created_at - last >= SWEEP_EVERY;
        if due
            && self
                .last_flow_sweep
                .compare_exchange(
                    last,
                    f.created_at,
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            run!(self, pool => sqlx::query("DELETE FROM flows WHERE expires_at < $1")
                .bind(f.created_at - 86_400).execute(pool).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// How many of the user's flows are under way (not finished, not expired) at `now`.
    pub async fn pending_flows(&self, user_id: &str, organization_id: &str, now: i64) -> StoreResult<i64> {
        Ok(run!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM flows WHERE user_id = $1 AND organization_id = $2 \
               AND status IN ('created', 'started', 'exchanging') AND expires_at > $3")
            .bind(user_id).bind(organization_id).bind(now).fetch_one(pool).await)?)
    }

    /// One flow by id.
    pub async fn flow(&self, id: &str) -> StoreResult<Option<FlowRow>> {
        let sql = format!("SELECT {COLUMNS} FROM flows WHERE id = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The flow a callback's `state` belongs to.
    pub async fn flow_by_state(&self, state_hash: &[u8]) -> StoreResult<Option<FlowRow>> {
        let sql = format!("SELECT {COLUMNS} FROM flows WHERE state_hash = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(state_hash).fetch_optional(pool).await)?)
    }

    /// `created` → `started`, once, before expiry; records the state, browser binding and PKCE.
    pub async fn start_flow(
        &self,
        id: &str,
        state_hash: &[u8],
        browser_hash: &[u8],
        pkce: Option<&[u8]>,
        now: i64,
    ) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE flows SET status = 'started', state_hash = $1, browser_hash = $2, pkce_verifier = $3, started_at = $4 \
             WHERE id = $5 AND status = 'created' AND expires_at > $4")
            .bind(state_hash).bind(browser_hash).bind(pkce).bind(now).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// `started` → `exchanging`, once, before expiry: the atomic consumption of `state`.
    pub async fn claim_flow(&self, id: &str, now: i64) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE flows SET status = 'exchanging' WHERE id = $1 AND status = 'started' AND expires_at > $2")
            .bind(id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Ends a flow; the PKCE verifier is erased either way.
    pub async fn finish_flow(
        &self,
        id: &str,
        connection_id: Option<&str>,
        error: Option<(&str, &str)>,
        now: i64,
    ) -> StoreResult<()> {
        let status = if error.is_some() { FlowStage::Error } else { FlowStage::Connected };
        run!(self, pool => sqlx::query(
            "UPDATE flows SET status = $1, connection_id = $2, error_code = $3, error_message = $4, \
             completed_at = $5, pkce_verifier = NULL WHERE id = $6")
            .bind(status.as_str()).bind(connection_id).bind(error.map(|e| e.0)).bind(error.map(|e| e.1)).bind(now).bind(id)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

//! Rows of `events` (the transactional outbox), `webhook_endpoints` and `webhook_failures`.

use super::{Store, StoreResult, run};

/// An event to write with the change it describes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    pub connection_id: Option<String>,
    pub created_at: i64,
    /// JSON.
    pub data: String,
}

/// Where an event sits in the one order every reader sees: the writing transaction's id
/// (PostgreSQL; 0 on SQLite), then `seq`. See migration 0005.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub xid: i64,
    pub seq: i64,
}

/// A stored event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub xid: i64,
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub connection_id: Option<String>,
    pub created_at: i64,
    pub data: String,
}

/// A webhook endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
    pub created_at: i64,
    pub delivered_xid: i64,
    pub delivered_seq: i64,
    pub attempts: i64,
    pub first_failed_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

/// An event an endpoint never accepted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: i64,
    pub resent_at: Option<i64>,
}

const ENDPOINT_COLUMNS: &str = "id, url, events, secret, previous_secret, previous_until, created_at, delivered_xid, \
    delivered_seq, attempts, first_failed_at, next_attempt_at, last_error";

const EVENT_COLUMNS: &str = "xid, seq, id, type, connection_id, created_at, data";

/// Events after `($1, $2)` in (xid, seq) order.
const AFTER: &str = "(xid > $1 OR (xid = $1 AND seq > $2))";

impl EventRow {
    /// This event's place in the order.
    pub fn position(&self) -> Position {
        Position { xid: self.xid, seq: self.seq }
    }
}

impl EndpointRow {
    /// The position of the last event this endpoint handled.
    pub fn cursor(&self) -> Position {
        Position { xid: self.delivered_xid, seq: self.delivered_seq }
    }
}

/// The INSERT of an event, run inside the caller's transaction.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (id, type, connection_id, created_at, data) VALUES ($1, $2, $3, $4, $5)";

/// Binds a [`NewEvent`] to [`INSERT_EVENT`] and runs it on `$executor`.
macro_rules! insert_event {
    ($executor:expr, $event:expr) => {
        sqlx::query($crate::store::events::INSERT_EVENT)
            .bind(&$event.id)
            .bind(&$event.kind)
            .bind(&$event.connection_id)
            .bind($event.created_at)
            .bind(&$event.data)
            .execute($executor)
    };
}
pub(crate) use insert_event;

impl Store {
    /// The condition that keeps readers behind every transaction still running: on PostgreSQL,
    /// only events of transactions older than the oldest one running, whose set is final; on
    /// SQLite (one writer at a time) every committed event.
    fn settled_events(&self) -> &'static str {
        match self.backend {
            super::Backend::Sqlite(_) => "TRUE",
            super::Backend::Postgres(_) => "xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
        }
    }

    /// Settled events after `after`, in order.
    pub async fn events_after(&self, after: Position, limit: i64) -> StoreResult<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {AFTER} AND {} ORDER BY xid, seq LIMIT $3",
            self.settled_events()
        );
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(after.xid).bind(after.seq).bind(limit).fetch_all(pool).await)?)
    }

    /// How many committed events come after `after` (an endpoint's backlog), settled or not: on
    /// PostgreSQL an event behind a transaction still running is not delivered yet, but it is
    /// waiting.
    pub async fn events_after_count(&self, after: Position) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) FROM events WHERE {AFTER}");
        Ok(run!(self, pool => sqlx::query_scalar(&sql).bind(after.xid).bind(after.seq).fetch_one(pool).await)?)
    }

    /// The position of an event id.
    pub async fn event_position(&self, id: &str) -> StoreResult<Option<Position>> {
        let found: Option<(i64, i64)> = run!(self, pool => sqlx::query_as("SELECT xid, seq FROM events WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?;
        Ok(found.map(|(xid, seq)| Position { xid, seq }))
    }

    /// One event.
    pub async fn event(&self, id: &str) -> StoreResult<Option<EventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Creates an endpoint that starts after every event already written.
    pub async fn insert_endpoint(&self, id: &str, url: &str, events: &str, secret: &[u8], now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, events, secret, created_at, delivered_xid, delivered_seq) \
             VALUES ($1, $2, $3, $4, $5, \
               COALESCE((SELECT xid FROM events ORDER BY xid DESC, seq DESC LIMIT 1), 0), \
               COALESCE((SELECT seq FROM events ORDER BY xid DESC, seq DESC LIMIT 1), 0))")
            .bind(id).bind(url).bind(events).bind(secret).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Every endpoint, oldest first.
    pub async fn endpoints(&self) -> StoreResult<Vec<EndpointRow>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id");
        Ok(run!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> StoreResult<Option<EndpointRow>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Deletes an endpoint; returns whether it existed.
    pub async fn delete_endpoint(&self, id: &str) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Replaces the secret; the old one (re-sealed for its column) keeps signing until
    /// `previous_until`.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &str,
        sealed: &[u8],
        sealed_previous: &[u8],
        previous_until: i64,
    ) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = $1, previous_until = $2, secret = $3 WHERE id = $4")
            .bind(sealed_previous).bind(previous_until).bind(sealed).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Endpoints that may have something to deliver now and that no replica holds.
    pub async fn due_endpoints(&self, now: i64) -> StoreResult<Vec<EndpointRow>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints w \
             WHERE (next_attempt_at IS NULL OR next_attempt_at <= $1) AND (lease_until IS NULL OR lease_until < $1) \
               AND EXISTS (SELECT 1 FROM events WHERE (xid > w.delivered_xid OR (xid = w.delivered_xid AND seq > w.delivered_seq)) \
                 AND {}) ORDER BY id",
            self.settled_events()
        );
        Ok(run!(self, pool => sqlx::query_as(&sql).bind(now).fetch_all(pool).await)?)
    }

    /// Takes the delivery lease of an endpoint for `owner`, if nobody holds a live one.
    pub async fn lease_endpoint(&self, id: &str, owner: &str, now: i64, until: i64) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE webhook_endpoints SET lease_until = $1, lease_owner = $2 WHERE id = $3 AND (lease_until IS NULL OR lease_until < $4)")
            .bind(until).bind(owner).bind(id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Moves the cursor forward to `to` (delivered, or not subscribed) and clears failure state,
    /// if `owner` still holds the lease. Returns whether it did.
    pub async fn advance_endpoint(&self, id: &str, owner: &str, to: Position) -> StoreResult<bool> {
        let n = run!(self, pool => sqlx::query(
            "UPDATE webhook_endpoints SET delivered_xid = $1, delivered_seq = $2, attempts = 0, first_failed_at = NULL, \
               next_attempt_at = NULL, last_error = NULL WHERE id = $3 AND lease_owner = $4")
            .bind(to.xid).bind(to.seq).bind(id).bind(owner).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Records a failed attempt at the event after the cursor, if `owner` still holds the lease.
    pub async fn endpoint_attempt_failed(
        &self,
        id: &str,
        owner: &str,
        attempts: i64,
        first_failed_at: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "UPDATE webhook_endpoints SET attempts = $1, first_failed_at = $2, next_attempt_at = $3, last_error = $4 \
             WHERE id = $5 AND lease_owner = $6")
            .bind(attempts).bind(first_failed_at).bind(next_attempt_at).bind(error).bind(id).bind(owner)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Releases the delivery lease, if `owner` still holds it.
    pub async fn release_endpoint(&self, id: &str, owner: &str) -> StoreResult<()> {
        run!(self, pool => sqlx::query(
            "UPDATE webhook_endpoints SET lease_until = NULL, lease_owner = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id).bind(owner).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Gives up on an event after 24 hours of failures: keep it as failed, move on (if `owner`
    /// still holds the lease; otherwise nothing is written).
    pub async fn give_up_event(&self, failure: &FailureRow, owner: &str, at: Position) -> StoreResult<()> {
        run!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(
                "UPDATE webhook_endpoints SET delivered_xid = $1, delivered_seq = $2, attempts = 0, first_failed_at = NULL, \
                   next_attempt_at = NULL WHERE id = $3 AND lease_owner = $4")
                .bind(at.xid).bind(at.seq).bind(&failure.endpoint_id).bind(owner).execute(&mut *tx).await?.rows_affected();
            if moved == 1 {
                sqlx::query("INSERT INTO webhook_failures (id, endpoint_id, event_id, attempts, last_error, failed_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&failure.id).bind(&failure.endpoint_id).bind(&failure.event_id).bind(failure.attempts)
                    .bind(&failure.last_error).bind(failure.failed_at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// An endpoint's failed events, newest first.
    pub async fn failures(&self, endpoint_id: &str) -> StoreResult<Vec<FailureRow>> {
        Ok(run!(self, pool => sqlx::query_as(
            "SELECT id, endpoint_id, event_id, attempts, last_error, failed_at, resent_at FROM webhook_failures WHERE endpoint_id = $1 ORDER BY id DESC")
            .bind(endpoint_id).fetch_all(pool).await)?)
    }

    /// Marks a failure as re-sent successfully.
    pub async fn failure_resent(&self, id: &str, now: i64) -> StoreResult<()> {
        run!(self, pool => sqlx::query("UPDATE webhook_failures SET resent_at = $1 WHERE id = $2")
            .bind(now).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

impl Store {
    /// Writes an event that accompanies no state change (e.g. `connection.refresh_failed`).
    pub async fn insert_event(&self, event: &NewEvent) -> StoreResult<()> {
        run!(self, pool => insert_event!(pool, event).await.map(|_| ()))?;
        Ok(())
    }
}

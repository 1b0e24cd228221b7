-- Events about connections, written in the same transaction as the change they describe (a
-- transactional outbox), then offered for polling (GET /v1/events) and delivered to webhook
-- endpoints in order. `seq` orders them; `id` (evt_…) is the public, dedupe-able identifier.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    type          TEXT NOT NULL,          -- connection.created | connection.reauthorized | …
    connection_id TEXT,
    created_at    INTEGER NOT NULL,
    data          TEXT NOT NULL           -- JSON: the connection, never a token
);

-- Webhook endpoints. Each one has a cursor (`delivered_seq`) and is delivered in event order:
-- the event at the cursor is retried with back-off (for 24 hours) before the next one is sent.
CREATE TABLE webhook_endpoints (
    id                  TEXT PRIMARY KEY,       -- whe_…
    url                 TEXT NOT NULL,
    events              TEXT NOT NULL,          -- space-separated types; '' = all
    secret              BLOB NOT NULL,          -- sealed whsec_…
    previous_secret     BLOB,                   -- sealed; still signs until previous_until
    previous_until      INTEGER,
    created_at          INTEGER NOT NULL,
    delivered_seq       INTEGER NOT NULL,       -- last event handled (delivered or given up)
    attempts            INTEGER NOT NULL DEFAULT 0,
    first_failed_at     INTEGER,
    next_attempt_at     INTEGER,
    last_error          TEXT,
    lease_until         INTEGER                 -- one replica delivers an endpoint at a time
);

-- Events an endpoint never accepted within 24 hours: listable and re-sendable.
CREATE TABLE webhook_failures (
    id          TEXT PRIMARY KEY,               -- whf_…
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    failed_at   INTEGER NOT NULL,
    resent_at   INTEGER
);
CREATE INDEX webhook_failures_endpoint ON webhook_failures (endpoint_id, id);

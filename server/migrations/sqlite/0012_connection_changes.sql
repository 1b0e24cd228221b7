-- Which owners' connections changed, for other processes on the same database: `latch serve`
-- polls it (every 100 ms) so a connection removed with the CLI stops being served at once, and
-- its token cache can keep rows for long. PostgreSQL replicas hear of changes through
-- LISTEN/NOTIFY instead and leave this table empty. Rows older than ten minutes are pruned.
CREATE TABLE connection_changes (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    origin          TEXT NOT NULL,       -- the writing process (its own rows it skips)
    user_id         TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    provider        TEXT NOT NULL,
    at              INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))  -- the database's clock
);

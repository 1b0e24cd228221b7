-- When a connection was last used, and by which API key, move to a narrow table of their own.
-- They are written all day long (a connection in use about once a minute: 1,700 rows a second at
-- 100,000 connections in use), and in `connections` each write rewrote a wide row (sealed
-- tokens, scopes, installation) on one of thousands of pages: about one page per row, each
-- page read back, logged to the WAL and checkpointed. Here a page holds some 70 connections'
-- usage, so the usage recorder's batches touch each page once for a dozen rows, and the
-- connections table is only written when a connection itself changes.
CREATE TABLE connection_usage (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    last_used_at  INTEGER NOT NULL,
    last_used_by  TEXT                                -- the API key's name
) WITHOUT ROWID;

INSERT INTO connection_usage (connection_id, last_used_at, last_used_by)
    SELECT id, last_used_at, last_used_by FROM connections WHERE last_used_at IS NOT NULL;

ALTER TABLE connections DROP COLUMN last_used_at;
ALTER TABLE connections DROP COLUMN last_used_by;

-- When a connection was last used, and by which API key, move to a narrow table of their own.
-- They are written all day long (a connection in use about once a minute: 1,700 rows a second at
-- 100,000 connections in use), and in `connections` each write made a new version of a wide row
-- (sealed tokens, scopes, installation). Here a page holds some 100 connections' usage, so the
-- usage recorder's batches touch each page once for a dozen rows, the versions they leave are
-- small, and the connections table is only written when a connection itself changes. The free
-- third of each page keeps the updates HOT (`last_used_at` is not indexed).
CREATE TABLE connection_usage (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    last_used_at  BIGINT NOT NULL,
    last_used_by  TEXT                                -- the API key's name
) WITH (fillfactor = 70);

INSERT INTO connection_usage (connection_id, last_used_at, last_used_by)
    SELECT id, last_used_at, last_used_by FROM connections WHERE last_used_at IS NOT NULL;

ALTER TABLE connections DROP COLUMN last_used_at, DROP COLUMN last_used_by;

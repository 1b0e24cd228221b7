-- Which owners' connections changed, for other processes on the same database. SQLite servers
-- poll it; PostgreSQL replicas hear of changes through LISTEN/NOTIFY instead and leave this
-- table empty (it exists so both backends keep the same migrations).
CREATE TABLE connection_changes (
    seq             BIGSERIAL PRIMARY KEY,
    origin          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    provider        TEXT NOT NULL,
    at              BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT)  -- the database's clock
);

-- Tombstones: what is left of a deleted connection, for the inventory and audits. Never a
-- secret: the row is copied here without its sealed columns, and the live row is deleted, in one
-- transaction. A table of its own, so no path that serves tokens can ever read a tombstone, and
-- the same account can be connected again at once. Purged after `tombstone_retention_days`.
CREATE TABLE connection_tombstones (
    id                      TEXT PRIMARY KEY,
    provider                TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    organization_id         TEXT NOT NULL DEFAULT '',
    account_id              TEXT NOT NULL,
    account_label           TEXT,
    scopes                  TEXT NOT NULL,
    missing_scopes          TEXT NOT NULL DEFAULT '',
    token_type              TEXT NOT NULL,
    access_token_expires_at BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    last_refreshed_at       BIGINT,
    last_used_at            BIGINT,
    last_validated_at       BIGINT,
    purpose                 TEXT,
    created_by              TEXT,
    last_used_by            TEXT,
    credential_source       TEXT NOT NULL,
    deleted_at              BIGINT NOT NULL,
    deleted_by              TEXT NOT NULL,           -- the API key, widget user or system part
    revocation              TEXT NOT NULL            -- revoked | unsupported | failed | not_requested
);
CREATE INDEX connection_tombstones_deleted_at ON connection_tombstones (deleted_at);

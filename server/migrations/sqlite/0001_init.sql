-- Latch schema, SQLite flavour. Same numbering and meaning as migrations/postgres.
-- Conventions: tables plural snake_case; `id` primary keys are prefixed text (conn_…, key_…);
-- times are integer Unix seconds (UTC); ciphertext columns hold vault envelopes (BLOB) whose
-- associated data binds them to table, row and column, so they are useless anywhere else.

-- Which master keys have sealed data here: lets start-up refuse a wrong key before any write.
CREATE TABLE vault_keys (
    key_id      TEXT PRIMARY KEY,
    check_value BLOB NOT NULL,      -- seal("latch") under this key: proves the key on start
    created_at  INTEGER NOT NULL
);

-- Secret API keys of host apps. Only the SHA-256 of a key is kept: keys are 256 random bits,
-- so a fast hash is as strong as a slow one and keeps the hot path fast.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
-- Names are unique among live keys, so `latch api-keys revoke NAME` is unambiguous.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Ed25519 keys that sign widget JWTs, shared by every replica. The private key is sealed.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,   -- the JWT `kid`
    private_key BLOB NOT NULL,      -- sealed PKCS#8
    public_key  BLOB NOT NULL,      -- raw 32-byte Ed25519 public key
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

-- Client secrets entered with `latch secret add`, sealed.
CREATE TABLE provider_secrets (
    provider      TEXT PRIMARY KEY,
    client_secret BLOB NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- One row per (user, organization, provider, external account). organization_id is '' when the
-- host has no organizations, so the unique key works the same on both backends.
CREATE TABLE connections (
    id                      TEXT PRIMARY KEY,
    provider                TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    organization_id         TEXT NOT NULL DEFAULT '',
    account_id              TEXT NOT NULL,
    account_label           TEXT,
    status                  TEXT NOT NULL,           -- active | needs_reauthorization
    scopes                  TEXT NOT NULL,           -- space-separated, as granted
    missing_scopes          TEXT NOT NULL DEFAULT '',
    access_token            BLOB,                    -- sealed
    refresh_token           BLOB,                    -- sealed
    token_type              TEXT NOT NULL DEFAULT 'bearer',
    access_token_expires_at INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    last_refreshed_at       INTEGER,
    last_used_at            INTEGER,
    last_validated_at       INTEGER,
    -- Refresh protocol: every token write bumps `version` (compare-and-swap); a committed lease
    -- marks a refresh in flight so another replica waits and a crash is visible afterwards.
    version                 INTEGER NOT NULL DEFAULT 0,
    lease_until             INTEGER,
    refresh_attempt         TEXT,
    UNIQUE (user_id, organization_id, provider, account_id)
);
CREATE INDEX connections_owner ON connections (user_id, organization_id, provider);
CREATE INDEX connections_provider ON connections (provider, id);

-- The audit trail: who did what to which connection, and how it went. Never a token.
CREATE TABLE activity (
    id              TEXT PRIMARY KEY,                -- act_<uuid v7>: sorts by time
    at              INTEGER NOT NULL,
    actor_kind      TEXT NOT NULL,                   -- api_key | user | system
    actor_name      TEXT NOT NULL,
    action          TEXT NOT NULL,
    connection_id   TEXT,
    user_id         TEXT,
    organization_id TEXT,
    provider        TEXT,
    outcome         TEXT NOT NULL,                   -- success | failure
    error_code      TEXT,
    detail          TEXT
);
CREATE INDEX activity_connection ON activity (connection_id, id);
CREATE INDEX activity_user ON activity (user_id, id);
CREATE INDEX activity_provider ON activity (provider, id);

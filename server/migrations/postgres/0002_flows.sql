-- Connect flows: one row per "Connect <provider>" click, single-use, ten minutes.
-- The `state` sent to the provider and the secret in the browser's flow cookie are stored only as
-- SHA-256 hashes; the PKCE verifier is sealed and erased once used.
CREATE TABLE flows (
    id                      TEXT PRIMARY KEY,        -- flow_<uuid v7>, in /oauth/authorize/{id}
    provider                TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    organization_id         TEXT NOT NULL DEFAULT '',
    allowed_origin          TEXT,                    -- the widget token's origin: postMessage target
    return_to               TEXT,                    -- where a full-page flow ends (on allowed_origin)
    reconnect_connection_id TEXT,                    -- set when reconnecting that connection
    status                  TEXT NOT NULL,           -- created | started | exchanging | connected | error
    state_hash              BYTEA UNIQUE,
    browser_hash            BYTEA,
    pkce_verifier           BYTEA,                    -- sealed
    connection_id           TEXT,
    error_code              TEXT,
    error_message           TEXT,
    created_at              BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL,
    started_at              BIGINT,
    completed_at            BIGINT
);
CREATE INDEX flows_owner ON flows (user_id, organization_id, id);

-- The built-in sandbox authorization server (demo mode only). It is the provider side, so it keeps
-- its own grants and tokens: tokens are stored only as SHA-256 hashes.
CREATE TABLE sandbox_grants (
    id          TEXT PRIMARY KEY,          -- sbg_…
    account     TEXT NOT NULL,             -- the sandbox user who approved
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sandbox_grants_account ON sandbox_grants (account);

CREATE TABLE sandbox_tokens (
    hash          BLOB PRIMARY KEY,          -- SHA-256 of the code or token
    grant_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,             -- code | access | refresh
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,                   -- codes and refresh tokens are single-use
    challenge     TEXT,                      -- PKCE S256 challenge (codes)
    redirect_uri  TEXT                       -- codes
);
CREATE INDEX sandbox_tokens_grant ON sandbox_tokens (grant_id);

-- What the demo's "Deploy" button posts through the sandbox API.
CREATE TABLE sandbox_messages (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

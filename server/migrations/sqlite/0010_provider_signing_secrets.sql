-- Signing secrets of providers that push events to Latch (Slack's Events API), entered with
-- `latch secret add --provider KEY --signing-secret`, sealed like client secrets.
CREATE TABLE provider_signing_secrets (
    provider       TEXT PRIMARY KEY,
    signing_secret BLOB NOT NULL,
    updated_at     INTEGER NOT NULL
);

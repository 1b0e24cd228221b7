-- Developer-owned connections: the app's own accounts (a bot workspace, a service mailbox),
-- connected by an operator with `latch connect --as-developer`. They have no end user
-- (user_id = '', which no host request can name) and credential_source = 'developer'.
-- The operator's name for one (`--label`), kept on the row and on its tombstone.
ALTER TABLE connections ADD COLUMN label TEXT;
ALTER TABLE connection_tombstones ADD COLUMN label TEXT;
-- Whose connection a flow makes.
ALTER TABLE flows ADD COLUMN credential_source TEXT NOT NULL DEFAULT 'end_user';
-- The developer connection that answers for a provider when it has several
-- (`latch connections select`); without one, a request matching several is refused.
CREATE TABLE developer_defaults (
    provider      TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    selected_at   INTEGER NOT NULL,
    selected_by   TEXT NOT NULL
);

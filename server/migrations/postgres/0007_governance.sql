-- Governance of each connection: what it is for (the provider's description when it was made,
-- or the host's words), who made it, which API key last fetched its token, and whose credential
-- it is (an end user's, or the app's own).
ALTER TABLE connections ADD COLUMN purpose TEXT;
ALTER TABLE connections ADD COLUMN created_by TEXT;
ALTER TABLE connections ADD COLUMN last_used_by TEXT;
ALTER TABLE connections ADD COLUMN credential_source TEXT NOT NULL DEFAULT 'end_user';
-- What a connection made through a flow is for, from the widget token (the host's words).
ALTER TABLE flows ADD COLUMN purpose TEXT;

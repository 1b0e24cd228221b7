-- The host's label for the user (from the widget token), shown on the consent result page so a
-- user sees whose account a connection is attached to.
ALTER TABLE flows ADD COLUMN user_label TEXT;

-- The sweep of expired flows (at most once a minute per process) and the cap on pending flows
-- per user both read by index.
CREATE INDEX flows_expiry ON flows (expires_at);
CREATE INDEX flows_pending ON flows (user_id, organization_id, status, expires_at);

-- What an install grants beyond one token (Slack's OAuth v2 answer), kept on the connection.
-- The installing user's token, when the install granted `user_scope` besides the bot's `scope`:
-- sealed like the bot token (bound to row and column), with its own refresh chain.
ALTER TABLE connections ADD COLUMN user_access_token BLOB;
ALTER TABLE connections ADD COLUMN user_refresh_token BLOB;
ALTER TABLE connections ADD COLUMN user_token_expires_at INTEGER;
ALTER TABLE connections ADD COLUMN user_token_refreshed_at INTEGER;
ALTER TABLE connections ADD COLUMN user_scopes TEXT NOT NULL DEFAULT '';
-- Slack's incoming webhook URL is a credential (anyone holding it can post): sealed.
ALTER TABLE connections ADD COLUMN incoming_webhook_url BLOB;
-- JSON: the resources the grant is limited to ([{"type":"channel","id":…,"name":…}]) and who
-- installed it where ({"team":…,"enterprise":…,"bot_user_id":…,"app_id":…,"authed_user_id":…}).
ALTER TABLE connections ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE connections ADD COLUMN installation TEXT NOT NULL DEFAULT '{}';
-- A tombstone keeps what is not secret.
ALTER TABLE connection_tombstones ADD COLUMN user_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE connection_tombstones ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE connection_tombstones ADD COLUMN installation TEXT NOT NULL DEFAULT '{}';

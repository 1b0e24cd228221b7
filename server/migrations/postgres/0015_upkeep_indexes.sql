-- The background upkeep's questions, answered from an index instead of a scan of every
-- connection. Each refresher round (about every 17 s) asked "which tokens are due?" once or
-- twice per token chain and "which connections need re-validating?" once: four sequential
-- scans of `connections` with a sort, each growing with the connections. Now each reads the
-- few rows that are due, in the order it wants them (partial indexes: only the rows
-- the query can select). The expressions are the store's (`store::connections`), to the letter:
-- the planner matches them as written.
CREATE INDEX connections_refresh_due ON connections (access_token_expires_at)
    WHERE status = 'active' AND refresh_token IS NOT NULL;
CREATE INDEX connections_user_refresh_due ON connections (user_token_expires_at)
    WHERE status = 'active' AND user_refresh_token IS NOT NULL;
CREATE INDEX connections_validation_due
    ON connections (COALESCE(validation_checked_at, last_validated_at, created_at), id)
    WHERE status = 'active';

-- Re-validation remembers which connections it looked at, usable answer or not, so it moves past
-- those it cannot check instead of picking the same first ones forever.
ALTER TABLE connections ADD COLUMN validation_checked_at BIGINT;

-- Events in commit order. A BIGSERIAL is taken at INSERT but becomes visible at COMMIT, so a
-- reader going by `seq` alone can pass an event whose transaction commits later and never see
-- it. Each event records the id of the transaction that wrote it; readers only read events of
-- transactions older than every transaction still running (`pg_snapshot_xmin`), whose set can no
-- longer change, and order by (xid, seq). Rows written before this migration keep xid 0: they
-- come first, in seq order, as before.
ALTER TABLE events ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_position ON events (xid, seq);

-- An endpoint's cursor is the (xid, seq) position of the last event handled; `lease_owner`
-- fences every write of a delivery worker, so one that overran its lease cannot move the cursor
-- or release the lease of the worker after it.
ALTER TABLE webhook_endpoints ADD COLUMN delivered_xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN lease_owner TEXT;

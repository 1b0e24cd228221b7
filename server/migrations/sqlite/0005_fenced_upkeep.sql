-- Re-validation remembers which connections it looked at, usable answer or not, so it moves past
-- those it cannot check instead of picking the same first ones forever.
ALTER TABLE connections ADD COLUMN validation_checked_at INTEGER;

-- Events in commit order. SQLite has one writer at a time, so `seq` order already is commit
-- order and `xid` stays 0; the column exists so both backends read by the same (xid, seq)
-- position (see the PostgreSQL migration).
ALTER TABLE events ADD COLUMN xid INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_position ON events (xid, seq);

-- An endpoint's cursor is the (xid, seq) position of the last event handled; `lease_owner`
-- fences every write of a delivery worker, so one that overran its lease cannot move the cursor
-- or release the lease of the worker after it.
ALTER TABLE webhook_endpoints ADD COLUMN delivered_xid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN lease_owner TEXT;

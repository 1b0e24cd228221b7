-- A connection row is rewritten all day long: `last_used_at` about once a minute while it is in
-- use, its tokens at each refresh. With full pages every such UPDATE puts the new row version on
-- another page and adds an entry to each of the table's four indexes; leaving a third of each
-- page free lets PostgreSQL keep it on the same page with no index entry (a HOT update: none of
-- these columns is indexed), and lets the page prune its own dead versions without VACUUM.
-- Pages written from now on follow it; `VACUUM FULL connections` rewrites the old ones.
ALTER TABLE connections SET (fillfactor = 70);

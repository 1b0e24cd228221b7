-- PostgreSQL's 0013 leaves room in the connections table's pages for in-place updates; SQLite
-- rewrites a row inside its page anyway and has no such setting. Kept so both backends share
-- their migration numbers.
SELECT 1;

-- Change counters: every mutation of a cached aggregate bumps its row in the same
-- transaction, and every node polls the row to drop stale cache entries.
CREATE TABLE generations (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO generations (name, value) VALUES ('clients', 0);
